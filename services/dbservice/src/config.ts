import { z } from "zod";
import { env } from "@crm/kit";

export const dbEnv = z.object({
  DATABASE_URL: env.url(["postgres", "postgresql"]),
  DB_POOL_MAX: env.int(10, 1, 200),
});

export type DbConfig = z.infer<typeof dbEnv>;

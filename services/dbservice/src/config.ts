import { z } from "zod";
import { env } from "@crm/kit";

export const dbEnv = z.object({
  DATABASE_URL: env.url(["postgres", "postgresql"]),
  DB_POOL_MAX: env.int(10, 1, 200),
  /** The queue e-mail tasks are routed to (the email service consumes the same EMAIL_QUEUE). */
  EMAIL_QUEUE: env.str("email_tasks"),
});

export type DbConfig = z.infer<typeof dbEnv>;

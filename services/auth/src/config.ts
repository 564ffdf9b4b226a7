import { z } from "zod";
import { env } from "@crm/kit";

export const authEnv = z.object({
  JWT_PRIVATE_KEY_FILE: env.file(),
  JWT_KEY_ID: env.optionalStr(),
  ACCESS_TOKEN_TTL_SECONDS: env.int(900, 60, 3600),
  REFRESH_TOKEN_TTL_DAYS: env.int(30, 1, 365),
  LOGIN_FAILURES_PER_ACCOUNT_AND_IP: env.int(10, 1, 10_000),
  LOGIN_FAILURES_PER_IP: env.int(100, 1, 1_000_000),
});

export type AuthConfig = z.infer<typeof authEnv>;

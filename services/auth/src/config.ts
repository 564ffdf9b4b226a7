import { z } from "zod";
import { env } from "@crm/kit";

export const authEnv = z.object({
  JWT_PRIVATE_KEY_FILE: env.file(),
  JWT_KEY_ID: env.optionalStr(),
  ACCESS_TOKEN_TTL_SECONDS: env.int(900, 60, 3600),
  /**
   * Life of the access token an API key is exchanged for (ExchangeApiKey). Holders exchange again
   * after half of it, which is also how often a key's last use is recorded at most.
   */
  API_KEY_ACCESS_TTL_SECONDS: env.int(120, 10, 900),
  REFRESH_TOKEN_TTL_DAYS: env.int(30, 1, 365),
  LOGIN_FAILURES_PER_ACCOUNT_AND_IP: env.int(10, 1, 10_000),
  LOGIN_FAILURES_PER_IP: env.int(100, 1, 1_000_000),
  /** How long a password-reset link works. */
  RESET_TOKEN_TTL_MINUTES: env.int(30, 5, 24 * 60),
  /** Reset e-mails per login per hour (more requests are answered the same, and send nothing). */
  RESET_REQUESTS_PER_LOGIN: env.int(5, 1, 1000),
  /** Reset requests per client address per hour (more get resource_exhausted). */
  RESET_REQUESTS_PER_IP: env.int(100, 1, 1_000_000),
  /** RequestPasswordReset answers no sooner than this, whether or not the account exists. */
  RESET_MIN_RESPONSE_MS: env.int(200, 0, 5000),
});

export type AuthConfig = z.infer<typeof authEnv>;

import { z } from "zod";
import { env } from "@crm/kit";

export const adminEnv = z.object({
  /** Public base URL of the web app; invitation links are APP_URL/accept-invite#token=… */
  APP_URL: env.url(["http", "https"]),
  /** How long an invitation link works. */
  INVITE_TTL_HOURS: env.int(72, 1, 24 * 30),
});

export type AdminConfig = z.infer<typeof adminEnv>;

export const defaultAppUrl = "http://localhost:8080";

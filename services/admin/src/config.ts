import { z } from "zod";
import { env } from "@crm/kit";

export const adminEnv = z.object({
  /** How long an invitation link works. */
  INVITE_TTL_HOURS: env.int(72, 1, 24 * 30),
});

export type AdminConfig = z.infer<typeof adminEnv>;

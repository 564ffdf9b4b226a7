import { z } from "zod";
import { env } from "@crm/kit";
import { AUDIT_QUEUE } from "@crm/contracts";

export const adminEnv = z.object({
  /** How long an invitation link works. */
  INVITE_TTL_HOURS: env.int(72, 1, 24 * 30),
  /** The queue of audit events shipped to Loki (dbservice routes them to the same AUDIT_QUEUE). */
  AUDIT_QUEUE: env.str(AUDIT_QUEUE),
});

export type AdminConfig = z.infer<typeof adminEnv>;

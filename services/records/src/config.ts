import { z } from "zod";
import { env } from "@crm/kit";

export const recordsEnv = z.object({
  /** How often each replica erases records that have been in the trash over 30 days (replicas never purge one twice). */
  RECORDS_TRASH_SWEEP_INTERVAL_SECONDS: env.int(3600, 1, 86_400),
});

export type RecordsConfig = z.infer<typeof recordsEnv>;

import { z } from "zod";
import { env } from "@crm/kit";

export const recordsEnv = z.object({
  /** How often each replica erases records that have been in the trash over 30 days (replicas never purge one twice). */
  RECORDS_TRASH_SWEEP_INTERVAL_SECONDS: env.int(3600, 1, 86_400),
  /** A WatchRecords stream idle this long gets a heartbeat, after checking the database for missed changes (keeps NGINX and clients from timing out). */
  RECORDS_HEARTBEAT_MS: env.int(15_000, 100, 300_000),
  /** Live changes buffered per WatchRecords stream before a slow stream falls back to reading the database. */
  RECORDS_STREAM_BUFFER: env.int(10_000, 10, 1_000_000),
});

export type RecordsConfig = z.infer<typeof recordsEnv>;

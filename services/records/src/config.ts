import { z } from "zod";
import { env } from "@crm/kit";

export const recordsEnv = z.object({
  /** How often each replica erases records that have been in the trash over 30 days (replicas never purge one twice). */
  RECORDS_TRASH_SWEEP_INTERVAL_SECONDS: env.int(3600, 1, 86_400),
  /** A WatchRecords stream idle this long gets a heartbeat, after checking the database for missed changes (keeps NGINX and clients from timing out). */
  RECORDS_HEARTBEAT_MS: env.int(15_000, 100, 300_000),
  /** Live changes buffered per WatchRecords stream before a slow stream falls back to reading the database. */
  RECORDS_STREAM_BUFFER: env.int(10_000, 10, 1_000_000),
  /** Stored record changes (WatchRecords' replay) younger than this are kept; older ones are trimmed (a replay from before them is refused: re-list). */
  RECORDS_CHANGES_RETENTION_DAYS: env.int(7, 1, 3650),
  /** Each tenant's newest this many changes are kept whatever their age. */
  RECORDS_CHANGES_KEEP_VERSIONS: env.int(10_000, 0, 100_000_000),
  /** How often each replica trims the change log. */
  RECORDS_CHANGES_TRIM_INTERVAL_SECONDS: env.int(3600, 1, 86_400),
  /** The largest file an import takes (bytes; resource_exhausted beyond). */
  RECORDS_IMPORT_MAX_BYTES: env.int(256 * 1024 * 1024, 1024, 4 * 1024 * 1024 * 1024),
  /** Rows an import job applies per transaction (each batch commits with its progress). */
  RECORDS_IMPORT_BATCH: env.int(5000, 100, 50_000),
  /** How often each replica looks for import jobs waiting (or left by a replica that died). */
  RECORDS_IMPORT_POLL_MS: env.int(2000, 50, 60_000),
  /** An import job's lease: a replica that stops renewing it (it died) loses the job to another after this. */
  RECORDS_IMPORT_LEASE_SECONDS: env.int(30, 5, 600),
});

export type RecordsConfig = z.infer<typeof recordsEnv>;

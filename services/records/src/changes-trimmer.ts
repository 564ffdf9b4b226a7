/**
 * The change log's trimming: every RECORDS_CHANGES_TRIM_INTERVAL_SECONDS (jittered), each replica
 * of the records service asks dbservice to erase, in every tenant, the stored record changes
 * (rec_changes: what WatchRecords replays after a version) that are older than
 * RECORDS_CHANGES_RETENTION_DAYS and not among the tenant's newest RECORDS_CHANGES_KEEP_VERSIONS.
 * Without it the log grows with every change forever. A watcher asking to replay after a trimmed
 * version is refused with failed_precondition (re-list, then watch from the version named), never
 * handed a replay with a hole. The trash sweeper (trash-sweeper.ts) is the pattern; several
 * replicas at once are safe (the database function only erases and only raises the mark).
 */
import type { Client } from "@connectrpc/connect";
import { createPeriodicJob, type Logger, type PeriodicJob } from "@crm/kit";
import type { DbRecordsService } from "@crm/gen/crm/db/v1/db_records_pb";

export interface ChangesTrimmerDeps {
  db: Client<typeof DbRecordsService>;
  log: Logger;
  intervalMs: number;
  /** Changes younger than this are kept. */
  retentionDays: number;
  /** Each tenant's newest this many versions are kept whatever their age. */
  keepVersions: number;
  /** Changes per tenant and call (the job calls again while a tenant comes back full). */
  batch?: number;
}

/** runOnce resolves to the number of changes erased. */
export type ChangesTrimmer = PeriodicJob;

export function createChangesTrimmer(d: ChangesTrimmerDeps): ChangesTrimmer {
  const batch = d.batch ?? 10_000;
  return createPeriodicJob({
    what: "change log trimming",
    service: "records",
    log: d.log,
    intervalMs: d.intervalMs,
    async pass(stopped) {
      let total = 0;
      for (;;) {
        const res = await d.db.trimChangesDB({ limit: batch, retentionDays: d.retentionDays, keepVersions: BigInt(d.keepVersions) });
        total += res.trimmed;
        if (!res.more || stopped()) return total;
      }
    },
    done: (n) => d.log.info({ trimmed: n, retentionDays: d.retentionDays, keepVersions: d.keepVersions }, "trimmed the record change log"),
    // after the trash purge's first pass (5-10 s after the start), not beside it
    firstDelayMs: () => Math.min(5_000, d.intervalMs) * (2 + Math.random()),
  });
}

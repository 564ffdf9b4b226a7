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
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import type { Logger } from "@crm/kit";
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

export interface ChangesTrimmer {
  /** One full pass; resolves to the number of changes erased. */
  runOnce(): Promise<number>;
  start(): void;
  stop(): Promise<void>;
}

export function createChangesTrimmer(d: ChangesTrimmerDeps): ChangesTrimmer {
  const batch = d.batch ?? 10_000;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<number> | undefined;
  let stopped = false;

  async function pass(): Promise<number> {
    let total = 0;
    for (;;) {
      const res = await d.db.trimChangesDB({ limit: batch, retentionDays: d.retentionDays, keepVersions: BigInt(d.keepVersions) });
      total += res.trimmed;
      if (!res.more || stopped) return total;
    }
  }

  const runOnce = () => {
    running ??= pass().finally(() => (running = undefined));
    return running;
  };

  const schedule = (ms: number) => {
    if (stopped) return;
    timer = setTimeout(() => {
      runOnce()
        .then((n) => n > 0 && d.log.info({ trimmed: n, retentionDays: d.retentionDays, keepVersions: d.keepVersions }, "trimmed the record change log"))
        .catch((err) =>
          d.log.warn(
            { err: String(err) },
            ConnectError.from(err).code === Code.PermissionDenied
              ? "change log trimming refused by dbservice: the records service proves who it is with its mTLS client certificate (CN=records); set TLS_CERT_FILE/TLS_KEY_FILE/TLS_CA_FILE"
              : "change log trimming failed; it runs again at the next interval",
          ),
        )
        .finally(() => schedule(d.intervalMs * (0.8 + Math.random() * 0.4)));
    }, ms);
    timer.unref();
  };

  return {
    runOnce,
    start: () => schedule(Math.min(5_000, d.intervalMs) * (1 + Math.random())),
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running?.catch(() => {});
    },
  };
}

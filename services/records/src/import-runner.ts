/**
 * Each replica's import runner: it leases a waiting job (ClaimImportDB: FOR UPDATE SKIP LOCKED, or
 * a job whose lease ran out because its replica died) and runs it batch by batch
 * (RunImportBatchDB), each batch renewing the lease, until the job ends or the lease is lost to
 * another replica (aborted). One job at a time per replica; polled every pollMs and woken at once
 * when this replica starts a job.
 */
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import type { Logger } from "@crm/kit";
import type { DbImportService } from "@crm/gen/crm/db/v1/db_records_import_pb";
import { ImportState } from "@crm/gen/crm/records/v1/import_pb";

export interface ImportRunnerDeps {
  db: Client<typeof DbImportService>;
  log: Logger;
  /** This replica's name on the lease. */
  owner: string;
  pollMs: number;
  leaseSeconds: number;
  batch: number;
}

export interface ImportRunner {
  start(): void;
  /** Looks for work now. */
  nudge(): void;
  /** Runs waiting jobs until none is left (tests). */
  drain(): Promise<void>;
  stop(): Promise<void>;
}

const running = new Set([ImportState.QUEUED, ImportState.RUNNING]);

export function createImportRunner(d: ImportRunnerDeps): ImportRunner {
  let timer: NodeJS.Timeout | undefined;
  let busy: Promise<void> | undefined;
  let stopped = false;

  async function runJob(id: string, token: string): Promise<void> {
    d.log.info({ importId: id }, "import job leased");
    for (;;) {
      if (stopped) return;
      const { import: job } = await d.db.runImportBatchDB({ importId: id, leaseToken: token, batchSize: d.batch, leaseSeconds: d.leaseSeconds });
      if (!job || !running.has(job.state)) {
        d.log.info({ importId: id, state: job && ImportState[job.state], rows: String(job?.rowsDone), failed: String(job?.failedCount) }, "import job ended");
        return;
      }
    }
  }

  async function pass(): Promise<void> {
    while (!stopped) {
      const claim = await d.db.claimImportDB({ owner: d.owner, leaseSeconds: d.leaseSeconds });
      if (!claim.importId) return;
      try {
        await runJob(claim.importId, claim.leaseToken);
      } catch (err) {
        const code = ConnectError.from(err).code;
        if (code === Code.Aborted) d.log.info({ importId: claim.importId }, "import job lease lost to another replica");
        else d.log.warn({ importId: claim.importId, err: String(err) }, "import batch failed");
      }
    }
  }

  const kick = () => {
    busy ??= pass()
      .catch((err) => d.log.warn({ err: String(err) }, "import runner: could not reach dbservice; it tries again"))
      .finally(() => (busy = undefined));
    return busy;
  };

  const schedule = () => {
    if (stopped) return;
    timer = setTimeout(() => void kick().finally(schedule), d.pollMs * (0.8 + Math.random() * 0.4));
    timer.unref();
  };

  return {
    start: schedule,
    nudge: () => void kick(),
    async drain() {
      await kick();
    },
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await busy?.catch(() => {});
    },
  };
}

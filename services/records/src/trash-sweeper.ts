/**
 * The trash's 30-day purge: every RECORDS_TRASH_SWEEP_INTERVAL_SECONDS (jittered), each replica of
 * the records service asks dbservice to erase the records (companies, people, deals, tasks, notes)
 * of every tenant that went to the trash over TRASH_DAYS ago, with their timelines. It lives here,
 * not in dbservice, because the 30 days are this domain's rule (the timers' forgotten-timer job is
 * the pattern). Several replicas at once are safe: the database function claims rows with FOR
 * UPDATE SKIP LOCKED and re-checks them, and a run that finds nothing costs one indexed query per
 * kind. Owners and admins purge single records on demand (Purge<X>) at any time.
 */
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import type { Logger } from "@crm/kit";
import type { DbRecordsService } from "@crm/gen/crm/db/v1/db_records_pb";
import { TRASH_DAYS } from "./rules.js";

export interface TrashSweeperDeps {
  db: Client<typeof DbRecordsService>;
  log: Logger;
  intervalMs: number;
  /** Records per kind and call (the job calls again while a kind comes back full). */
  batch?: number;
}

export interface TrashSweeper {
  /** One full pass; resolves to the number of records erased. */
  runOnce(): Promise<number>;
  start(): void;
  stop(): Promise<void>;
}

export function createTrashSweeper(d: TrashSweeperDeps): TrashSweeper {
  const batch = d.batch ?? 1000;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<number> | undefined;
  let stopped = false;

  async function pass(): Promise<number> {
    let total = 0;
    for (;;) {
      const res = await d.db.purgeTrashDB({ limit: batch });
      total += res.purged;
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
        .then((n) => n > 0 && d.log.info({ purged: n, trashDays: TRASH_DAYS }, "purged records from the trash"))
        .catch((err) =>
          d.log.warn(
            { err: String(err) },
            ConnectError.from(err).code === Code.PermissionDenied
              ? "trash purge refused by dbservice: the records service proves who it is with its mTLS client certificate (CN=records); set TLS_CERT_FILE/TLS_KEY_FILE/TLS_CA_FILE"
              : "trash purge failed; it runs again at the next interval",
          ),
        )
        .finally(() => schedule(d.intervalMs * (0.8 + Math.random() * 0.4)));
    }, ms);
    timer.unref();
  };

  return {
    runOnce,
    start: () => schedule(Math.min(5_000, d.intervalMs) * Math.random()),
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running?.catch(() => {});
    },
  };
}

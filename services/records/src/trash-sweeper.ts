/**
 * The trash's 30-day purge: every RECORDS_TRASH_SWEEP_INTERVAL_SECONDS (jittered), each replica of
 * the records service asks dbservice to erase the records (companies, people, deals, tasks, notes)
 * of every tenant that went to the trash over TRASH_DAYS ago, with their timelines. It lives here,
 * not in dbservice, because the 30 days are this domain's rule (the timers' forgotten-timer job is
 * the pattern). Several replicas at once are safe: the database function claims rows with FOR
 * UPDATE SKIP LOCKED and re-checks them, and a run that finds nothing costs one indexed query per
 * kind. Owners and admins purge single records on demand (Purge<X>) at any time. What the job
 * erases, and the records that lose a link to it, get versions and change events like a user's
 * purge (the store's trash-purge.ts).
 */
import type { Client } from "@connectrpc/connect";
import { createPeriodicJob, type Logger, type PeriodicJob } from "@crm/kit";
import type { DbRecordsService } from "@crm/gen/crm/db/v1/db_records_pb";
import { TRASH_DAYS } from "./rules.js";

export interface TrashSweeperDeps {
  db: Client<typeof DbRecordsService>;
  log: Logger;
  intervalMs: number;
  /** Records per kind and call (the job calls again while a kind comes back full). */
  batch?: number;
}

/** runOnce resolves to the number of records erased. */
export type TrashSweeper = PeriodicJob;

export function createTrashSweeper(d: TrashSweeperDeps): TrashSweeper {
  const batch = d.batch ?? 1000;
  return createPeriodicJob({
    what: "trash purge",
    service: "records",
    log: d.log,
    intervalMs: d.intervalMs,
    async pass(stopped) {
      let total = 0;
      for (;;) {
        const res = await d.db.purgeTrashDB({ limit: batch });
        total += res.purged;
        if (!res.more || stopped()) return total;
      }
    },
    done: (n) => d.log.info({ purged: n, trashDays: TRASH_DAYS }, "purged records from the trash"),
  });
}

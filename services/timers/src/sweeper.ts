/**
 * The forgotten-timer job: every TIMER_SWEEP_INTERVAL_SECONDS (jittered), each replica of the
 * timers service asks dbservice to stop timers that have run longer than the maximum, at exactly
 * start + maximum. It lives here, not in dbservice, because the maximum is this domain's rule and
 * the running-timer cache it must invalidate is this service's. Several replicas at once are safe:
 * the database function claims rows with FOR UPDATE SKIP LOCKED and re-checks them, so each
 * timer is stopped once, and a run that finds nothing costs one indexed query.
 */
import type { Client } from "@connectrpc/connect";
import { createPeriodicJob, type Logger, type PeriodicJob } from "@crm/kit";
import type { DbTimerService } from "@crm/gen/crm/db/v1/db_timer_pb";
import type { RunningCache } from "./running-cache.js";

export interface SweeperDeps {
  db: Client<typeof DbTimerService>;
  cache: RunningCache;
  log: Logger;
  maxRunningMs: number;
  intervalMs: number;
  /** Timers per call (the job calls again while a batch comes back full). */
  batch?: number;
}

/** runOnce resolves to the number of timers stopped. */
export type Sweeper = PeriodicJob;

export function createSweeper(d: SweeperDeps): Sweeper {
  const batch = d.batch ?? 1000;
  return createPeriodicJob({
    what: "forgotten-timer job",
    service: "timers",
    log: d.log,
    intervalMs: d.intervalMs,
    async pass(stopped) {
      let total = 0;
      for (;;) {
        const res = await d.db.stopForgottenTimersDB({
          maxRunning: { seconds: BigInt(Math.floor(d.maxRunningMs / 1000)), nanos: (d.maxRunningMs % 1000) * 1e6 },
          limit: batch,
        });
        for (const t of res.timers) await d.cache.invalidate(t.userId);
        total += res.stopped;
        if (res.stopped < batch || stopped()) return total;
      }
    },
    done: (n) => d.log.info({ stopped: n, maxRunningHours: d.maxRunningMs / 3_600_000 }, "stopped forgotten timers"),
  });
}

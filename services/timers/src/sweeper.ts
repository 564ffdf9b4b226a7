/**
 * The forgotten-timer job: every TIMER_SWEEP_INTERVAL_SECONDS (jittered), each replica of the
 * timers service asks dbservice to stop timers that have run longer than the maximum, at exactly
 * start + maximum. It lives here, not in dbservice, because the maximum is this domain's rule and
 * the running-timer cache it must invalidate is this service's. Several replicas at once are safe:
 * the database function claims rows with FOR UPDATE SKIP LOCKED and re-checks them, so each
 * timer is stopped once, and a run that finds nothing costs one indexed query.
 */
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import type { Logger } from "@crm/kit";
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

export interface Sweeper {
  /** One full pass; resolves to the number of timers stopped. */
  runOnce(): Promise<number>;
  start(): void;
  stop(): Promise<void>;
}

export function createSweeper(d: SweeperDeps): Sweeper {
  const batch = d.batch ?? 1000;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<number> | undefined;
  let stopped = false;

  async function pass(): Promise<number> {
    let total = 0;
    for (;;) {
      const res = await d.db.stopForgottenTimersDB({
        maxRunning: { seconds: BigInt(Math.floor(d.maxRunningMs / 1000)), nanos: (d.maxRunningMs % 1000) * 1e6 },
        limit: batch,
      });
      for (const t of res.timers) await d.cache.invalidate(t.userId);
      total += res.stopped;
      if (res.stopped < batch || stopped) return total;
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
        .then((n) => n > 0 && d.log.info({ stopped: n, maxRunningHours: d.maxRunningMs / 3_600_000 }, "stopped forgotten timers"))
        .catch((err) =>
          d.log.warn(
            { err: String(err) },
            ConnectError.from(err).code === Code.PermissionDenied
              ? "forgotten-timer job refused by dbservice: the timers service proves who it is with its mTLS client certificate (CN=timers); set TLS_CERT_FILE/TLS_KEY_FILE/TLS_CA_FILE"
              : "forgotten-timer job failed; it runs again at the next interval",
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

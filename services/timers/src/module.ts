/** The timers service module: TimerService plus the forgotten-timer job. */
import type { Client } from "@connectrpc/connect";
import type { Redis } from "ioredis";
import type { Logger, ServiceModule } from "@crm/kit";
import type { DbTimerService } from "@crm/gen/crm/db/v1/db_timer_pb";
import { TimerService } from "@crm/gen/crm/timer/v1/timer_pb";
import type { TimersConfig } from "./config.js";
import { noCache, redisRunningCache } from "./running-cache.js";
import { createSweeper } from "./sweeper.js";
import { timerService } from "./timer-service.js";

export interface TimersModuleDeps {
  cfg: TimersConfig;
  db: Client<typeof DbTimerService>;
  /** Caches the running timer when set; without it every read goes to the database. */
  redis?: Redis | undefined;
  log: Logger;
  /** Run the forgotten-timer job (default true). */
  sweep?: boolean;
}

export function createTimersModule(d: TimersModuleDeps): ServiceModule {
  const cache = d.redis ? redisRunningCache(d.redis, { ttlSeconds: d.cfg.TIMER_CACHE_TTL_SECONDS, log: d.log }) : noCache;
  const maxRunningMs = d.cfg.TIMER_MAX_RUNNING_HOURS * 3_600_000;
  const impl = timerService({ db: d.db, cache, maxRunningMs, skewMs: d.cfg.TIMER_CLOCK_SKEW_SECONDS * 1000 });
  const sweeper = createSweeper({ db: d.db, cache, log: d.log, maxRunningMs, intervalMs: d.cfg.TIMER_SWEEP_INTERVAL_SECONDS * 1000 });
  if (d.sweep !== false) sweeper.start();
  return {
    name: "timers",
    services: [TimerService],
    routes(router) {
      router.service(TimerService, impl);
    },
    close: () => sweeper.stop(),
  };
}

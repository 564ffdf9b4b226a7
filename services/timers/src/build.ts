/**
 * timers' one wiring (TimerService and the forgotten-timer job), used by its own process
 * (main.ts) and by the all-in-one; the caller only chooses the providers (how dbservice is
 * reached; Redis, which caches the running timer, or none).
 */
import type { Redis } from "ioredis";
import type { Basics, ServiceModule } from "@crm/kit";
import { DbTimerService } from "@crm/gen/crm/db/v1/db_timer_pb";
import type { TimersConfig } from "./config.js";
import { createTimersModule } from "./module.js";

export interface TimersBuildDeps extends Pick<Basics, "log" | "peer"> {
  cfg: TimersConfig;
  /** Caches the running timer when set; without it every read goes to the database. */
  redis?: Redis | undefined;
}

export async function build(d: TimersBuildDeps): Promise<ServiceModule> {
  return createTimersModule({ cfg: d.cfg, db: d.peer("dbservice", DbTimerService), redis: d.redis, log: d.log });
}

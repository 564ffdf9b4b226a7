/** timers as its own process. */
import { loadConfig, runService } from "@crm/kit";
import { DbTimerService } from "@crm/gen/crm/db/v1/db_timer_pb";
import { timersEnv } from "./config.js";
import { createTimersModule } from "./module.js";

export function start() {
  return runService("timers", async ({ log, peer, redis }) => {
    const cfg = loadConfig(timersEnv);
    if (!redis) log.warn("REDIS_URL is not set: GetWorkingTimer reads the database every time");
    return createTimersModule({ cfg, db: peer("dbservice", DbTimerService), redis, log });
  });
}

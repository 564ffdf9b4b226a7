/** timers as its own process. */
import { loadConfig, runService } from "@crm/kit";
import { build } from "./build.js";
import { timersEnv } from "./config.js";

export function start() {
  return runService("timers", async ({ log, peer, redis }) => {
    const cfg = loadConfig(timersEnv);
    if (!redis) log.warn("REDIS_URL is not set: GetWorkingTimer reads the database every time");
    return build({ cfg, peer, redis, log });
  });
}

/** cache as its own process: Redis from REDIS_URL (required in a cluster: memory is per replica). */
import { ConfigError, loadConfig, runService } from "@crm/kit";
import { build } from "./build.js";
import { cacheEnv } from "./config.js";

export function start() {
  return runService("cache", async ({ log, redis }) => {
    const cfg = loadConfig(cacheEnv);
    if (!redis) throw new ConfigError("config: REDIS_URL must name the Redis server of the cache service, e.g. redis://redis:6379 (it is not set)");
    return build({ cfg, redis, log });
  });
}

/** cache as its own process: Redis from REDIS_URL (required in a cluster: memory is per replica). */
import { ConfigError, loadConfig, runService } from "@crm/kit";
import { cacheEnv } from "./config.js";
import { createCacheModule } from "./module.js";

export function start() {
  return runService("cache", async ({ log, redis }) => {
    const cfg = loadConfig(cacheEnv);
    if (!redis) throw new ConfigError("config: REDIS_URL must name the Redis server of the cache service, e.g. redis://redis:6379 (it is not set)");
    return createCacheModule({ cfg, redis, log });
  });
}

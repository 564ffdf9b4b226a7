/** The cache service module. */
import type { Redis } from "ioredis";
import type { Logger, ServiceModule } from "@crm/kit";
import { CacheService } from "@crm/gen/crm/cache/v1/cache_pb";
import { cacheService } from "./cache-service.js";
import type { CacheConfig } from "./config.js";
import { memoryStore, redisStore } from "./store.js";

export interface CacheModuleDeps {
  cfg: CacheConfig;
  /** Without Redis the values live in this process's memory (all-in-one). */
  redis?: Redis | undefined;
  log: Logger;
}

export function createCacheModule(d: CacheModuleDeps): ServiceModule {
  const quota = { maxKeys: d.cfg.CACHE_TENANT_MAX_KEYS, maxBytes: d.cfg.CACHE_TENANT_MAX_BYTES };
  const store = d.redis ? redisStore(d.redis, { prefix: d.cfg.CACHE_KEY_PREFIX, quota }) : memoryStore({ maxBytes: d.cfg.CACHE_MEMORY_MAX_BYTES, quota });
  if (!d.redis) d.log.info({ maxBytes: d.cfg.CACHE_MEMORY_MAX_BYTES }, "cache: REDIS_URL is not set, values are kept in memory (lost on restart)");
  const impl = cacheService({ store, limits: { maxTtlSeconds: d.cfg.CACHE_MAX_TTL_SECONDS, maxValueBytes: d.cfg.CACHE_MAX_VALUE_BYTES } });
  return {
    name: "cache",
    services: [CacheService],
    routes: (router) => void router.service(CacheService, impl),
    ready: () => store.ready(),
  };
}

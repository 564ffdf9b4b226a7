/**
 * cache's one wiring, used by its own process (main.ts) and by the all-in-one; the caller only
 * chooses the provider: Redis, or none (values in this process's memory).
 */
import type { Redis } from "ioredis";
import type { Logger, ServiceModule } from "@crm/kit";
import type { CacheConfig } from "./config.js";
import { createCacheModule } from "./module.js";

export interface CacheBuildDeps {
  cfg: CacheConfig;
  /** Without Redis the values live in this process's memory (all-in-one). */
  redis?: Redis | undefined;
  log: Logger;
}

export async function build(d: CacheBuildDeps): Promise<ServiceModule> {
  return createCacheModule(d);
}

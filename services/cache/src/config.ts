import { z } from "zod";
import { env } from "@crm/kit";
import { limits } from "./validation.js";

export const cacheEnv = z.object({
  /** The longest TTL a caller may ask for (the proto's ceiling is 30 days). */
  CACHE_MAX_TTL_SECONDS: env.int(limits.ttlMaxSeconds, 1, limits.ttlMaxSeconds),
  /** The largest value (the proto's ceiling is 1 MiB). */
  CACHE_MAX_VALUE_BYTES: env.int(limits.valueMaxBytes, 1, limits.valueMaxBytes),
  /** Memory the embedded store (all-in-one without REDIS_URL) may hold; when full, a tenant's save evicts only its own oldest keys. */
  CACHE_MEMORY_MAX_BYTES: env.int(64 * 1024 * 1024, 1024 * 1024, 4 * 1024 * 1024 * 1024),
  /** Keys one company may hold at once (every mode); past it Save answers resource_exhausted (quota_exceeded). */
  CACHE_TENANT_MAX_KEYS: env.int(10_000, 1, 100_000_000),
  /** Bytes (keys + values) one company may hold at once (every mode). */
  CACHE_TENANT_MAX_BYTES: env.int(8 * 1024 * 1024, 1024, 64 * 1024 * 1024 * 1024),
  /** Prefix of every Redis key this service writes. */
  CACHE_KEY_PREFIX: env.str("crm:cache:"),
});

export type CacheConfig = z.infer<typeof cacheEnv>;

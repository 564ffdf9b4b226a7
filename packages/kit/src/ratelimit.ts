/**
 * Fixed-window counters for throttling (login failures, per-tenant e-mail sends):
 * Redis in a cluster (shared by replicas), memory in all-in-one.
 */
import type { Redis } from "ioredis";

export interface Counter {
  /** Current count in the window of `key`. */
  get(key: string): Promise<number>;
  /** Adds one; returns the new count. The window starts at the first hit. */
  hit(key: string, windowSeconds: number): Promise<number>;
  /** Seconds until the window of `key` ends (0 when none). */
  ttl(key: string): Promise<number>;
  reset(key: string): Promise<void>;
}

export function memoryCounter(now: () => number = Date.now): Counter {
  const windows = new Map<string, { count: number; until: number }>();
  const live = (key: string) => {
    const w = windows.get(key);
    if (w && w.until <= now()) {
      windows.delete(key);
      return undefined;
    }
    return w;
  };
  return {
    async get(key) {
      return live(key)?.count ?? 0;
    },
    async hit(key, windowSeconds) {
      const w = live(key) ?? { count: 0, until: now() + windowSeconds * 1000 };
      w.count++;
      windows.set(key, w);
      if (windows.size > 100_000) for (const k of windows.keys()) if (!live(k)) windows.delete(k);
      return w.count;
    },
    async ttl(key) {
      const w = live(key);
      return w ? Math.ceil((w.until - now()) / 1000) : 0;
    },
    async reset(key) {
      windows.delete(key);
    },
  };
}

export function redisCounter(redis: Redis, prefix = "crm:rl:"): Counter {
  return {
    async get(key) {
      return Number((await redis.get(prefix + key)) ?? 0);
    },
    async hit(key, windowSeconds) {
      const [[, count]] = (await redis.multi().incr(prefix + key).expire(prefix + key, windowSeconds, "NX").exec()) as [[unknown, number]];
      return count;
    },
    async ttl(key) {
      return Math.max(0, await redis.ttl(prefix + key));
    },
    async reset(key) {
      await redis.del(prefix + key);
    },
  };
}

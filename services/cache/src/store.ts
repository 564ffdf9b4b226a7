/**
 * Where cached values live: Redis (SET NX EX, one round trip per call) or, in all-in-one without
 * REDIS_URL, process memory with the same semantics (NX, expiry, bounded size).
 * Keys arrive already namespaced by tenant (see cache-service.ts).
 */
import type { Redis } from "ioredis";
import { AppError } from "@crm/kit";

export interface CacheStore {
  /** Stores only when absent; false when the key exists (its value and TTL stay). */
  save(key: string, value: Uint8Array, ttlSeconds: number): Promise<boolean>;
  /** The value and the milliseconds it has left, or undefined when missing or expired. */
  get(key: string): Promise<{ value: Uint8Array; ttlMs: number } | undefined>;
  delete(key: string): Promise<boolean>;
  ready(): Promise<void>;
}

const unavailable = (err: unknown) =>
  new AppError("unavailable", `the cache store (Redis) did not answer: ${err instanceof Error ? err.message : String(err)}; try again shortly`);

async function guarded<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof AppError) throw err;
    throw unavailable(err);
  }
}

export function redisStore(redis: Redis): CacheStore {
  return {
    save: (key, value, ttlSeconds) => guarded(async () => (await redis.set(key, Buffer.from(value.buffer, value.byteOffset, value.byteLength), "EX", ttlSeconds, "NX")) === "OK"),
    get: (key) =>
      guarded(async () => {
        const res = await redis.multi().getBuffer(key).pttl(key).exec();
        if (!res) throw new Error("transaction aborted");
        const [[e1, value], [e2, pttl]] = res as [[Error | null, Buffer | null], [Error | null, number]];
        if (e1 || e2) throw e1 ?? e2;
        if (value === null) return undefined;
        return { value: new Uint8Array(value), ttlMs: pttl < 0 ? 0 : pttl };
      }),
    delete: (key) => guarded(async () => (await redis.del(key)) > 0),
    ready: async () => void (await redis.ping()),
  };
}

interface Entry {
  value: Uint8Array;
  expiresAt: number;
}

/** In-process store: lazy expiry on access, a sweep when full, oldest keys evicted past maxBytes. */
export function memoryStore(opts: { maxBytes: number; now?: () => number }): CacheStore & { readonly bytes: number; readonly size: number } {
  const now = opts.now ?? Date.now;
  const entries = new Map<string, Entry>();
  let bytes = 0;
  const cost = (key: string, e: Entry) => key.length * 2 + e.value.byteLength + 64;
  const remove = (key: string) => {
    const e = entries.get(key);
    if (!e) return false;
    entries.delete(key);
    bytes -= cost(key, e);
    return true;
  };
  const live = (key: string) => {
    const e = entries.get(key);
    if (e && e.expiresAt <= now()) {
      remove(key);
      return undefined;
    }
    return e;
  };
  const makeRoom = (needed: number) => {
    if (bytes + needed <= opts.maxBytes) return;
    const t = now();
    for (const [k, e] of entries) if (e.expiresAt <= t) remove(k);
    for (const k of entries.keys()) {
      if (bytes + needed <= opts.maxBytes) break;
      remove(k); // insertion order: the oldest first
    }
  };
  return {
    get bytes() {
      return bytes;
    },
    get size() {
      return entries.size;
    },
    async save(key, value, ttlSeconds) {
      if (live(key)) return false;
      const e = { value: value.slice(), expiresAt: now() + ttlSeconds * 1000 };
      makeRoom(cost(key, e));
      entries.set(key, e);
      bytes += cost(key, e);
      return true;
    },
    async get(key) {
      const e = live(key);
      return e ? { value: e.value.slice(), ttlMs: e.expiresAt - now() } : undefined;
    },
    async delete(key) {
      return live(key) ? remove(key) : false;
    },
    async ready() {},
  };
}

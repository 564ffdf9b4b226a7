/**
 * Where cached values live: Redis (one script per Save/Delete, one round trip) or, in all-in-one
 * without REDIS_URL, process memory with the same semantics (NX, expiry).
 *
 * Every tenant (company) has a quota of keys and bytes (key + value, UTF-8 bytes), counted the same
 * way in both stores: a Save past it answers `quota_exceeded` (resource_exhausted) and changes
 * nothing. No tenant's keys are ever evicted for another's: the memory store, when its whole pool
 * is full, first drops expired keys, then the saving tenant's own oldest keys, never anyone else's.
 */
import type { Redis } from "ioredis";
import { AppError } from "@crm/kit";

export interface Quota {
  maxKeys: number;
  maxBytes: number;
}

export interface CacheStore {
  /** Stores only when absent; false when the key exists (its value and TTL stay). Throws quota_exceeded past the tenant's quota. */
  save(tenant: string, key: string, value: Uint8Array, ttlSeconds: number): Promise<boolean>;
  /** The value and the milliseconds it has left, or undefined when missing or expired. */
  get(tenant: string, key: string): Promise<{ value: Uint8Array; ttlMs: number } | undefined>;
  delete(tenant: string, key: string): Promise<boolean>;
  ready(): Promise<void>;
}

/** What a key counts against its tenant's byte quota: its UTF-8 bytes plus the value's. */
export const quotaBytes = (key: string, value: Uint8Array) => Buffer.byteLength(key, "utf8") + value.byteLength;

export function quotaExceeded(q: Quota, used: { keys: number; bytes: number }, needed: number): AppError {
  return new AppError(
    "quota_exceeded",
    `cache quota of ${q.maxKeys} keys / ${q.maxBytes} bytes for your company is full (in use: ${used.keys} keys, ${used.bytes} bytes; this value needs ${needed}); delete keys or wait for TTLs`,
  );
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

/**
 * Per tenant, Redis holds the sizes of its keys (hash KEYS[2]), their sum (KEYS[3]) and their
 * expiry times (sorted set KEYS[4]), changed in the same script as the value, so the count is
 * exact under any concurrency. Each Save first forgets the tenant's entries whose time has passed
 * (work proportional to what expired, never a scan of the tenant's keys), then checks the quota.
 * The bookkeeping keys expire no sooner than the longest-lived value they count. (A value Redis
 * evicts under maxmemory before its TTL still counts until its TTL passes: give the cache's Redis
 * noeviction or a volatile-* policy.)
 */
const saveScript = `
local vkey, sizes, total, expiries = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local value, ttl, maxKeys, maxBytes, size, field = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6]
if redis.call('EXISTS', vkey) == 1 then return {0, 0, 0} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local gone = redis.call('ZRANGEBYSCORE', expiries, '-inf', now)
gone[#gone + 1] = field -- this key's own entry, if its value is gone (expired or evicted)
for _, g in ipairs(gone) do
  local s = redis.call('HGET', sizes, g)
  if s then
    redis.call('HDEL', sizes, g)
    redis.call('DECRBY', total, s)
  end
  redis.call('ZREM', expiries, g)
end
local count = redis.call('HLEN', sizes)
local used = tonumber(redis.call('GET', total) or '0')
if count + 1 > maxKeys or used + size > maxBytes then return {-1, count, used} end
redis.call('SET', vkey, value, 'EX', ttl)
redis.call('HSET', sizes, field, size)
redis.call('INCRBY', total, size)
redis.call('ZADD', expiries, now + ttl * 1000, field)
for _, k in ipairs({sizes, total, expiries}) do
  if redis.call('TTL', k) < ttl then redis.call('EXPIRE', k, ttl) end
end
return {1, 0, 0}
`;

const deleteScript = `
local n = redis.call('DEL', KEYS[1])
local size = redis.call('HGET', KEYS[2], ARGV[1])
if size then
  redis.call('HDEL', KEYS[2], ARGV[1])
  redis.call('DECRBY', KEYS[3], size)
end
redis.call('ZREM', KEYS[4], ARGV[1])
return n
`;

type ScriptedRedis = Redis & {
  crmCacheSave(vkey: string, sizes: string, total: string, expiries: string, ...args: (string | number | Buffer)[]): Promise<[number, number, number]>;
  crmCacheDelete(vkey: string, sizes: string, total: string, expiries: string, field: string): Promise<number>;
};

/**
 * Redis keys: `<prefix><tenant>:<key>` for values (as before quotas), `<prefix>quota:<tenant>:sizes`,
 * `…:bytes` and `…:expiries` for the bookkeeping (a tenant id is a UUID, never "quota"). Every key
 * a script touches is declared in KEYS; they are not in one hash slot, so this needs a single
 * Redis (or a primary with replicas), not Redis Cluster.
 */
export function redisStore(redis: Redis, opts: { prefix: string; quota: Quota }): CacheStore {
  const r = redis as ScriptedRedis;
  r.defineCommand("crmCacheSave", { numberOfKeys: 4, lua: saveScript });
  r.defineCommand("crmCacheDelete", { numberOfKeys: 4, lua: deleteScript });
  const { prefix, quota } = opts;
  const keys = (tenant: string, key: string) =>
    [`${prefix}${tenant}:${key}`, `${prefix}quota:${tenant}:sizes`, `${prefix}quota:${tenant}:bytes`, `${prefix}quota:${tenant}:expiries`] as const;
  return {
    save: (tenant, key, value, ttlSeconds) =>
      guarded(async () => {
        const size = quotaBytes(key, value);
        const [status, count, used] = await r.crmCacheSave(
          ...keys(tenant, key),
          Buffer.from(value.buffer, value.byteOffset, value.byteLength),
          ttlSeconds,
          quota.maxKeys,
          quota.maxBytes,
          size,
          key,
        );
        if (status === -1) throw quotaExceeded(quota, { keys: count, bytes: used }, size);
        return status === 1;
      }),
    get: (tenant, key) =>
      guarded(async () => {
        const k = keys(tenant, key)[0];
        const res = await redis.multi().getBuffer(k).pttl(k).exec();
        if (!res) throw new Error("transaction aborted");
        const [[e1, value], [e2, pttl]] = res as [[Error | null, Buffer | null], [Error | null, number]];
        if (e1 || e2) throw e1 ?? e2;
        if (value === null) return undefined;
        return { value: new Uint8Array(value), ttlMs: pttl < 0 ? 0 : pttl };
      }),
    delete: (tenant, key) => guarded(async () => (await r.crmCacheDelete(...keys(tenant, key), key)) > 0),
    ready: async () => void (await redis.ping()),
  };
}

interface Entry {
  value: Uint8Array;
  expiresAt: number;
  /** Against the tenant's quota (key + value bytes). */
  size: number;
  /** Against the process's memory pool (with per-entry overhead). */
  cost: number;
}

interface Tenant {
  entries: Map<string, Entry>; // insertion order: the oldest first
  bytes: number;
}

/**
 * In-process store: lazy expiry on access, per-tenant quotas, and a memory pool (`maxBytes`) that,
 * when full, is made room in by dropping expired keys, then the saving tenant's own oldest keys.
 */
export function memoryStore(opts: { maxBytes: number; quota: Quota; now?: () => number }): CacheStore & { readonly bytes: number; readonly size: number } {
  const now = opts.now ?? Date.now;
  const { quota } = opts;
  const tenants = new Map<string, Tenant>();
  let bytes = 0;
  let size = 0;
  let sweptAllAt = Number.NEGATIVE_INFINITY;
  const costOf = (key: string, value: Uint8Array) => key.length * 2 + value.byteLength + 64;
  const remove = (t: Tenant, key: string) => {
    const e = t.entries.get(key);
    if (!e) return false;
    t.entries.delete(key);
    t.bytes -= e.size;
    bytes -= e.cost;
    size -= 1;
    return true;
  };
  const live = (t: Tenant | undefined, key: string) => {
    const e = t?.entries.get(key);
    if (e && e.expiresAt <= now()) {
      remove(t!, key);
      return undefined;
    }
    return e;
  };
  const sweep = (t: Tenant) => {
    const at = now();
    for (const [k, e] of t.entries) if (e.expiresAt <= at) remove(t, k);
  };
  return {
    get bytes() {
      return bytes;
    },
    get size() {
      return size;
    },
    async save(tenant, key, value, ttlSeconds) {
      let t = tenants.get(tenant);
      if (live(t, key)) return false;
      const needed = quotaBytes(key, value);
      const cost = costOf(key, value);
      if (t && (t.entries.size + 1 > quota.maxKeys || t.bytes + needed > quota.maxBytes)) sweep(t);
      if (t && (t.entries.size + 1 > quota.maxKeys || t.bytes + needed > quota.maxBytes)) {
        throw quotaExceeded(quota, { keys: t.entries.size, bytes: t.bytes }, needed);
      }
      if (bytes + cost > opts.maxBytes) {
        // Dropping every tenant's expired keys walks the whole pool: at most once a second, so a
        // refused company cannot make each of its calls cost that much.
        if (now() - sweptAllAt >= 1_000) {
          sweptAllAt = now();
          for (const [id, other] of tenants) {
            sweep(other);
            if (other.entries.size === 0 && id !== tenant) tenants.delete(id);
          }
        }
        if (t) for (const k of t.entries.keys()) {
          if (bytes + cost <= opts.maxBytes) break;
          remove(t, k); // the saving tenant's own oldest keys, never another's
        }
        if (bytes + cost > opts.maxBytes) {
          throw new AppError("quota_exceeded", `the cache of this server is full (CACHE_MEMORY_MAX_BYTES=${opts.maxBytes}, held by other companies' live keys); try again when their TTLs run out, or ask the operator to raise CACHE_MEMORY_MAX_BYTES or set REDIS_URL`);
        }
      }
      if (!t) tenants.set(tenant, (t = { entries: new Map(), bytes: 0 }));
      t.entries.set(key, { value: value.slice(), expiresAt: now() + ttlSeconds * 1000, size: needed, cost });
      t.bytes += needed;
      bytes += cost;
      size += 1;
      return true;
    },
    async get(tenant, key) {
      const e = live(tenants.get(tenant), key);
      return e ? { value: e.value.slice(), ttlMs: e.expiresAt - now() } : undefined;
    },
    async delete(tenant, key) {
      const t = tenants.get(tenant);
      const ok = live(t, key) ? remove(t!, key) : false;
      if (t && t.entries.size === 0) tenants.delete(tenant);
      return ok;
    },
    async ready() {},
  };
}

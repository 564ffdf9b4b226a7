/**
 * Cache-aside of each user's running timer in Redis, built so that it never gives a wrong answer:
 *
 * - Versioned keys instead of "delete then hope": a value lives under
 *   `crm:timer:v:{epoch}:{user}:{gen}` (user ids are UUIDs, unique across companies). A write of the user's timers bumps the user's
 *   `gen` AFTER the database committed; a reader that read the database before the commit fills
 *   the old version's key, which no later read looks at (the classic cache-aside race is gone).
 * - Redis trouble degrades to the database: every call has a short timeout, and after a failure
 *   the cache is skipped for a second (a circuit breaker), so reads go to the database.
 * - A write whose invalidation could not reach Redis is not forgotten: the replica marks itself
 *   unsynced, and before it uses the cache again it bumps the global `epoch`, which retires every
 *   cached value at once. The same happens whenever the connection to Redis closes (a Redis
 *   restart from an old snapshot would otherwise bring old values back) and at start.
 *   Residual risk, bounded by the TTL: while ONE replica cannot reach Redis but another can, the
 *   other may serve a value the first one could not invalidate, until the first reconnects.
 */
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import type { Redis } from "ioredis";
import type { Logger } from "@crm/kit";
import { TimerSchema, type Timer } from "@crm/gen/crm/timer/v1/timer_pb";

export type Lookup =
  | { hit: true; timer: Timer | undefined }
  /** A miss: after reading the database, `fill` stores the answer under the version read here. */
  | { hit: false; fill(timer: Timer | undefined): void };

export interface RunningCache {
  lookup(userId: string): Promise<Lookup>;
  /** After every write of the user's timers (whether it succeeded or not). */
  invalidate(userId: string): Promise<void>;
  /** When a write may have changed a timer of an unknown user (an ambiguous failure). */
  invalidateAll(): Promise<void>;
}

const skip: Lookup = { hit: false, fill: () => {} };

/** No Redis (all-in-one without REDIS_URL): every read goes to the database. */
export const noCache: RunningCache = {
  lookup: async () => skip,
  invalidate: async () => {},
  invalidateAll: async () => {},
};

export interface RedisCacheOptions {
  ttlSeconds: number;
  log: Logger;
  /** Per-command timeout (ms); default 250. */
  timeoutMs?: number;
  /** How long the cache is skipped after a failure (ms); default 1000. */
  breakMs?: number;
}

const EPOCH = "crm:timer:epoch";
const NONE = "-";

// KEYS[1] epoch, KEYS[2] the user's gen; ARGV[1] the value key prefix ("crm:timer:v:"), ARGV[2] the user id.
const READ = `
local e = redis.call('GET', KEYS[1]) or '0'
local g = redis.call('GET', KEYS[2]) or '0'
return {e, g, redis.call('GET', ARGV[1] .. e .. ':' .. ARGV[2] .. ':' .. g)}`;
// KEYS[1] the user's gen; ARGV[1] its TTL in ms.
const BUMP = `
local g = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return g`;

interface Commands {
  crmTimerRead(epochKey: string, genKey: string, prefix: string, who: string): Promise<[string, string, string | null]>;
  crmTimerBump(genKey: string, ttlMs: number): Promise<number>;
}

class Unavailable extends Error {}

export function redisRunningCache(redis: Redis, opts: RedisCacheOptions): RunningCache {
  const ttlMs = opts.ttlSeconds * 1000;
  const genTtlMs = Math.max(ttlMs * 10, 86_400_000);
  const timeoutMs = opts.timeoutMs ?? 250;
  const breakMs = opts.breakMs ?? 1000;
  if (!(redis as unknown as Partial<Commands>).crmTimerRead) {
    redis.defineCommand("crmTimerRead", { numberOfKeys: 2, lua: READ });
    redis.defineCommand("crmTimerBump", { numberOfKeys: 1, lua: BUMP });
  }
  const cmd = redis as unknown as Commands & Redis;

  let synced = false;
  let brokenUntil = 0;
  let lastWarn = 0;
  redis.on("close", () => (synced = false));

  const withTimeout = <T>(p: Promise<T>): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Unavailable(`redis did not answer within ${timeoutMs} ms`)), timeoutMs);
      p.then(
        (v) => (clearTimeout(timer), resolve(v)),
        (e) => (clearTimeout(timer), reject(e)),
      );
    });

  /** Runs op against Redis, first retiring every cached value if this replica may have missed an invalidation. */
  async function use<T>(op: () => Promise<T>): Promise<T> {
    if (Date.now() < brokenUntil) throw new Unavailable("redis circuit open");
    try {
      if (!synced) {
        await withTimeout(cmd.incr(EPOCH));
        synced = true;
      }
      return await withTimeout(op());
    } catch (err) {
      synced = false;
      brokenUntil = Date.now() + breakMs;
      if (Date.now() - lastWarn > 10_000) {
        lastWarn = Date.now();
        opts.log.warn({ err: (err as Error).message }, "running-timer cache unavailable: reading the database instead");
      }
      throw err;
    }
  }

  const genKey = (userId: string) => `crm:timer:g:${userId}`;

  return {
    async lookup(userId) {
      let read: [string, string, string | null];
      try {
        read = await use(() => cmd.crmTimerRead(EPOCH, genKey(userId), "crm:timer:v:", userId));
      } catch {
        return skip;
      }
      const [epoch, gen, value] = read;
      if (value !== null) {
        try {
          return { hit: true, timer: value === NONE ? undefined : fromBinary(TimerSchema, Buffer.from(value, "base64")) };
        } catch {
          // Unreadable (another version's format): treat as a miss and overwrite it.
        }
      }
      const key = `crm:timer:v:${epoch}:${userId}:${gen}`;
      return {
        hit: false,
        fill(timer) {
          const payload = timer ? Buffer.from(toBinary(TimerSchema, timer)).toString("base64") : NONE;
          use(() => cmd.set(key, payload, "PX", ttlMs)).catch(() => {});
        },
      };
    },

    async invalidate(userId) {
      // A failure leaves `synced` false: the epoch is bumped before the cache is used again.
      await use(() => cmd.crmTimerBump(genKey(userId), genTtlMs)).catch(() => {});
    },

    async invalidateAll() {
      await use(() => cmd.incr(EPOCH)).catch(() => {});
    },
  };
}

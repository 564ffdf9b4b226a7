/**
 * The revocation list: sessions that ended before their access tokens expire.
 * Redis in a cluster (every replica of every service sees it at once), memory in all-in-one.
 * An entry lives as long as an access token can (15 min), after which the token is dead anyway.
 *
 * With Redis, each process answers from a local mirror instead of asking Redis on every call:
 * revokeSessions writes the keys and PUBLISHes them in one MULTI; a subscriber connection applies
 * the messages and, after every (re)subscribe, reloads the whole list (SCAN + PTTL). The mirror
 * answers only while it is live: subscribed, loaded, and its connection answered a PING within
 * the lease. Otherwise (starting, disconnected, reloading, silent connection) every check is
 * an EXISTS on the main connection, which rejects when Redis is unreachable (fail closed).
 *
 * Redis may lose its data (a restart without persistence, a restore from an older snapshot, a
 * failover to a replica that lagged, FLUSHALL, eviction). PostgreSQL (sessions.revoked_at) is the
 * source of truth and the list in Redis is its mirror: whoever holds the database (dbservice, with
 * keepRevocationList below) rebuilds it and then sets the generation key `<namespace>:generation`
 * to "<run_id of this Redis server> <time> <random>". A list is complete only under a generation
 * of the Redis server that answers (a restored snapshot carries an older run_id), so no process
 * loads a mirror, or answers from Redis, without a valid generation: until dbservice rebuilt the
 * list every check fails closed with `unavailable`.
 */
import { randomUUID } from "node:crypto";
import { once } from "node:events";
import type { Redis } from "ioredis";
import { AppError } from "./errors.js";
import type { Logger } from "pino"; // not ./logger.js: logger.ts imports this module, directly or not

export interface Revocations {
  isSessionRevoked(sessionId: string): Promise<boolean>;
  revokeSessions(sessionIds: string[], ttlSeconds: number): Promise<void>;
  /**
   * Calls `listener` with the sessions this process has just learnt are revoked: its own
   * revokeSessions, and with Redis also ids arriving over pub/sub and ids first seen on a reload.
   * An id may be reported more than once; a listener that throws is logged and the others still run.
   * Returns the function that removes the listener. Long-lived streams end through it (streams.ts).
   */
  onRevoked(listener: RevokedListener): () => void;
  /** Releases what the list holds (connections, timers). */
  close?(): Promise<void>;
}

export type RevokedListener = (sessionIds: string[]) => void;

/** The listeners of onRevoked: a throw in one is logged and does not stop the others. */
function revokedListeners(log?: Logger) {
  const listeners = new Set<RevokedListener>();
  return {
    add(listener: RevokedListener): () => void {
      const own = (ids: string[]) => listener(ids); // the same function added twice is two listeners
      listeners.add(own);
      return () => void listeners.delete(own);
    },
    emit(ids: string[]) {
      if (ids.length === 0) return;
      for (const l of [...listeners]) {
        try {
          l(ids);
        } catch (err) {
          log?.error({ err: String(err) }, "revocation listener failed");
        }
      }
    },
  };
}

export function memoryRevocations(now: () => number = Date.now, log?: Logger): Revocations {
  const until = new Map<string, number>();
  const revoked = revokedListeners(log);
  return {
    async isSessionRevoked(sid) {
      const t = until.get(sid);
      if (t === undefined) return false;
      if (t > now()) return true;
      until.delete(sid);
      return false;
    },
    async revokeSessions(ids, ttl) {
      for (const id of ids) until.set(id, now() + ttl * 1000);
      revoked.emit(ids);
    },
    onRevoked: revoked.add,
  };
}

/** The default namespace: keys `crm:revoked:<session id>`, the channel `crm:revoked`, `crm:revoked:generation`. */
export const revocationNamespace = "crm:revoked";
/** The pub/sub channel: each message is {"ttl": seconds, "ids": [session ids]}. */
export const revocationChannel = revocationNamespace;

/** How long a revocation must be listed: as long as an access token issued before it can live, plus clock skew. */
export const revocationTtlSeconds = (accessTokenTtlSeconds: number) => accessTokenTtlSeconds + 60;

/** The Redis names of one revocation list. */
export function revocationKeys(namespace = revocationNamespace) {
  const prefix = `${namespace}:`;
  const generation = `${prefix}generation`;
  const rebuilding = `${prefix}rebuilding`;
  return {
    prefix,
    channel: namespace,
    generation,
    rebuilding,
    key: (sid: string) => `${prefix}${sid}`,
    /** A session's key (not the generation or rebuild marker). */
    isSession: (k: string) => k.startsWith(prefix) && k !== generation && k !== rebuilding,
  };
}

/** The run_id of the Redis server `redis` is connected to, asked again after every reconnect. */
function runIdOf(redis: Redis): () => Promise<string> {
  let current: Promise<string> | undefined;
  const forget = () => void (current = undefined);
  redis.on("close", forget);
  redis.on("reconnecting", forget);
  redis.on("end", forget);
  return () =>
    (current ??= redis.info("server").then(
      (text) => {
        const m = /^run_id:(\w+)/m.exec(text);
        if (!m) throw new Error("Redis INFO server has no run_id");
        return m[1]!;
      },
      (err: unknown) => {
        current = undefined;
        throw err;
      },
    ));
}

/** True when `generation` was set by a complete rebuild on the server whose run_id is `runId`. */
export const generationValid = (generation: string | null | undefined, runId: string) => typeof generation === "string" && generation.startsWith(`${runId} `);

/** The address of a Redis client, for messages ("127.0.0.1:6379"). */
export const redisAddress = (redis: Redis) => (redis.options.path ? redis.options.path : `${redis.options.host ?? "127.0.0.1"}:${redis.options.port ?? 6379}`);

export class RevocationListIncompleteError extends AppError {
  constructor(address: string) {
    super(
      "unavailable",
      `the session revocation list in Redis at ${address} is not complete (Redis lost its data; dbservice rebuilds it from PostgreSQL within seconds), so no token can be checked: try again shortly`,
    );
  }
}

export interface RedisRevocationsOptions {
  /** Clock of the entries' expiry (wall clock, as the tokens' exp); injectable for tests. */
  now?: () => number;
  log?: Logger;
  /** The subscriber is PINGed this often; the mirror answers only within 3 intervals of the last answered PING. */
  heartbeatMs?: number;
  /** Clock of that lease (performance.now); injectable for tests. */
  monotonic?: () => number;
  /** Key namespace (tests use their own). Default "crm:revoked". */
  namespace?: string;
}

export interface RedisRevocations extends Revocations {
  /** True while answers come from the local mirror (subscribed, loaded, heartbeat fresh). */
  readonly live: boolean;
  close(): Promise<void>;
}

export function redisRevocations(redis: Redis, opts: RedisRevocationsOptions = {}): RedisRevocations {
  const now = opts.now ?? Date.now;
  const mono = opts.monotonic ?? (() => performance.now());
  const log = opts.log;
  const heartbeatMs = opts.heartbeatMs ?? 1_000;
  const leaseMs = 3 * heartbeatMs;
  const names = revocationKeys(opts.namespace);
  const { prefix, key } = names;
  const revocationChannel = names.channel;
  const runId = runIdOf(redis);
  const address = redisAddress(redis);
  let incompleteSince: number | undefined; // when a load last found no valid generation (logged once per episode)
  const until = new Map<string, number>(); // session id → expiry (ms, `now` clock)
  const revoked = revokedListeners(log);
  // Bumped whenever the subscriber's connection changes: a subscribe, load or PING of an older epoch counts for nothing.
  let epoch = 0;
  let subscribed = false;
  let loaded = false;
  let loads = 0; // the newest load wins (an unreadable message starts another)
  let heardAt = -Infinity; // monotonic time when the last answered PING (or the SUBSCRIBE) was sent
  let pinging = false;
  let closed = false;
  let retry: NodeJS.Timeout | undefined;
  let purgedAt = 0;

  const isLive = () => loaded && mono() - heardAt < leaseMs;
  /** Returns true when the id was not (or no longer) known as revoked: news for onRevoked's listeners. */
  const remember = (sid: string, expiry: number): boolean => {
    const t = until.get(sid);
    if (t === undefined || t < expiry) until.set(sid, expiry);
    return t === undefined || t <= now();
  };
  const purge = () => {
    const t = now();
    for (const [sid, expiry] of until) if (expiry <= t) until.delete(sid);
    purgedAt = mono();
  };

  // Same options (address, auth, TLS, retryStrategy) as the main connection; it subscribes by itself on every ready.
  const sub = redis.duplicate({
    autoResubscribe: false,
    enableOfflineQueue: false,
    enableAutoPipelining: false,
    lazyConnect: false,
    connectionName: `${redis.options.connectionName ?? "crm"}-revocations`,
  });

  const down = () => {
    epoch++;
    subscribed = false;
    loaded = false;
    pinging = false;
    clearTimeout(retry);
  };
  // Before any message could be missed: the socket is gone, so answers go to Redis until the reload.
  sub.on("close", down);
  sub.on("end", down);
  sub.on("reconnecting", down);
  sub.on("error", (err: Error) => log?.warn({ err: err.message }, "redis error (revocations subscriber)"));
  sub.on("ready", () => void onReady());
  sub.on("message", (channel: string, text: string) => {
    if (channel !== revocationChannel) return;
    const msg = parse(text);
    if (msg) {
      const expiry = now() + msg.ttl * 1000;
      revoked.emit(msg.ids.filter((id) => remember(id, expiry)));
      return;
    }
    // Something this version cannot read may have named sessions: answer from Redis until a reload.
    log?.warn({ message: text.slice(0, 200) }, "unreadable revocation message; reloading the revocation list");
    if (subscribed) {
      loaded = false;
      void load(epoch, 0);
    }
  });

  async function onReady() {
    down();
    if (closed) return;
    const e = epoch;
    const sent = mono();
    try {
      await sub.subscribe(revocationChannel);
    } catch (err) {
      // Answers stay with Redis; the next reconnect tries again.
      if (e === epoch) log?.warn({ err: String(err) }, "cannot subscribe to revocations; checking each session in Redis");
      return;
    }
    if (e !== epoch) return;
    subscribed = true;
    heardAt = sent;
    await load(e, 0);
  }

  /** SCAN + PTTL (pipelined) into the map, merged with what messages brought meanwhile; live when done in the same epoch. */
  async function load(e: number, attempt: number) {
    clearTimeout(retry);
    const mine = ++loads;
    const current = () => e === epoch && mine === loads && !closed;
    let incomplete = false;
    try {
      const rid = await runId();
      const before = await redis.get(names.generation);
      if (!current()) return;
      if (!generationValid(before, rid)) {
        incomplete = true;
        throw new RevocationListIncompleteError(address);
      }
      let cursor = "0";
      do {
        const [next, keys] = await redis.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 1000);
        if (!current()) return;
        cursor = next;
        if (keys.length === 0) continue;
        const p = redis.pipeline();
        for (const k of keys) p.pttl(k);
        const res = (await p.exec()) ?? [];
        const at = now();
        const fresh: string[] = []; // revoked while this process was not subscribed
        try {
          keys.forEach((k, i) => {
            const [err, ms] = res[i] ?? [new Error("no reply")];
            if (err) throw err;
            if (typeof ms !== "number" || ms === -2 || !names.isSession(k)) return; // expired between SCAN and PTTL; the generation
            const sid = k.slice(prefix.length);
            if (remember(sid, ms === -1 ? Infinity : at + ms)) fresh.push(sid);
          });
        } finally {
          revoked.emit(fresh); // remembered ones are news once only, even when the load fails midway
        }
      } while (cursor !== "0");
      // Lost and rebuilt during the scan: what was read may be a part of the list.
      if ((await redis.get(names.generation)) !== before) throw new Error("the revocation list's generation changed while it was read");
    } catch (err) {
      if (!current()) return;
      // A missing generation is waited for closely (dbservice rebuilds within seconds); other failures back off.
      const delay = incomplete ? Math.min(100 * 2 ** attempt, 1_000) : Math.min(100 * 2 ** attempt, 5_000);
      if (!incomplete) log?.warn({ err: String(err), retryMs: delay }, "cannot load the revocation list; checking each session in Redis meanwhile");
      else if (incompleteSince === undefined) {
        incompleteSince = mono();
        log?.warn({ redis: address }, "the revocation list in Redis has no valid generation (a first start, or Redis lost its data): refusing every token until dbservice has rebuilt it from PostgreSQL");
      }
      retry = setTimeout(() => void load(e, attempt + 1), delay);
      retry.unref();
      return;
    }
    if (!current()) return;
    purge();
    loaded = true;
    if (incompleteSince !== undefined) {
      log?.info({ redis: address, waitedMs: Math.round(mono() - incompleteSince) }, "the revocation list in Redis is complete again");
      incompleteSince = undefined;
    }
  }

  // Heartbeat: a connection that went silent (no close seen) must not keep the mirror live; a PING
  // answered proves every message published before it was sent has been applied (same socket, in order).
  const heartbeat = setInterval(() => {
    if (mono() - purgedAt > 60_000) purge(); // entries live ≤ 15 min: the map stays as small as the list
    if (!subscribed || sub.status !== "ready") return;
    if (pinging) {
      if (mono() - heardAt >= leaseMs) {
        log?.warn({ silentMs: Math.round(mono() - heardAt) }, "revocations subscriber is silent; reconnecting it");
        down();
        sub.disconnect(true);
      }
      return;
    }
    const e = epoch;
    const sent = mono();
    pinging = true;
    sub.ping().then(
      () => {
        if (e !== epoch) return;
        heardAt = sent;
        pinging = false;
      },
      () => {
        if (e === epoch) pinging = false; // no answer, no lease: the next tick tries again
      },
    );
  }, heartbeatMs);
  heartbeat.unref();

  const onMainEnd = () => void close();
  redis.once("end", onMainEnd); // the main client quit: nothing left to fall back on, so stop too

  async function close() {
    if (closed) return;
    closed = true;
    clearInterval(heartbeat);
    redis.off("end", onMainEnd);
    down();
    until.clear();
    const status = sub.status;
    if (status === "end") return;
    const ended = new Promise<void>((resolve) => sub.once("end", () => resolve()));
    sub.disconnect();
    // Only a connection with a socket emits "end" after disconnect(); a reconnecting one just stops.
    if (status === "connecting" || status === "connect" || status === "ready") await ended;
  }

  return {
    get live() {
      return isLive();
    },
    async isSessionRevoked(sid) {
      if (isLive()) {
        const t = until.get(sid);
        if (t === undefined) return false;
        if (t > now()) return true;
        until.delete(sid);
        return false;
      }
      // What this process knows is true even when Redis is not: revocations are never undone.
      const t = until.get(sid);
      if (t !== undefined && t > now()) return true;
      // The key and the generation in one transaction: a list lost and rebuilt between two reads cannot pass for complete.
      const rid = await runId();
      const res = await redis.multi().exists(key(sid)).get(names.generation).exec();
      if (!res) throw new Error("the revocation check transaction was aborted");
      const [[existsErr, exists] = [], [genErr, generation] = []] = res;
      if (existsErr ?? genErr) throw existsErr ?? genErr;
      if (exists === 1) return true;
      if (!generationValid(generation as string | null, rid)) throw new RevocationListIncompleteError(address);
      return false;
    },
    async revokeSessions(ids, ttl) {
      if (ids.length === 0) return;
      // This process knows at once, before Redis is written (a write that fails still counts here;
      // dbservice's reconciliation brings it to Redis from PostgreSQL).
      const expiry = now() + ttl * 1000;
      revoked.emit(ids.filter((id) => remember(id, expiry)));
      const m = redis.multi();
      for (const id of ids) m.set(key(id), "1", "EX", ttl);
      m.publish(revocationChannel, JSON.stringify({ ttl, ids }));
      const res = await m.exec();
      if (!res) throw new Error("revocation transaction was aborted");
      for (const [err] of res) if (err) throw err;
    },
    onRevoked: revoked.add,
    close,
  };
}

/** A revoked session to list again, with what is left of its time on the list. */
export interface RevokedEntry {
  sessionId: string;
  ttlSeconds: number;
}

export interface RevocationKeeperOptions {
  /** Every session revoked recently enough that its access tokens may still be alive (from PostgreSQL). */
  recent(): Promise<RevokedEntry[]>;
  log?: Logger;
  /** How often the generation is checked (a lost list is rebuilt within this). Default 1 s. */
  checkMs?: number;
  /** How often the list is reconciled with PostgreSQL (entries a failed Redis write missed). Default 5 s. */
  reconcileMs?: number;
  namespace?: string;
}

export interface RevocationKeeper {
  /** One check now: rebuild when the generation is not valid, else reconcile. Resolves to the number of entries added. */
  sync(): Promise<number>;
  close(): Promise<void>;
}

/**
 * Keeps the Redis revocation list a complete mirror of PostgreSQL (run where the database is:
 * dbservice, and the all-in-one with REDIS_URL). When the generation is missing or belongs to
 * another Redis run (Redis lost its data), the list is rebuilt from `recent()` and the generation
 * set, atomically (one script) and only if Redis was not lost again meanwhile (the rebuild marker
 * must still be there). Between rebuilds it reconciles: entries PostgreSQL has and Redis lacks (a
 * writer's Redis write failed after its commit) are added and published to the mirrors.
 */
export function keepRevocationList(main: Redis, o: RevocationKeeperOptions): RevocationKeeper {
  const names = revocationKeys(o.namespace);
  // Its own connection: the script and the marker must not interleave with a MULTI of the main client.
  const redis = main.duplicate({ connectionName: `${main.options.connectionName ?? "crm"}-revocation-keeper`, enableOfflineQueue: false, lazyConnect: false });
  redis.on("error", (err: Error) => o.log?.debug({ err: err.message }, "redis error (revocation keeper)"));
  const runId = runIdOf(redis);
  const address = redisAddress(redis);
  const checkMs = o.checkMs ?? 1_000;
  const reconcileMs = o.reconcileMs ?? 5_000;
  let reconciledAt = -Infinity;
  let running: Promise<number> | undefined;
  let failing = false;
  let closed = false;

  async function pass(): Promise<number> {
    if (redis.status !== "ready" && redis.status !== "end") await once(redis, "ready", { signal: AbortSignal.timeout(redis.options.connectTimeout ?? 2_000) }); // connecting
    const rid = await runId();
    const full = !generationValid(await redis.get(names.generation), rid);
    if (!full && performance.now() - reconciledAt < reconcileMs) return 0;
    const marker = randomUUID();
    await redis.set(names.rebuilding, marker, "EX", 120);
    const started = performance.now();
    const entries = (await o.recent()).filter((e) => e.ttlSeconds > 0);
    const args = [marker, names.prefix, full ? `${rid} ${new Date().toISOString()} ${randomUUID()}` : ""];
    for (const e of entries) args.push(e.sessionId, String(Math.ceil(e.ttlSeconds)));
    const added = (await redis.eval(rebuildScript, 2, names.rebuilding, names.generation, ...args)) as string[] | number;
    if (!Array.isArray(added)) throw new Error("Redis lost the list again during the rebuild; rebuilding once more");
    reconciledAt = performance.now();
    // The mirrors learn of what was missing; grouped by TTL (one message carries one TTL).
    const ttlOf = new Map(entries.map((e) => [e.sessionId, Math.ceil(e.ttlSeconds)]));
    const byTtl = new Map<number, string[]>();
    for (const id of added) byTtl.set(ttlOf.get(id)!, [...(byTtl.get(ttlOf.get(id)!) ?? []), id]);
    for (const [ttl, ids] of byTtl) await redis.publish(names.channel, JSON.stringify({ ttl, ids }));
    if (full) o.log?.warn({ redis: address, restored: added.length, listed: entries.length, ms: Math.round(performance.now() - started) }, "the revocation list in Redis had no valid generation (a first start, or Redis lost its data): rebuilt from PostgreSQL");
    else if (added.length) o.log?.warn({ redis: address, restored: added.length }, "revocations missing from Redis (a write failed after its commit) were restored from PostgreSQL");
    return added.length;
  }

  function sync(): Promise<number> {
    running ??= pass()
      .then(
        (n) => {
          if (failing) o.log?.info({ redis: address }, "revocation keeper: Redis and PostgreSQL answer again");
          failing = false;
          return n;
        },
        (err: unknown) => {
          if (!failing && !closed) o.log?.warn({ redis: address, err: String((err as Error)?.message ?? err) }, "revocation keeper cannot check the list; retrying");
          failing = true;
          throw err;
        },
      )
      .finally(() => (running = undefined));
    return running;
  }

  const timer = setInterval(() => void sync().catch(() => {}), checkMs);
  timer.unref();
  redis.on("ready", () => void sync().catch(() => {}));

  return {
    sync,
    async close() {
      closed = true;
      clearInterval(timer);
      await running?.catch(() => {});
      redis.disconnect();
    },
  };
}

/**
 * KEYS: rebuild marker, generation. ARGV: marker value, key prefix, new generation ("" = keep),
 * then session id, ttl pairs. Adds missing entries (existing ones keep their TTL), returns their ids;
 * -1 when the marker is gone (Redis lost its data since the rebuild began).
 */
const rebuildScript = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
local added = {}
for i = 4, #ARGV, 2 do
  if redis.call('SET', ARGV[2] .. ARGV[i], '1', 'EX', tonumber(ARGV[i + 1]), 'NX') then added[#added + 1] = ARGV[i] end
end
if ARGV[3] ~= '' then redis.call('SET', KEYS[2], ARGV[3]) end
redis.call('DEL', KEYS[1])
return added
`;

function parse(text: string): { ttl: number; ids: string[] } | undefined {
  try {
    const v = JSON.parse(text) as { ttl?: unknown; ids?: unknown };
    if (typeof v.ttl !== "number" || !(v.ttl > 0) || !Array.isArray(v.ids) || !v.ids.every((id) => typeof id === "string")) return undefined;
    return { ttl: v.ttl, ids: v.ids as string[] };
  } catch {
    return undefined;
  }
}

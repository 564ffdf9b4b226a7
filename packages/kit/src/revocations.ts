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
 * today's EXISTS on the main connection, which rejects when Redis is unreachable (fail closed).
 */
import type { Redis } from "ioredis";
import type { Logger } from "./logger.js";

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

const prefix = "crm:revoked:";
const key = (sid: string) => `${prefix}${sid}`;
/** The pub/sub channel: each message is {"ttl": seconds, "ids": [session ids]}. */
export const revocationChannel = "crm:revoked";

export interface RedisRevocationsOptions {
  /** Clock of the entries' expiry (wall clock, as the tokens' exp); injectable for tests. */
  now?: () => number;
  log?: Logger;
  /** The subscriber is PINGed this often; the mirror answers only within 3 intervals of the last answered PING. */
  heartbeatMs?: number;
  /** Clock of that lease (performance.now); injectable for tests. */
  monotonic?: () => number;
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
    try {
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
            if (typeof ms !== "number" || ms === -2) return; // expired between SCAN and PTTL
            const sid = k.slice(prefix.length);
            if (remember(sid, ms === -1 ? Infinity : at + ms)) fresh.push(sid);
          });
        } finally {
          revoked.emit(fresh); // remembered ones are news once only, even when the load fails midway
        }
      } while (cursor !== "0");
    } catch (err) {
      if (!current()) return;
      const delay = Math.min(100 * 2 ** attempt, 5_000);
      log?.warn({ err: String(err), retryMs: delay }, "cannot load the revocation list; checking each session in Redis meanwhile");
      retry = setTimeout(() => void load(e, attempt + 1), delay);
      retry.unref();
      return;
    }
    if (!current()) return;
    purge();
    loaded = true;
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
      return (await redis.exists(key(sid))) === 1;
    },
    async revokeSessions(ids, ttl) {
      if (ids.length === 0) return;
      const m = redis.multi();
      for (const id of ids) m.set(key(id), "1", "EX", ttl);
      m.publish(revocationChannel, JSON.stringify({ ttl, ids }));
      const res = await m.exec();
      if (!res) throw new Error("revocation transaction was aborted");
      for (const [err] of res) if (err) throw err;
      // This process knows at once (its own message may still be on the way).
      const expiry = now() + ttl * 1000;
      revoked.emit(ids.filter((id) => remember(id, expiry)));
    },
    onRevoked: revoked.add,
    close,
  };
}

function parse(text: string): { ttl: number; ids: string[] } | undefined {
  try {
    const v = JSON.parse(text) as { ttl?: unknown; ids?: unknown };
    if (typeof v.ttl !== "number" || !(v.ttl > 0) || !Array.isArray(v.ids) || !v.ids.every((id) => typeof id === "string")) return undefined;
    return { ttl: v.ttl, ids: v.ids as string[] };
  } catch {
    return undefined;
  }
}

/**
 * The revocation list: sessions that ended before their access tokens expire.
 * Redis in a cluster (every replica of every service sees it at once), memory in all-in-one.
 * An entry lives as long as an access token can (15 min), after which the token is dead anyway.
 */
import type { Redis } from "ioredis";

export interface Revocations {
  isSessionRevoked(sessionId: string): Promise<boolean>;
  revokeSessions(sessionIds: string[], ttlSeconds: number): Promise<void>;
}

export function memoryRevocations(now: () => number = Date.now): Revocations {
  const until = new Map<string, number>();
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
    },
  };
}

const key = (sid: string) => `crm:revoked:${sid}`;

export function redisRevocations(redis: Redis): Revocations {
  return {
    async isSessionRevoked(sid) {
      return (await redis.exists(key(sid))) === 1;
    },
    async revokeSessions(ids, ttl) {
      if (ids.length === 0) return;
      const m = redis.multi();
      for (const id of ids) m.set(key(id), "1", "EX", ttl);
      await m.exec();
    },
  };
}

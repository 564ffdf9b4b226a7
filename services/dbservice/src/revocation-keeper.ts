/**
 * dbservice keeps the Redis revocation list a complete mirror of sessions.revoked_at: it rebuilds
 * the list when Redis lost it and restores entries a failed Redis write missed (the mechanism is
 * the kit's keepRevocationList; this file supplies what PostgreSQL knows).
 */
import type { Redis } from "ioredis";
import { keepRevocationList, revocationTtlSeconds, type Logger, type RevocationKeeper, type RevokedEntry } from "@crm/kit";
import type { Db } from "./db.js";

/** Every session revoked within an access token's lifetime (+60 s), with what is left of that time. */
export function recentlyRevoked(db: Db, accessTokenTtlSeconds: number): () => Promise<RevokedEntry[]> {
  const window = revocationTtlSeconds(accessTokenTtlSeconds);
  return async () => {
    const { rows } = await db.system((sql) =>
      sql.query<{ session_id: string; ttl_seconds: number }>("SELECT session_id, ttl_seconds FROM crm_recently_revoked_sessions($1)", [window]),
    );
    return rows.map((r) => ({ sessionId: r.session_id, ttlSeconds: r.ttl_seconds }));
  };
}

export function startRevocationKeeper(o: { db: Db; redis: Redis; log: Logger; accessTokenTtlSeconds: number; checkMs?: number; reconcileMs?: number; namespace?: string }): RevocationKeeper {
  return keepRevocationList(o.redis, {
    recent: recentlyRevoked(o.db, o.accessTokenTtlSeconds),
    log: o.log,
    ...(o.checkMs !== undefined ? { checkMs: o.checkMs } : {}),
    ...(o.reconcileMs !== undefined ? { reconcileMs: o.reconcileMs } : {}),
    ...(o.namespace !== undefined ? { namespace: o.namespace } : {}),
  });
}

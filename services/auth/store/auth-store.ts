/**
 * The auth store, mounted by dbservice as DbAuthService: companies, users' logins and sessions.
 * Its schema (roles, companies, users, sessions, refresh tokens, the login and rotation
 * functions) is migrations/1700000000001_auth.sql.
 */
import { randomUUID } from "node:crypto";
import type { ServiceImpl } from "@connectrpc/connect";
import { timestampDate, timestampFromDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { AppError, invalid, isUuid, principalOf, requirePeer, requireRole, type Role } from "@crm/kit";
import { type DbAuthService, RotateRefreshTokenResponse_Outcome as Outcome, UserRole, UserStatus, type NewSession } from "@crm/gen/crm/db/v1/db_auth_pb";
import type { Db, Sql } from "@crm/dbservice/db";

export const roleToProto: Record<Role, UserRole> = { owner: UserRole.OWNER, admin: UserRole.ADMIN, member: UserRole.MEMBER };
export const statusToProto: Record<string, UserStatus> = { active: UserStatus.ACTIVE, invited: UserStatus.INVITED, deactivated: UserStatus.DEACTIVATED };

const outcomes: Record<string, Outcome> = { rotated: Outcome.ROTATED, unknown: Outcome.UNKNOWN, reused: Outcome.REUSED, ended: Outcome.ENDED };

function sessionTimes(s: NewSession | undefined): { hash: Buffer; expiresAt: Date; userAgent: string; ip: string } {
  if (!s || s.refreshHash.length !== 32 || !s.expiresAt) throw invalid([{ field: "session", description: "needs a 32-byte refreshHash and expiresAt" }]);
  return { hash: Buffer.from(s.refreshHash), expiresAt: timestampDate(s.expiresAt), userAgent: s.userAgent.slice(0, 512), ip: s.ip.slice(0, 64) };
}

async function insertSession(sql: Sql, companyId: string, userId: string, s: NewSession | undefined): Promise<string> {
  const { hash, expiresAt, userAgent, ip } = sessionTimes(s);
  // The SELECT runs under RLS: a user of another company yields no row (and no token). One statement:
  // the session and its refresh token in one round trip.
  const { rows } = await sql.query<{ id: string }>(
    `WITH s AS (
       INSERT INTO sessions (company_id, user_id, expires_at, user_agent, ip)
       SELECT company_id, id, $2, $3, $4 FROM users WHERE id = $1 AND status = 'active' RETURNING id, company_id)
     INSERT INTO refresh_tokens (hash, session_id, company_id) SELECT $5, id, company_id FROM s RETURNING session_id AS id`,
    [userId, expiresAt, userAgent, ip, hash],
  );
  if (!rows[0]) throw new AppError("not_found", `no active user ${userId} in company ${companyId}`);
  return rows[0].id;
}

const ts = (d: Date | null): Timestamp | undefined => (d ? timestampFromDate(d) : undefined);

/** The unique constraint behind a 23505 error, or undefined. */
function uniqueViolation(err: unknown): string | undefined {
  const e = err as { code?: string; constraint?: string };
  return e.code === "23505" ? (e.constraint ?? "") : undefined;
}

export function authStore(db: Db): ServiceImpl<typeof DbAuthService> {
  return {
    async registerCompany(req, ctx) {
      requirePeer(ctx, "auth");
      const companyId = randomUUID();
      try {
        return await db.tenant(companyId, async (sql) => {
          await sql.query("INSERT INTO companies (id, name, address, locale) VALUES ($1, $2, $3, $4)", [companyId, req.companyName, req.address, req.locale || "en"]);
          const { rows } = await sql.query<{ id: string }>(
            `INSERT INTO users (company_id, email, phone, name, role, status, password_hash)
             VALUES ($1, $2, $3, $4, 'owner', 'active', $5) RETURNING id`,
            [companyId, req.ownerEmail, req.ownerPhone || null, req.ownerName, req.passwordHash],
          );
          const userId = rows[0]!.id;
          const sessionId = await insertSession(sql, companyId, userId, req.session);
          return { companyId, userId, sessionId };
        });
      } catch (err) {
        const constraint = uniqueViolation(err);
        if (constraint === "users_email_key") throw new AppError("already_exists", `email ${req.ownerEmail} is already registered: log in instead, or reset the password`, [{ field: "email", description: "already registered" }]);
        if (constraint === "users_phone_key") throw new AppError("already_exists", `phone ${req.ownerPhone} is already registered: log in instead, or use another phone`, [{ field: "phone", description: "already registered" }]);
        throw err;
      }
    },

    async loginDB(req, ctx) {
      requirePeer(ctx, "auth");
      if (!req.email === !req.phone) throw invalid([{ field: "email", description: "give exactly one of email or phone" }]);
      const { rows } = await db.system((sql) =>
        sql.query<{ user_id: string; company_id: string; role: Role; status: string; password_hash: string | null }>("SELECT * FROM crm_login_lookup($1, $2)", [req.email || null, req.phone || null]),
      );
      const u = rows[0];
      if (!u) return { found: false };
      return { found: true, userId: u.user_id, companyId: u.company_id, role: roleToProto[u.role], status: statusToProto[u.status] ?? UserStatus.UNSPECIFIED, passwordHash: u.password_hash ?? "" };
    },

    async createSession(req, ctx) {
      requirePeer(ctx, "auth");
      if (!isUuid(req.companyId) || !isUuid(req.userId)) throw invalid([{ field: "userId", description: "userId and companyId must be UUIDs" }]);
      const sessionId = await db.tenant(req.companyId, (sql) => insertSession(sql, req.companyId, req.userId, req.session));
      return { sessionId };
    },

    async rotateRefreshToken(req, ctx) {
      requirePeer(ctx, "auth");
      if (req.oldHash.length !== 32 || req.newHash.length !== 32) throw invalid([{ field: "oldHash", description: "oldHash and newHash must be 32-byte SHA-256 digests" }]);
      const { rows } = await db.system((sql) =>
        sql.query<{ outcome: string; session_id: string | null; user_id: string | null; company_id: string | null; role: Role | null; expires_at: Date | null }>(
          "SELECT * FROM crm_rotate_refresh($1, $2)",
          [Buffer.from(req.oldHash), Buffer.from(req.newHash)],
        ),
      );
      const r = rows[0]!;
      return {
        outcome: outcomes[r.outcome] ?? Outcome.UNSPECIFIED,
        sessionId: r.session_id ?? "",
        userId: r.user_id ?? "",
        companyId: r.company_id ?? "",
        role: r.role ? roleToProto[r.role] : UserRole.UNSPECIFIED,
        expiresAt: ts(r.expires_at),
      };
    },

    async listSessions(_req, ctx) {
      const p = principalOf(ctx);
      const { rows } = await db.tenant(p.companyId, (sql) =>
        sql.query<{ id: string; created_at: Date; last_used_at: Date; expires_at: Date; user_agent: string; ip: string }>(
          `SELECT id, created_at, last_used_at, expires_at, user_agent, ip FROM sessions
           WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > now() ORDER BY last_used_at DESC`,
          [p.userId],
        ),
      );
      return {
        sessions: rows.map((s) => ({ sessionId: s.id, createdAt: ts(s.created_at), lastUsedAt: ts(s.last_used_at), expiresAt: ts(s.expires_at), userAgent: s.user_agent, ip: s.ip })),
      };
    },

    async revokeSession(req, ctx) {
      const p = principalOf(ctx);
      if (!isUuid(req.sessionId)) throw invalid([{ field: "sessionId", description: "must be a session id (UUID) from ListSessions" }]);
      const { rows } = await db.tenant(p.companyId, (sql) =>
        sql.query<{ user_id: string }>("UPDATE sessions SET revoked_at = now() WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL RETURNING user_id", [req.sessionId, p.userId]),
      );
      return { revoked: rows.length === 1, userId: p.userId };
    },

    async revokeAllSessions(req, ctx) {
      const p = req.userId && req.userId !== principalOf(ctx).userId ? requireRole(ctx, "owner", "admin") : principalOf(ctx);
      const userId = req.userId || p.userId;
      if (!isUuid(userId)) throw invalid([{ field: "userId", description: "must be a user id (UUID)" }]);
      const { rows } = await db.tenant(p.companyId, (sql) =>
        sql.query<{ id: string }>("UPDATE sessions SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL RETURNING id", [userId]),
      );
      return { sessionIds: rows.map((r) => r.id) };
    },
  };
}

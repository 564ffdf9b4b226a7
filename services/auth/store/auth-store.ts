/**
 * The auth store, mounted by dbservice as DbAuthService: companies, users' logins and sessions,
 * and API keys. Its schema (roles, companies, users, sessions, refresh tokens, the login and
 * rotation functions) is migrations/1700000000001_auth.sql; API keys are
 * migrations/1700000000131_api_keys.sql. Logins, logouts and API key changes are written to the
 * audit log in their own transaction (the admin store's auditLog, handed in by dbservice).
 */
import { randomUUID } from "node:crypto";
import type { ServiceImpl } from "@connectrpc/connect";
import { timestampDate, timestampFromDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { actorOf, AppError, invalid, isUuid, principalOf, requirePeer, requireRole, type Actor, type Principal, type Role } from "@crm/kit";
import {
  type ApiKeyRecord,
  type DbAuthService,
  RotateRefreshTokenResponse_Outcome as Outcome,
  UseApiKeyDBResponse_Outcome as KeyOutcome,
  UserRole,
  UserStatus,
  type NewSession,
} from "@crm/gen/crm/db/v1/db_auth_pb";
import type { Db, OutboxMessage, Sql } from "@crm/dbservice/db";
import { userEvent } from "@crm/contracts/tenant-events";
import { ActorType } from "@crm/gen/crm/admin/v1/audit_pb";
import { UserChange, UserStatus as ApiUserStatus } from "@crm/gen/crm/admin/v1/admin_pb";
import { Role as ApiRole } from "@crm/gen/crm/auth/v1/auth_pb";
import { apiKeyIdOf, apiKeyLimits, checkApiKey } from "../src/rules.js";

type AuthAuditEvent = { action: string; actor: Actor | { type: "anonymous" | "system"; id?: string; name?: string; userId?: string }; target?: { type: string; id: string }; ip?: string; details?: Record<string, string> };

/** The audit log as this store uses it (the admin store's auditLog; a store imports no other store). */
export interface AuthAudit {
  record(sql: Sql, events: AuthAuditEvent[]): Promise<void>;
  /** The events' INSERT as literal SQL for a script (nothing written unless `onlyIf` holds), and the outbox messages of the rows it returns. */
  script(sql: Sql, events: AuthAuditEvent[], onlyIf?: string): { text: string; outbox: (rows: unknown[]) => OutboxMessage[] };
  afterCommit(): void;
}

export interface AuthStoreDeps {
  audit: AuthAudit;
}

export const roleToProto: Record<Role, UserRole> = { owner: UserRole.OWNER, admin: UserRole.ADMIN, member: UserRole.MEMBER };
export const statusToProto: Record<string, UserStatus> = { active: UserStatus.ACTIVE, invited: UserStatus.INVITED, deactivated: UserStatus.DEACTIVATED };

const outcomes: Record<string, Outcome> = { rotated: Outcome.ROTATED, unknown: Outcome.UNKNOWN, reused: Outcome.REUSED, ended: Outcome.ENDED };

function sessionTimes(s: NewSession | undefined): { hash: Buffer; expiresAt: Date; userAgent: string; ip: string } {
  if (!s || s.refreshHash.length !== 32 || !s.expiresAt) throw invalid([{ field: "session", description: "needs a 32-byte refreshHash and expiresAt" }]);
  return { hash: Buffer.from(s.refreshHash), expiresAt: timestampDate(s.expiresAt), userAgent: s.userAgent.slice(0, 512), ip: s.ip.slice(0, 64) };
}

/**
 * A new session `id` of `userId` and its refresh token: one statement with literal values (for a
 * script too). The SELECT runs under RLS: a user of another company, or one not active, yields no
 * row (and no token).
 */
function sessionInsert(sql: Sql, id: string, userId: string, s: ReturnType<typeof sessionTimes>): string {
  const lit = (v: string) => sql.escapeLiteral(v);
  return `WITH s AS (
       INSERT INTO sessions (id, company_id, user_id, expires_at, user_agent, ip)
       SELECT ${lit(id)}::uuid, company_id, id, ${lit(s.expiresAt.toISOString())}::timestamptz, ${lit(s.userAgent)}::text, ${lit(s.ip)}::text
       FROM users WHERE id = ${lit(userId)}::uuid AND status = 'active' RETURNING id, company_id)
     INSERT INTO refresh_tokens (hash, session_id, company_id) SELECT ${lit(`\\x${s.hash.toString("hex")}`)}::bytea, id, company_id FROM s RETURNING session_id AS id`;
}

const noActiveUser = (userId: string, companyId: string) => new AppError("not_found", `no active user ${userId} in company ${companyId}`);

async function insertSession(sql: Sql, companyId: string, userId: string, s: NewSession | undefined): Promise<string> {
  const { rows } = await sql.query<{ id: string }>(sessionInsert(sql, randomUUID(), userId, sessionTimes(s)));
  if (!rows[0]) throw noActiveUser(userId, companyId);
  return rows[0].id;
}

const ts = (d: Date | null): Timestamp | undefined => (d ? timestampFromDate(d) : undefined);

/** The unique constraint behind a 23505 error, or undefined. */
function uniqueViolation(err: unknown): string | undefined {
  const e = err as { code?: string; constraint?: string };
  return e.code === "23505" ? (e.constraint ?? "") : undefined;
}

interface KeyRow {
  id: string;
  name: string;
  prefix: string;
  scopes: string[];
  created_at: Date;
  created_by: string;
  expires_at: Date | null;
  last_used_at: Date | null;
  last_used_ip: string;
  revoked_at: Date | null;
  requests_per_minute: number;
  creator_role: Role | null;
  creator_status: string | null;
}
const keyColumns = `k.id, k.name, k.prefix, k.scopes, k.created_at, k.created_by, k.expires_at, k.last_used_at, k.last_used_ip, k.revoked_at, k.requests_per_minute,
  (SELECT u.role FROM users u WHERE u.id = k.created_by) AS creator_role, (SELECT u.status FROM users u WHERE u.id = k.created_by) AS creator_status`;

function keyRecord(k: KeyRow): Omit<ApiKeyRecord, "$typeName"> {
  return {
    apiKeyId: k.id,
    name: k.name,
    prefix: k.prefix,
    scopes: k.scopes,
    createdAt: ts(k.created_at),
    createdBy: k.created_by,
    expiresAt: ts(k.expires_at),
    lastUsedAt: ts(k.last_used_at),
    lastUsedIp: k.last_used_ip,
    revokedAt: ts(k.revoked_at),
    requestsPerMinute: k.requests_per_minute,
    creatorRole: k.creator_role ? roleToProto[k.creator_role] : UserRole.UNSPECIFIED,
    creatorStatus: (k.creator_status && statusToProto[k.creator_status]) || UserStatus.UNSPECIFIED,
  };
}

/** The acting user as the database knows them now: an active owner or admin with a session (not an API key), or permission_denied. */
async function keyManager(sql: Sql, p: Principal): Promise<void> {
  if (p.apiKey) throw new AppError("permission_denied", "API keys cannot manage API keys: use an owner's or admin's session");
  const { rows } = await sql.query<{ role: Role; status: string }>("SELECT role, status FROM users WHERE id = $1", [p.userId]);
  const u = rows[0];
  if (!u || u.status !== "active" || (u.role !== "owner" && u.role !== "admin")) {
    throw new AppError("permission_denied", `API keys are managed by owners and admins; you are ${u?.status === "active" ? u.role : "not an active user"}`);
  }
}

const keyOutcomes: Record<string, KeyOutcome> = {
  valid: KeyOutcome.VALID,
  unknown: KeyOutcome.UNKNOWN,
  revoked: KeyOutcome.REVOKED,
  expired: KeyOutcome.EXPIRED,
  creator_inactive: KeyOutcome.CREATOR_INACTIVE,
};

const ipOf = (ip: string) => ip.slice(0, 64);

export function authStore(db: Db, { audit }: AuthStoreDeps): ServiceImpl<typeof DbAuthService> {
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
          const actor = { type: "user" as const, id: userId, name: req.ownerName, userId };
          // The first owner is a user added (users.events, for webhooks), in this transaction.
          const added = userEvent({
            eventId: randomUUID(),
            companyId,
            change: UserChange.ADDED,
            user: { userId, email: req.ownerEmail, phone: req.ownerPhone, name: req.ownerName, role: ApiRole.OWNER, status: ApiUserStatus.ACTIVE, createdAt: timestampFromDate(new Date()) },
            actorType: ActorType.USER,
            actorId: userId,
            actorName: req.ownerName,
            eventTime: timestampFromDate(new Date()),
          });
          await db.enqueueMany(sql, [{ ...added, companyId }]);
          await audit.record(sql, [
            { action: "auth.company_registered", actor, target: { type: "company", id: companyId }, ip: req.session?.ip, details: { email: req.ownerEmail } },
            { action: "auth.login", actor, target: { type: "session", id: sessionId }, ip: req.session?.ip },
          ]);
          return { companyId, userId, sessionId };
        }).finally(() => audit.afterCommit());
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
      // One round trip (the transaction's start, the lookup, COMMIT): a login costs argon2 and little else.
      const lit = (sql: Sql, v: string) => (v ? sql.escapeLiteral(v) : "NULL");
      const { rows } = await db.systemScript((sql) => ({ text: `SELECT * FROM crm_login_lookup(${lit(sql, req.email)}, ${lit(sql, req.phone)})` }));
      const u = rows[0] as { user_id: string; company_id: string; role: Role; status: string; password_hash: string | null } | undefined;
      if (!u) return { found: false };
      return { found: true, userId: u.user_id, companyId: u.company_id, role: roleToProto[u.role], status: statusToProto[u.status] ?? UserStatus.UNSPECIFIED, passwordHash: u.password_hash ?? "" };
    },

    async createSession(req, ctx) {
      requirePeer(ctx, "auth");
      if (!isUuid(req.companyId) || !isUuid(req.userId)) throw invalid([{ field: "userId", description: "userId and companyId must be UUIDs" }]);
      const times = sessionTimes(req.session);
      const sessionId = randomUUID();
      // A login's writes in two round trips: the start, the session with its refresh token and the
      // audit row (written only with the session) in one script; the audit row's outbox message with COMMIT.
      await db.tenantScript(req.companyId, (sql) => {
        const audited = audit.script(
          sql,
          [{ action: "auth.login", actor: { type: "user", id: req.userId, name: "", userId: req.userId }, target: { type: "session", id: sessionId }, ip: req.session?.ip }],
          `EXISTS (SELECT 1 FROM sessions WHERE id = ${sql.escapeLiteral(sessionId)}::uuid)`,
        );
        return {
          text: `${sessionInsert(sql, sessionId, req.userId, times)};\n${audited.text}`,
          outbox: ({ rows }) => {
            if (!rows.length) throw noActiveUser(req.userId, req.companyId);
            return audited.outbox(rows);
          },
        };
      });
      audit.afterCommit();
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
      const { rows } = await db.tenant(p.companyId, async (sql) => {
        const res = await sql.query<{ user_id: string }>("UPDATE sessions SET revoked_at = now() WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL RETURNING user_id", [req.sessionId, p.userId]);
        // Ending the session of the calling token is a logout; ending another of one's sessions, a revocation.
        if (res.rows.length) await audit.record(sql, [{ action: req.sessionId === p.sessionId ? "auth.logout" : "auth.session_revoked", actor: actorOf(p), target: { type: "session", id: req.sessionId }, ip: ipOf(req.ip) }]);
        return res;
      });
      if (rows.length) audit.afterCommit();
      return { revoked: rows.length === 1, userId: p.userId };
    },

    async revokeAllSessions(req, ctx) {
      const p = req.userId && req.userId !== principalOf(ctx).userId ? requireRole(ctx, "owner", "admin") : principalOf(ctx);
      const userId = req.userId || p.userId;
      if (!isUuid(userId)) throw invalid([{ field: "userId", description: "must be a user id (UUID)" }]);
      const { rows } = await db.tenant(p.companyId, async (sql) => {
        const res = await sql.query<{ id: string }>("UPDATE sessions SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL RETURNING id", [userId]);
        await audit.record(sql, [{ action: "auth.logout_all", actor: actorOf(p), target: { type: "user", id: userId }, ip: ipOf(req.ip), details: { sessions_ended: String(res.rows.length) } }]);
        return res;
      });
      audit.afterCommit();
      return { sessionIds: rows.map((r) => r.id) };
    },

    async createApiKeyDB(req, ctx) {
      const p = principalOf(ctx);
      const key = checkApiKey(
        { name: req.name, scopes: req.scopes, expiresAtMs: req.expiresAt ? timestampDate(req.expiresAt).getTime() : undefined, requestsPerMinute: req.requestsPerMinute },
        Date.now(),
      );
      if (!/^[0-9a-f]{12}$/.test(req.prefix) || req.keyHash.length !== 32) throw invalid([{ field: "prefix", description: "needs the key's 12-character prefix and its 32-byte SHA-256" }]);
      const row = await db.tenant(p.companyId, async (sql) => {
        await keyManager(sql, p);
        // Serialises key creation per company, so the limit holds under concurrent calls.
        await sql.query("SELECT id FROM companies WHERE id = crm_company() FOR UPDATE");
        const { rows: count } = await sql.query<{ n: string }>("SELECT count(*) AS n FROM api_keys WHERE revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())");
        if (Number(count[0]!.n) >= apiKeyLimits.activePerCompany) {
          throw new AppError("failed_precondition", `your company has ${apiKeyLimits.activePerCompany} active API keys, the most it may hold: revoke one first`);
        }
        const { rows } = await sql.query<{ id: string }>(
          `INSERT INTO api_keys (company_id, name, prefix, key_hash, scopes, requests_per_minute, created_by, expires_at)
           VALUES (crm_company(), $1, $2, $3, $4, $5, $6, $7) RETURNING id`,
          [key.name, req.prefix, Buffer.from(req.keyHash), key.scopes, key.requestsPerMinute, p.userId, key.expiresAtMs === undefined ? null : new Date(key.expiresAtMs)],
        );
        const id = rows[0]!.id;
        await audit.record(sql, [
          {
            action: "api_key.created",
            actor: actorOf(p),
            target: { type: "api_key", id },
            ip: ipOf(req.ip),
            details: { name: key.name, prefix: req.prefix, scopes: key.scopes.join(" "), expires_at: key.expiresAtMs === undefined ? "" : new Date(key.expiresAtMs).toISOString() },
          },
        ]);
        return (await sql.query<KeyRow>(`SELECT ${keyColumns} FROM api_keys k WHERE k.id = $1`, [id])).rows[0]!;
      });
      audit.afterCommit();
      return { apiKey: keyRecord(row) };
    },

    async listApiKeysDB(req, ctx) {
      const p = principalOf(ctx);
      const rows = await db.tenant(p.companyId, async (sql) => {
        await keyManager(sql, p);
        return (await sql.query<KeyRow>(`SELECT ${keyColumns} FROM api_keys k WHERE $1 OR k.revoked_at IS NULL ORDER BY k.created_at DESC, k.id`, [req.includeRevoked])).rows;
      });
      return { apiKeys: rows.map(keyRecord) };
    },

    async revokeApiKeyDB(req, ctx) {
      const p = principalOf(ctx);
      const id = apiKeyIdOf(req.apiKeyId);
      const res = await db.tenant(p.companyId, async (sql) => {
        await keyManager(sql, p);
        const { rows: revoked } = await sql.query<{ id: string; name: string }>("UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL RETURNING id, name", [id]);
        const { rows } = await sql.query<KeyRow>(`SELECT ${keyColumns} FROM api_keys k WHERE k.id = $1`, [id]);
        if (!rows[0]) throw new AppError("not_found", `no API key ${id} in your company: see ListApiKeys`);
        if (revoked.length) await audit.record(sql, [{ action: "api_key.revoked", actor: actorOf(p), target: { type: "api_key", id }, ip: ipOf(req.ip), details: { name: rows[0].name, prefix: rows[0].prefix } }]);
        return { row: rows[0], now: revoked.length === 1 };
      });
      if (res.now) audit.afterCommit();
      return { apiKey: keyRecord(res.row), revokedNow: res.now };
    },

    async useApiKeyDB(req, ctx) {
      requirePeer(ctx, "auth");
      if (req.keyHash.length !== 32) throw invalid([{ field: "keyHash", description: "must be a 32-byte SHA-256 digest" }]);
      const ip = ipOf(req.ip);
      const r = await db.system(async (sql) => {
        const { rows } = await sql.query<KeyRow & { outcome: string; company_id: string | null; first_use_today: boolean }>("SELECT * FROM crm_use_api_key($1, $2)", [Buffer.from(req.keyHash), ip]);
        const row = rows[0]!;
        if (row.first_use_today && row.company_id) {
          // The key's first use of this UTC day, in the transaction that recorded the use.
          await sql.query("SELECT set_config('app.company_id', $1, true)", [row.company_id]);
          await audit.record(sql, [
            { action: "api_key.used", actor: { type: "api_key", id: row.id, name: `API key ${row.name}`, userId: row.created_by }, target: { type: "api_key", id: row.id }, ip, details: { prefix: row.prefix } },
          ]);
        }
        return row;
      });
      if (r.first_use_today) audit.afterCommit();
      const outcome = keyOutcomes[r.outcome] ?? KeyOutcome.UNSPECIFIED;
      if (outcome === KeyOutcome.UNKNOWN) return { outcome };
      return { outcome, apiKey: keyRecord(r), companyId: r.company_id ?? "" };
    },
  };
}

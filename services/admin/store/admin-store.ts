/**
 * The admin store, mounted by dbservice as DbAdminService: the people of a company (bulk invite, list, deactivate, change role,
 * their sessions seen and ended by an admin) and the one-time tokens of invitations and password resets.
 *
 * Admin RPCs act on the caller's token, and the caller's CURRENT role is read from the database
 * (a token may be up to one access-token lifetime older than a demotion). Changes that can touch
 * the owners lock the company row first, so "the company keeps an active owner" holds even when
 * two admins act at once. Token RPCs run before a tenant is known, each through one narrow
 * SECURITY DEFINER function, and only for the auth service. The rules shared with the service
 * (rows, user ids, roles, page size) are ../src/rules.ts.
 */
import { randomUUID } from "node:crypto";
import { timestampDate, timestampFromDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import { actorOf, AppError, invalid, isUuid, principalOf, requirePeer, type Actor, type Principal, type Role } from "@crm/kit";
import { userEvent } from "@crm/contracts/tenant-events";
import { ActorType } from "@crm/gen/crm/admin/v1/audit_pb";
import { UserChange, type UserStatus as ApiUserStatus } from "@crm/gen/crm/admin/v1/admin_pb";
import type { Role as ApiRole } from "@crm/gen/crm/auth/v1/auth_pb";
import {
  ConsumeInviteTokenResponse_Outcome as InviteOutcome,
  ConsumeResetTokenResponse_Outcome as ResetOutcome,
  type DbAdminService,
  LookupTokenResponse_Outcome as LookupOutcome,
  RegisterUserResult_Outcome as RowOutcome,
  TokenKind,
  type NewUserRow,
  type RegisterUserResult,
  type UserRecord,
} from "@crm/gen/crm/db/v1/db_admin_pb";
import { UserRole, UserStatus } from "@crm/gen/crm/db/v1/db_auth_pb";
import type { OutgoingEmail } from "@crm/gen/crm/db/v1/db_email_pb";
import type { Db, Sql } from "@crm/dbservice/db";
import { checkRows, limits, newRoleOf, pageSizeFits, sessionListLimit, sessionTargetOf, userIdOf } from "../src/rules.js";
import type { AuditLog } from "./audit-store.js";

/**
 * What this store uses of other domains' stores, handed in by dbservice's mounting
 * (services/dbservice/src/module.ts): a store imports no other store.
 */
export interface AdminStoreDeps {
  /** The e-mail store's: invitations are queued in the new users' transaction. */
  emails: {
    /** Why an e-mail cannot be queued, or undefined. */
    problem(e: OutgoingEmail | undefined): string | undefined;
    /** Writes the e-mails and their outbox tasks in `sql`'s transaction. */
    queue(sql: Sql, companyId: string, emails: { email: OutgoingEmail }[]): Promise<{ emailId: string }[]>;
    /** Called after a transaction that queued e-mails committed (wakes the relay). */
    afterOutbox?: (() => void) | undefined;
  };
  /** The auth store's mapping of users' roles and statuses to the crm.db.v1 enums. */
  roleToProto: Record<Role, UserRole>;
  statusToProto: Record<string, UserStatus>;
  /** The audit log, written in each change's transaction (./audit-store.ts). */
  audit: AuditLog;
}

const statusFromProto: Record<number, string | null> = { [UserStatus.UNSPECIFIED]: null, [UserStatus.ACTIVE]: "active", [UserStatus.INVITED]: "invited", [UserStatus.DEACTIVATED]: "deactivated" };

interface UserRow {
  id: string;
  email: string;
  phone: string | null;
  name: string;
  role: Role;
  status: string;
  created_at: Date;
  deactivated_at: Date | null;
}
const userColumns = "id, email, phone, name, role, status, created_at, deactivated_at";

const ts = (d: Date | null): Timestamp | undefined => (d ? timestampFromDate(d) : undefined);

function userRecord(u: UserRow, { roleToProto, statusToProto }: Pick<AdminStoreDeps, "roleToProto" | "statusToProto">): Omit<UserRecord, "$typeName"> {
  return {
    userId: u.id,
    email: u.email,
    phone: u.phone ?? "",
    name: u.name,
    role: roleToProto[u.role],
    status: statusToProto[u.status] ?? UserStatus.UNSPECIFIED,
    createdAt: ts(u.created_at),
    deactivatedAt: ts(u.deactivated_at),
  };
}

/**
 * Users added, activated (an invitation accepted) or deactivated, as UserEvents on the outbox in `sql`'s transaction (users.events;
 * webhooks delivers them). `actorName`: the acting user's name (an API key's is in its actor).
 */
async function queueUserEvents(db: Db, sql: Sql, companyId: string, actor: Actor, actorName: string, change: UserChange, users: Omit<UserRecord, "$typeName">[]): Promise<void> {
  if (users.length === 0) return;
  const eventTime = timestampFromDate(new Date());
  await db.enqueueMany(
    sql,
    users.map((u) => {
      const e = userEvent({
        eventId: randomUUID(),
        companyId,
        change,
        // The admin API's User: its enums share the store's numbering.
        user: { userId: u.userId, email: u.email, phone: u.phone, name: u.name, role: u.role as number as ApiRole, status: u.status as number as ApiUserStatus, createdAt: u.createdAt },
        actorType: actor.type === "api_key" ? ActorType.API_KEY : ActorType.USER,
        actorId: actor.id,
        actorName: actor.name || actorName,
        eventTime,
      });
      return { ...e, companyId };
    }),
  );
}

/** The acting user as the database knows them now: an active owner or admin, or permission_denied. */
async function actingAdmin(sql: Sql, p: Principal): Promise<{ role: Role; name: string }> {
  const { rows } = await sql.query<{ role: Role; status: string; name: string }>("SELECT role, status, name FROM users WHERE id = $1", [p.userId]);
  const u = rows[0];
  if (!u || u.status !== "active" || (u.role !== "owner" && u.role !== "admin")) {
    throw new AppError("permission_denied", `this call needs role owner or admin; you are ${u?.status === "active" ? u.role : "not an active user"}`);
  }
  return { role: u.role, name: u.name };
}

/** Serialises changes that may touch the company's owners. */
const lockCompany = (sql: Sql) => sql.query("SELECT id FROM companies WHERE id = crm_company() FOR UPDATE");

async function lockedTarget(sql: Sql, userId: string): Promise<UserRow> {
  userIdOf(userId);
  const { rows } = await sql.query<UserRow>(`SELECT ${userColumns} FROM users WHERE id = $1 FOR UPDATE`, [userId]);
  if (!rows[0]) throw new AppError("not_found", `no user ${userId} in your company: see ListUsers`);
  return rows[0];
}

async function otherActiveOwners(sql: Sql, userId: string): Promise<number> {
  const { rows } = await sql.query<{ n: string }>("SELECT count(*) AS n FROM users WHERE role = 'owner' AND status = 'active' AND id <> $1", [userId]);
  return Number(rows[0]!.n);
}

/** Why a row's invitation cannot be stored (the admin service made it; this guards the schema). */
function invitationProblem(r: NewUserRow, emailProblem: AdminStoreDeps["emails"]["problem"]): string | undefined {
  if (r.inviteTokenHash.length !== 32 || !r.inviteExpiresAt) return "needs a 32-byte invite token hash and its expiry";
  if (r.inviteEmail) {
    const p = emailProblem(r.inviteEmail);
    if (p) return `invite e-mail: ${p}`;
  }
  return undefined;
}

interface PageKey {
  name: string;
  email: string;
  id: string;
}

export const encodePageToken = (k: PageKey) => Buffer.from(JSON.stringify([k.name, k.email, k.id])).toString("base64url");

export function decodePageToken(token: string): PageKey {
  try {
    const [name, email, id] = JSON.parse(Buffer.from(token, "base64url").toString("utf8")) as unknown[];
    if (typeof name === "string" && typeof email === "string" && typeof id === "string" && isUuid(id)) return { name, email, id };
  } catch {
    // fall through
  }
  throw invalid([{ field: "pageToken", description: "is not a token from a previous ListUsers answer; leave it empty for the first page" }]);
}

/** ListMembersDB's page token: the last member's name and id (never an e-mail address, which members may not see). */
export const encodeMemberToken = (k: { name: string; id: string }) => Buffer.from(JSON.stringify([k.name, k.id])).toString("base64url");

export function decodeMemberToken(token: string): { name: string; id: string } {
  try {
    const [name, id] = JSON.parse(Buffer.from(token, "base64url").toString("utf8")) as unknown[];
    if (typeof name === "string" && typeof id === "string" && isUuid(id)) return { name, id };
  } catch {
    // fall through
  }
  throw invalid([{ field: "pageToken", description: "is not a token from a previous ListMembers answer; leave it empty for the first page" }]);
}

const likePattern = (q: string) => `%${q.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;

/** Sets the tenant of a transaction that began without one (a token redeemed before the tenant was known). */
const becomeTenant = (sql: Sql, companyId: string) => sql.query("SELECT set_config('app.company_id', $1, true)", [companyId]);

export function adminStore(db: Db, deps: AdminStoreDeps): ServiceImpl<typeof DbAdminService> {
  const { emails, roleToProto, audit } = deps;
  return {
    async registerUsersInCompany(req, ctx) {
      const p = principalOf(ctx);
      const res = await db.tenant(p.companyId, async (sql) => {
        const caller = await actingAdmin(sql, p);
        // The rows by the service's rules, again, for the caller's role as the database knows it now.
        const checks = checkRows(req.users, caller.role);
        const results: Omit<RegisterUserResult, "$typeName">[] = checks.map((c) => ({ index: c.index, email: c.email, outcome: RowOutcome.UNSPECIFIED, reason: "", userId: "", emailId: "" }));
        const candidates: number[] = [];
        checks.forEach((c, i) => {
          const problem = c.reason ?? invitationProblem(req.users[i]!, emails.problem);
          if (problem) {
            results[i]!.outcome = RowOutcome.INVALID;
            results[i]!.reason = problem;
          } else candidates.push(i);
        });

        const rows = candidates.map((i) => checks[i]!.row!);
        // One statement for the batch; a login taken anywhere (unique across companies) skips its row.
        const inserted = rows.length
          ? (
              await sql.query<UserRow>(
                `INSERT INTO users (company_id, email, phone, name, role, status)
                 SELECT crm_company(), e, nullif(p, ''), n, r, 'invited' FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS t(e, p, n, r)
                 ON CONFLICT DO NOTHING RETURNING ${userColumns}`,
                [rows.map((u) => u.email), rows.map((u) => u.phone), rows.map((u) => u.name), rows.map((u) => u.role)],
              )
            ).rows
          : [];
        const idByEmail = new Map(inserted.map((r) => [r.email, r.id]));
        const refused = candidates.filter((i) => !idByEmail.has(checks[i]!.row!.email));
        if (refused.length) {
          const { rows: taken } = await sql.query<{ login: string }>("SELECT login FROM crm_logins_taken($1, $2)", [
            refused.map((i) => checks[i]!.row!.email),
            refused.map((i) => checks[i]!.row!.phone).filter(Boolean),
          ]);
          const takenSet = new Set(taken.map((t) => t.login));
          for (const i of refused) {
            const u = checks[i]!.row!;
            results[i]!.outcome = RowOutcome.ALREADY_EXISTS;
            results[i]!.reason = takenSet.has(u.email) || !u.phone ? `email ${u.email} is already someone's login` : `phone ${u.phone} is already someone's login`;
          }
        }

        const created = candidates.filter((i) => idByEmail.has(checks[i]!.row!.email));
        if (created.length) {
          await sql.query(
            `INSERT INTO invite_tokens (hash, company_id, user_id, expires_at)
             SELECT h, crm_company(), u, x FROM unnest($1::bytea[], $2::uuid[], $3::timestamptz[]) AS t(h, u, x)`,
            [created.map((i) => Buffer.from(req.users[i]!.inviteTokenHash)), created.map((i) => idByEmail.get(checks[i]!.row!.email)), created.map((i) => timestampDate(req.users[i]!.inviteExpiresAt!))],
          );
        }
        const withEmail = created.filter((i) => req.users[i]!.inviteEmail);
        const queued = await emails.queue(sql, p.companyId, withEmail.map((i) => ({ email: req.users[i]!.inviteEmail! })));
        for (const i of created) {
          results[i]!.outcome = RowOutcome.CREATED;
          results[i]!.userId = idByEmail.get(checks[i]!.row!.email)!;
        }
        withEmail.forEach((i, k) => (results[i]!.emailId = queued[k]!.emailId));
        await queueUserEvents(db, sql, p.companyId, actorOf(p), caller.name, UserChange.ADDED, inserted.map((u) => userRecord(u, deps)));
        await audit.record(
          sql,
          created.map((i) => ({
            action: "admin.user_added",
            actor: actorOf(p),
            target: { type: "user", id: idByEmail.get(checks[i]!.row!.email)! },
            details: { email: checks[i]!.row!.email, role: checks[i]!.row!.role },
          })),
        );
        const count = (o: RowOutcome) => results.filter((r) => r.outcome === o).length;
        return {
          results,
          created: count(RowOutcome.CREATED),
          alreadyExisting: count(RowOutcome.ALREADY_EXISTS),
          failed: count(RowOutcome.INVALID),
          emailsQueued: queued.length,
        };
      });
      if (res.emailsQueued) emails.afterOutbox?.();
      if (res.created) audit.afterCommit();
      return res;
    },

    async listUsersDB(req, ctx) {
      const p = principalOf(ctx);
      const size = req.pageSize;
      if (!pageSizeFits(size)) throw invalid([{ field: "pageSize", description: `must be 1..${limits.pageSize}` }]);
      if (!(req.status in statusFromProto)) throw invalid([{ field: "status", description: "is not a known user status" }]);
      const after = req.pageToken ? decodePageToken(req.pageToken) : undefined;
      const query = req.query.trim();
      return db.tenant(p.companyId, async (sql) => {
        await actingAdmin(sql, p);
        const { rows } = await sql.query<UserRow>(
          `SELECT ${userColumns} FROM users
           WHERE ($1 = '' OR name ILIKE $2 OR email ILIKE $2 OR coalesce(phone, '') ILIKE $2)
             AND ($3::text IS NULL OR status = $3)
             AND ($4::text IS NULL OR (name, email, id) > ($4, $5, $6::uuid))
           ORDER BY name, email, id
           LIMIT $7`,
          [query, likePattern(query), statusFromProto[req.status], after?.name ?? null, after?.email ?? null, after?.id ?? null, size + 1],
        );
        const page = rows.slice(0, size);
        const last = page[page.length - 1];
        return { users: page.map((u) => userRecord(u, deps)), nextPageToken: rows.length > size && last ? encodePageToken(last) : "" };
      });
    },

    async listMembersDB(req, ctx) {
      const p = principalOf(ctx);
      const size = req.pageSize;
      if (!pageSizeFits(size)) throw invalid([{ field: "pageSize", description: `must be 1..${limits.pageSize}` }]);
      const after = req.pageToken ? decodeMemberToken(req.pageToken) : undefined;
      return db.tenant(p.companyId, async (sql) => {
        // Any active member of the company; row-level security keeps both reads to the tenant.
        const { rows: me } = await sql.query<{ status: string }>("SELECT status FROM users WHERE id = $1", [p.userId]);
        if (me[0]?.status !== "active") throw new AppError("permission_denied", "this call needs an active member of the company");
        const { rows } = await sql.query<{ id: string; name: string; role: Role; status: string }>(
          `SELECT id, name, role, status FROM users
           WHERE ($1::text IS NULL OR (name, id) > ($1, $2::uuid))
           ORDER BY name, id
           LIMIT $3`,
          [after?.name ?? null, after?.id ?? null, size + 1],
        );
        const page = rows.slice(0, size);
        const last = page[page.length - 1];
        return {
          members: page.map((u) => ({ userId: u.id, name: u.name, role: deps.roleToProto[u.role], status: deps.statusToProto[u.status] ?? UserStatus.UNSPECIFIED })),
          nextPageToken: rows.length > size && last ? encodeMemberToken(last) : "",
        };
      });
    },

    async deactivateUserDB(req, ctx) {
      const p = principalOf(ctx);
      if (req.userId === p.userId) throw new AppError("failed_precondition", "you cannot deactivate yourself: ask another owner or admin");
      const res = await db.tenant(p.companyId, async (sql) => {
        await lockCompany(sql);
        const caller = await actingAdmin(sql, p);
        const target = await lockedTarget(sql, req.userId);
        if (target.role === "owner" && caller.role !== "owner") throw new AppError("permission_denied", "only an owner can deactivate an owner");
        if (target.role === "owner" && target.status === "active" && (await otherActiveOwners(sql, target.id)) === 0) {
          throw new AppError("failed_precondition", "this is the company's last active owner: make someone else owner first");
        }
        const { rows } = await sql.query<UserRow>(
          `UPDATE users SET status = 'deactivated', deactivated_at = coalesce(deactivated_at, now()), updated_at = now() WHERE id = $1 RETURNING ${userColumns}`,
          [target.id],
        );
        const revoked = await sql.query<{ id: string }>("UPDATE sessions SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL RETURNING id", [target.id]);
        await sql.query("UPDATE invite_tokens SET spent_at = now() WHERE user_id = $1 AND spent_at IS NULL", [target.id]);
        await sql.query("UPDATE password_resets SET spent_at = now() WHERE user_id = $1 AND spent_at IS NULL", [target.id]);
        // The API keys the user created act for them: they end with the user (on the revocation list with the sessions).
        const keys = await sql.query<{ id: string; name: string }>("UPDATE api_keys SET revoked_at = now() WHERE created_by = $1 AND revoked_at IS NULL RETURNING id, name", [target.id]);
        if (target.status !== "deactivated") {
          await queueUserEvents(db, sql, p.companyId, actorOf(p), caller.name, UserChange.DEACTIVATED, [userRecord(rows[0]!, deps)]);
          await audit.record(sql, [
            { action: "admin.user_deactivated", actor: actorOf(p), target: { type: "user", id: target.id }, details: { email: target.email, sessions_ended: String(revoked.rows.length) } },
            ...keys.rows.map((k) => ({ action: "api_key.revoked", actor: actorOf(p), target: { type: "api_key", id: k.id }, details: { name: k.name, reason: "creator deactivated" } })),
          ]);
        }
        return { user: userRecord(rows[0]!, deps), revokedSessionIds: [...revoked.rows.map((r) => r.id), ...keys.rows.map((k) => k.id)] };
      });
      audit.afterCommit();
      return res;
    },

    async changeRoleDB(req, ctx) {
      const p = principalOf(ctx);
      const role = newRoleOf(req.role);
      const res = await db.tenant(p.companyId, async (sql) => {
        await lockCompany(sql);
        const caller = await actingAdmin(sql, p);
        const target = await lockedTarget(sql, req.userId);
        if ((target.role === "owner" || role === "owner") && caller.role !== "owner") throw new AppError("permission_denied", "only an owner can grant the owner role or change an owner's role");
        if (target.role === "owner" && role !== "owner" && target.status === "active" && (await otherActiveOwners(sql, target.id)) === 0) {
          throw new AppError("failed_precondition", "the last active owner cannot be demoted: make someone else owner first");
        }
        const { rows } = await sql.query<UserRow>(`UPDATE users SET role = $2, updated_at = now() WHERE id = $1 RETURNING ${userColumns}`, [target.id, role]);
        if (target.role !== role) {
          await audit.record(sql, [{ action: "admin.role_changed", actor: actorOf(p), target: { type: "user", id: target.id }, details: { email: target.email, from_role: target.role, to_role: role } }]);
        }
        return { user: userRecord(rows[0]!, deps), previousRole: roleToProto[target.role] };
      });
      audit.afterCommit();
      return res;
    },

    // Sessions are the auth domain's rows; who may see and end another user's is this domain's rule
    // (an active owner or admin now; an owner's only by an owner), checked in the same transaction.
    async listUserSessionsDB(req, ctx) {
      const p = principalOf(ctx);
      const { userId } = sessionTargetOf(req.userId);
      return db.tenant(p.companyId, async (sql) => {
        const caller = await actingAdmin(sql, p);
        const { rows: users } = await sql.query<{ role: Role }>("SELECT role FROM users WHERE id = $1", [userId]);
        if (!users[0]) throw new AppError("not_found", `no user ${userId} in your company: see ListUsers`);
        if (users[0].role === "owner" && caller.role !== "owner") throw new AppError("permission_denied", "only an owner can see an owner's sessions");
        const { rows } = await sql.query<{ id: string; created_at: Date; last_used_at: Date; expires_at: Date; user_agent: string; ip: string }>(
          `SELECT id, created_at, last_used_at, expires_at, user_agent, ip FROM sessions
           WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > now() ORDER BY last_used_at DESC, id LIMIT $2`,
          [userId, sessionListLimit],
        );
        return { sessions: rows.map((r) => ({ sessionId: r.id, createdAt: ts(r.created_at), lastUsedAt: ts(r.last_used_at), expiresAt: ts(r.expires_at), userAgent: r.user_agent, ip: r.ip })) };
      });
    },

    async revokeUserSessionsDB(req, ctx) {
      const p = principalOf(ctx);
      const { userId, sessionId } = sessionTargetOf(req.userId, req.sessionId || undefined);
      const ids = await db.tenant(p.companyId, async (sql) => {
        // The company lock orders this after a concurrent role change (an admin demoted, a user made owner).
        await lockCompany(sql);
        const caller = await actingAdmin(sql, p);
        const target = await lockedTarget(sql, userId);
        if (target.role === "owner" && caller.role !== "owner") throw new AppError("permission_denied", "only an owner can end an owner's sessions");
        const { rows } = await sql.query<{ id: string }>(
          "UPDATE sessions SET revoked_at = now() WHERE user_id = $1 AND ($2::uuid IS NULL OR id = $2::uuid) AND revoked_at IS NULL RETURNING id",
          [target.id, sessionId || null],
        );
        if (sessionId && rows.length === 0) throw new AppError("not_found", `no active session ${sessionId} of user ${target.id}: see ListUserSessions`);
        if (rows.length) {
          const ip = req.ip.slice(0, 64);
          await audit.record(sql, [
            sessionId
              ? { action: "admin.session_revoked", actor: actorOf(p), target: { type: "session", id: sessionId }, ip, details: { user_id: target.id, email: target.email } }
              : { action: "admin.sessions_revoked", actor: actorOf(p), target: { type: "user", id: target.id }, ip, details: { email: target.email, sessions_ended: String(rows.length) } },
          ]);
        }
        return rows.map((r) => r.id);
      });
      if (ids.length) audit.afterCommit();
      return { revokedSessionIds: ids };
    },

    async getCompanyDB(_req, ctx) {
      const p = principalOf(ctx);
      return db.tenant(p.companyId, async (sql) => {
        const caller = await actingAdmin(sql, p);
        const { rows } = await sql.query<{ id: string; name: string; locale: string }>("SELECT id, name, locale FROM companies WHERE id = crm_company()");
        const c = rows[0];
        if (!c) throw new AppError("not_found", "your company no longer exists");
        return { companyId: c.id, name: c.name, locale: c.locale, callerName: caller.name };
      });
    },

    async createPasswordReset(req, ctx) {
      requirePeer(ctx, "auth");
      if (!req.email === !req.phone) throw invalid([{ field: "email", description: "give exactly one of email or phone" }]);
      if (req.tokenHash.length !== 32 || !req.expiresAt) throw invalid([{ field: "tokenHash", description: "needs a 32-byte token hash and expiresAt" }]);
      const { rows } = await db.system((sql) =>
        sql.query<{ user_id: string; company_id: string; email: string; name: string; locale: string }>("SELECT * FROM crm_create_password_reset($1, $2, $3, $4)", [
          req.email || null,
          req.phone || null,
          Buffer.from(req.tokenHash),
          timestampDate(req.expiresAt!),
        ]),
      );
      const r = rows[0];
      if (!r) return { found: false };
      return { found: true, userId: r.user_id, companyId: r.company_id, email: r.email, name: r.name, locale: r.locale };
    },

    async lookupToken(req, ctx) {
      requirePeer(ctx, "auth");
      if (req.tokenHash.length !== 32) throw invalid([{ field: "tokenHash", description: "must be a 32-byte SHA-256 digest" }]);
      const kind = req.kind === TokenKind.INVITE ? "invite" : req.kind === TokenKind.PASSWORD_RESET ? "reset" : undefined;
      if (!kind) throw invalid([{ field: "kind", description: "must be TOKEN_KIND_INVITE or TOKEN_KIND_PASSWORD_RESET" }]);
      const { rows } = await db.system((sql) =>
        sql.query<{ outcome: string; email: string | null; phone: string | null }>("SELECT * FROM crm_lookup_token($1, $2)", [kind, Buffer.from(req.tokenHash)]),
      );
      const r = rows[0]!;
      const outcome = r.outcome === "valid" ? LookupOutcome.VALID : r.outcome === "expired" ? LookupOutcome.EXPIRED : LookupOutcome.INVALID;
      return { outcome, email: r.email ?? "", phone: r.phone ?? "" };
    },

    async consumeResetToken(req, ctx) {
      requirePeer(ctx, "auth");
      if (req.tokenHash.length !== 32 || !req.passwordHash.startsWith("$argon2")) throw invalid([{ field: "tokenHash", description: "needs a 32-byte token hash and an argon2 password hash" }]);
      const r = await db.system(async (sql) => {
        const { rows } = await sql.query<{ outcome: string; user_id: string | null; company_id: string | null; revoked: string[] | null }>("SELECT * FROM crm_consume_reset($1, $2)", [
          Buffer.from(req.tokenHash),
          req.passwordHash,
        ]);
        const row = rows[0]!;
        if (row.outcome === "consumed" && row.company_id && row.user_id) {
          await becomeTenant(sql, row.company_id);
          await audit.record(sql, [{ action: "auth.password_reset", actor: { type: "user", id: row.user_id, name: "", userId: row.user_id }, target: { type: "user", id: row.user_id }, details: { sessions_ended: String(row.revoked?.length ?? 0) } }]);
        }
        return row;
      });
      if (r.outcome === "consumed") audit.afterCommit();
      const outcome = r.outcome === "consumed" ? ResetOutcome.CONSUMED : r.outcome === "expired" ? ResetOutcome.EXPIRED : ResetOutcome.INVALID;
      return { outcome, userId: r.user_id ?? "", companyId: r.company_id ?? "", revokedSessionIds: r.revoked ?? [] };
    },

    async consumeInviteToken(req, ctx) {
      requirePeer(ctx, "auth");
      if (req.tokenHash.length !== 32 || !req.passwordHash.startsWith("$argon2")) throw invalid([{ field: "tokenHash", description: "needs a 32-byte token hash and an argon2 password hash" }]);
      const s = req.session;
      if (s && (s.refreshHash.length !== 32 || !s.expiresAt)) throw invalid([{ field: "session", description: "needs a 32-byte refreshHash and expiresAt" }]);
      const r = await db.system(async (sql) => {
        const { rows } = await sql.query<{ outcome: string; user_id: string | null; company_id: string | null; role: Role | null; session_id: string | null }>(
          "SELECT * FROM crm_consume_invite($1, $2, $3, $4, $5, $6)",
          [Buffer.from(req.tokenHash), req.passwordHash, s ? Buffer.from(s.refreshHash) : null, s ? timestampDate(s.expiresAt!) : null, (s?.userAgent ?? "").slice(0, 512), (s?.ip ?? "").slice(0, 64)],
        );
        const row = rows[0]!;
        if (row.outcome === "consumed" && row.company_id && row.user_id) {
          await becomeTenant(sql, row.company_id);
          // user.activated for webhooks, in this transaction: the user acted (accepted the invitation).
          const { rows: users } = await sql.query<UserRow>(`SELECT ${userColumns} FROM users WHERE id = $1`, [row.user_id]);
          const u = users[0]!;
          await queueUserEvents(db, sql, row.company_id, { type: "user", id: u.id, name: u.name, userId: u.id }, u.name, UserChange.ACTIVATED, [userRecord(u, deps)]);
          const actor = { type: "user" as const, id: row.user_id, name: "", userId: row.user_id };
          await audit.record(sql, [
            { action: "auth.invite_accepted", actor, target: { type: "user", id: row.user_id }, ip: s?.ip },
            ...(row.session_id ? [{ action: "auth.login", actor, target: { type: "session", id: row.session_id }, ip: s?.ip, details: { via: "invitation" } }] : []),
          ]);
        }
        return row;
      });
      if (r.outcome === "consumed") audit.afterCommit();
      const outcome = r.outcome === "consumed" ? InviteOutcome.CONSUMED : r.outcome === "expired" ? InviteOutcome.EXPIRED : InviteOutcome.INVALID;
      return { outcome, userId: r.user_id ?? "", companyId: r.company_id ?? "", role: r.role ? roleToProto[r.role] : UserRole.UNSPECIFIED, sessionId: r.session_id ?? "" };
    },
  };
}

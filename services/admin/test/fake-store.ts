/**
 * An in-memory DbAdminService for fast handler tests, on the directory of the auth store's fake
 * (services/auth/test/fake-store.ts), following the store's documented semantics
 * (proto/crm/db/v1/db_admin.proto, ../store/admin-store.ts, its migration's functions): the acting
 * user's CURRENT role is read from the directory (permission_denied unless an active owner or
 * admin); only an owner grants the owner role or touches an owner; the company keeps an active
 * owner; a user of another company is not_found; each row of RegisterUsersInCompany is judged on
 * its own, a login taken in any company is already_exists, and a created user's invitation is
 * queued with it; another user's sessions are listed and ended only by an owner or admin (an
 * owner's by an owner), each ending audited. The token RPCs are the auth service's only. Test
 * code only.
 */
import { randomUUID } from "node:crypto";
import { timestampFromMs, timestampMs } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import { actorOf, AppError, invalid, isUuid, principalOf, requirePeer, type Principal, type Role } from "@crm/kit";
import {
  ConsumeInviteTokenResponse_Outcome as InviteOutcome,
  ConsumeResetTokenResponse_Outcome as ResetOutcome,
  LookupTokenResponse_Outcome as LookupOutcome,
  RegisterUserResult_Outcome as RowOutcome,
  TokenKind,
  type DbAdminService,
  type RegisterUserResult,
  type UserRecord,
} from "@crm/gen/crm/db/v1/db_admin_pb";
import { UserRole, UserStatus } from "@crm/gen/crm/db/v1/db_auth_pb";
import type { OutgoingEmail } from "@crm/gen/crm/db/v1/db_email_pb";
import { hex, openSession, roleToProto, statusToProto, unique, type Directory, type OneTimeToken, type Status, type StoredUser } from "../../auth/test/fake-store.js";

const roleFromProto: Record<number, Role> = { [UserRole.UNSPECIFIED]: "member", [UserRole.OWNER]: "owner", [UserRole.ADMIN]: "admin", [UserRole.MEMBER]: "member" };
const statusFromProto: Record<number, Status | null> = { [UserStatus.UNSPECIFIED]: null, [UserStatus.ACTIVE]: "active", [UserStatus.INVITED]: "invited", [UserStatus.DEACTIVATED]: "deactivated" };

export interface QueuedEmail {
  companyId: string;
  emailId: string;
  email: OutgoingEmail;
}

export interface FakeAdminStore {
  impl: ServiceImpl<typeof DbAdminService>;
  /** The invitations queued with their users, in order (the e-mail store's part of the transaction). */
  queued: QueuedEmail[];
}

const record = (u: StoredUser): Omit<UserRecord, "$typeName"> => ({
  userId: u.id,
  email: u.email,
  phone: u.phone ?? "",
  name: u.name,
  role: roleToProto[u.role],
  status: statusToProto[u.status],
  createdAt: timestampFromMs(u.createdAt),
  deactivatedAt: u.deactivatedAt === null ? undefined : timestampFromMs(u.deactivatedAt),
});

export function fakeAdminStore(dir: Directory): FakeAdminStore {
  const queued: QueuedEmail[] = [];

  function actingAdmin(p: Principal): StoredUser {
    const u = dir.users.get(p.userId);
    if (!u || u.companyId !== p.companyId || u.status !== "active" || (u.role !== "owner" && u.role !== "admin")) {
      throw new AppError("permission_denied", `this call needs role owner or admin; you are ${u?.status === "active" ? u.role : "not an active user"}`);
    }
    return u;
  }

  function target(p: Principal, userId: string): StoredUser {
    if (!isUuid(userId)) throw invalid([{ field: "userId", description: "must be a user id (UUID) from ListUsers" }]);
    const u = dir.users.get(userId);
    if (!u || u.companyId !== p.companyId) throw new AppError("not_found", `no user ${userId} in your company: see ListUsers`);
    return u;
  }

  const otherActiveOwners = (u: StoredUser) => [...dir.users.values()].filter((o) => o.companyId === u.companyId && o.id !== u.id && o.role === "owner" && o.status === "active").length;

  function token(map: Map<string, OneTimeToken>, hash: Uint8Array, status: Status): { t?: OneTimeToken; u?: StoredUser; outcome: "valid" | "invalid" | "expired" } {
    const t = map.get(hex(hash));
    if (!t || t.spent) return { outcome: "invalid" };
    const u = dir.users.get(t.userId)!;
    if (u.status !== status) return { outcome: "invalid" };
    if (t.expiresAt <= dir.now()) return { outcome: "expired" };
    return { t, u, outcome: "valid" };
  }

  const spendAll = (map: Map<string, OneTimeToken>, userId: string) => {
    for (const t of map.values()) if (t.userId === userId) t.spent = true;
  };

  const impl: ServiceImpl<typeof DbAdminService> = {
    async registerUsersInCompany(req, ctx) {
      const p = principalOf(ctx);
      if (req.users.length < 1 || req.users.length > 1000) throw invalid([{ field: "users", description: `must hold 1..1000 rows; got ${req.users.length}` }]);
      const caller = actingAdmin(p);
      const results: Omit<RegisterUserResult, "$typeName">[] = req.users.map((u, index) => ({ index, email: u.email, outcome: RowOutcome.UNSPECIFIED, reason: "", userId: "", emailId: "" }));
      const seenEmail = new Map<string, number>();
      const seenPhone = new Map<string, number>();
      req.users.forEach((u, i) => {
        const r = results[i]!;
        const name = [...u.name.trim()].length;
        const problem =
          (!u.email || u.email !== u.email.toLowerCase() || !u.email.includes("@") ? "email must be a lower-cased address of at most 254 characters" : undefined) ??
          (u.phone && !/^\+[1-9]\d{6,14}$/.test(u.phone) ? "phone must be E.164 like +14155552671" : undefined) ??
          (name < 1 || name > 200 ? "name must be 1..200 characters" : undefined) ??
          (u.inviteTokenHash.length !== 32 || !u.inviteExpiresAt ? "needs a 32-byte invite token hash and its expiry" : undefined) ??
          (u.role === UserRole.OWNER && caller.role !== "owner" ? "only an owner can add owners; choose role admin or member" : undefined) ??
          (seenEmail.has(u.email) ? `repeats the email of row ${seenEmail.get(u.email)}` : undefined) ??
          (u.phone && seenPhone.has(u.phone) ? `repeats the phone of row ${seenPhone.get(u.phone)}` : undefined);
        if (problem) {
          r.outcome = RowOutcome.INVALID;
          r.reason = problem;
          return;
        }
        seenEmail.set(u.email, i);
        if (u.phone) seenPhone.set(u.phone, i);
        try {
          unique(dir, { id: "", email: u.email, phone: u.phone || null });
        } catch (err) {
          r.outcome = RowOutcome.ALREADY_EXISTS;
          r.reason = (err as { constraint?: string }).constraint === "users_email_key" ? `email ${u.email} is already someone's login` : `phone ${u.phone} is already someone's login`;
          return;
        }
        const created = dir.addUser(p.companyId, { email: u.email, phone: u.phone || null, name: u.name.trim(), role: roleFromProto[u.role] ?? "member", status: "invited" });
        dir.inviteTokens.set(hex(u.inviteTokenHash), { userId: created.id, companyId: p.companyId, expiresAt: timestampMs(u.inviteExpiresAt!), spent: false });
        r.outcome = RowOutcome.CREATED;
        r.userId = created.id;
        if (u.inviteEmail) {
          r.emailId = randomUUID();
          queued.push({ companyId: p.companyId, emailId: r.emailId, email: u.inviteEmail });
        }
      });
      const count = (o: RowOutcome) => results.filter((r) => r.outcome === o).length;
      return { results, created: count(RowOutcome.CREATED), alreadyExisting: count(RowOutcome.ALREADY_EXISTS), failed: count(RowOutcome.INVALID), emailsQueued: results.filter((r) => r.emailId).length };
    },

    async listUsersDB(req, ctx) {
      const p = principalOf(ctx);
      const size = req.pageSize;
      if (size < 1 || size > 500) throw invalid([{ field: "pageSize", description: "must be 1..500" }]);
      if (!(req.status in statusFromProto)) throw invalid([{ field: "status", description: "is not a known user status" }]);
      let after: [string, string, string] | undefined;
      if (req.pageToken) {
        try {
          after = JSON.parse(Buffer.from(req.pageToken, "base64url").toString("utf8")) as [string, string, string];
        } catch {
          // below
        }
        if (!Array.isArray(after) || after.length !== 3 || !isUuid(String(after[2]))) {
          throw invalid([{ field: "pageToken", description: "is not a token from a previous ListUsers answer; leave it empty for the first page" }]);
        }
      }
      actingAdmin(p);
      const q = req.query.trim().toLowerCase();
      const status = statusFromProto[req.status];
      const key = (u: StoredUser) => [u.name, u.email, u.id] as const;
      const cmp = (a: readonly string[], b: readonly string[]) => (a[0]! < b[0]! ? -1 : a[0]! > b[0]! ? 1 : a[1]! < b[1]! ? -1 : a[1]! > b[1]! ? 1 : a[2]! < b[2]! ? -1 : a[2]! > b[2]! ? 1 : 0);
      const rows = [...dir.users.values()]
        .filter((u) => u.companyId === p.companyId)
        .filter((u) => !q || u.name.toLowerCase().includes(q) || u.email.includes(q) || (u.phone ?? "").includes(q))
        .filter((u) => !status || u.status === status)
        .sort((a, b) => cmp(key(a), key(b)))
        .filter((u) => !after || cmp(key(u), after) > 0);
      const page = rows.slice(0, size);
      const last = page.at(-1);
      return { users: page.map(record), nextPageToken: rows.length > size && last ? Buffer.from(JSON.stringify(key(last))).toString("base64url") : "" };
    },

    async listMembersDB(req, ctx) {
      const p = principalOf(ctx);
      const me = dir.users.get(p.userId);
      if (!me || me.companyId !== p.companyId || me.status !== "active") throw new AppError("permission_denied", "this call needs an active member of the company");
      const after = req.pageToken ? (JSON.parse(Buffer.from(req.pageToken, "base64url").toString("utf8")) as [string, string]) : undefined;
      const key = (u: StoredUser) => [u.name, u.id] as const;
      const cmp = (a: readonly string[], b: readonly string[]) => (a[0]! < b[0]! ? -1 : a[0]! > b[0]! ? 1 : a[1]! < b[1]! ? -1 : a[1]! > b[1]! ? 1 : 0);
      const rows = [...dir.users.values()]
        .filter((u) => u.companyId === p.companyId)
        .sort((a, b) => cmp(key(a), key(b)))
        .filter((u) => !after || cmp(key(u), after) > 0);
      const page = rows.slice(0, req.pageSize);
      const last = page.at(-1);
      return {
        members: page.map((u) => ({ userId: u.id, name: u.name, role: roleToProto[u.role], status: statusToProto[u.status] })),
        nextPageToken: rows.length > req.pageSize && last ? Buffer.from(JSON.stringify(key(last))).toString("base64url") : "",
      };
    },

    async deactivateUserDB(req, ctx) {
      const p = principalOf(ctx);
      if (req.userId === p.userId) throw new AppError("failed_precondition", "you cannot deactivate yourself: ask another owner or admin");
      const caller = actingAdmin(p);
      const u = target(p, req.userId);
      if (u.role === "owner" && caller.role !== "owner") throw new AppError("permission_denied", "only an owner can deactivate an owner");
      if (u.role === "owner" && u.status === "active" && otherActiveOwners(u) === 0) throw new AppError("failed_precondition", "this is the company's last active owner: make someone else owner first");
      u.status = "deactivated";
      u.deactivatedAt ??= dir.now();
      const revoked = dir.revokeAll(u.id);
      spendAll(dir.inviteTokens, u.id);
      spendAll(dir.passwordResets, u.id);
      return { user: record(u), revokedSessionIds: revoked };
    },

    async changeRoleDB(req, ctx) {
      const p = principalOf(ctx);
      const role = req.role === UserRole.UNSPECIFIED ? undefined : roleFromProto[req.role];
      if (!role) throw invalid([{ field: "role", description: "must be ROLE_OWNER, ROLE_ADMIN or ROLE_MEMBER" }]);
      const caller = actingAdmin(p);
      const u = target(p, req.userId);
      if ((u.role === "owner" || role === "owner") && caller.role !== "owner") throw new AppError("permission_denied", "only an owner can grant the owner role or change an owner's role");
      if (u.role === "owner" && role !== "owner" && u.status === "active" && otherActiveOwners(u) === 0) throw new AppError("failed_precondition", "the last active owner cannot be demoted: make someone else owner first");
      const previous = u.role;
      u.role = role;
      return { user: record(u), previousRole: roleToProto[previous] };
    },

    async listUserSessionsDB(req, ctx) {
      const p = principalOf(ctx);
      const caller = actingAdmin(p);
      const u = target(p, req.userId);
      if (u.role === "owner" && caller.role !== "owner") throw new AppError("permission_denied", "only an owner can see an owner's sessions");
      const open = [...dir.sessions.values()].filter((x) => x.userId === u.id && x.revokedAt === null && x.expiresAt > dir.now()).sort((a, b) => b.lastUsedAt - a.lastUsedAt);
      return { sessions: open.map((x) => ({ sessionId: x.id, createdAt: timestampFromMs(x.createdAt), lastUsedAt: timestampFromMs(x.lastUsedAt), expiresAt: timestampFromMs(x.expiresAt), userAgent: x.userAgent, ip: x.ip })) };
    },

    async revokeUserSessionsDB(req, ctx) {
      const p = principalOf(ctx);
      if (req.sessionId && !isUuid(req.sessionId)) throw invalid([{ field: "sessionId", description: "must be a session id (UUID) from ListUserSessions" }]);
      const caller = actingAdmin(p);
      const u = target(p, req.userId);
      if (u.role === "owner" && caller.role !== "owner") throw new AppError("permission_denied", "only an owner can end an owner's sessions");
      const ended = [...dir.sessions.values()].filter((x) => x.userId === u.id && x.revokedAt === null && (!req.sessionId || x.id === req.sessionId));
      if (req.sessionId && ended.length === 0) throw new AppError("not_found", `no active session ${req.sessionId} of user ${u.id}: see ListUserSessions`);
      for (const x of ended) x.revokedAt = dir.now();
      if (ended.length) {
        dir.record(p.companyId, req.sessionId
          ? { action: "admin.session_revoked", actor: actorOf(p), target: { type: "session", id: req.sessionId }, ip: req.ip, details: { user_id: u.id, email: u.email } }
          : { action: "admin.sessions_revoked", actor: actorOf(p), target: { type: "user", id: u.id }, ip: req.ip, details: { email: u.email, sessions_ended: String(ended.length) } });
      }
      return { revokedSessionIds: ended.map((x) => x.id) };
    },

    async getCompanyDB(_req, ctx) {
      const p = principalOf(ctx);
      const caller = actingAdmin(p);
      const c = dir.companies.get(p.companyId);
      if (!c) throw new AppError("not_found", "your company no longer exists");
      return { companyId: c.id, name: c.name, locale: c.locale, callerName: caller.name };
    },

    async createPasswordReset(req, ctx) {
      requirePeer(ctx, "auth");
      if (!req.email === !req.phone) throw invalid([{ field: "email", description: "give exactly one of email or phone" }]);
      if (req.tokenHash.length !== 32 || !req.expiresAt) throw invalid([{ field: "tokenHash", description: "needs a 32-byte token hash and expiresAt" }]);
      const u = dir.byLogin(req);
      if (!u || u.status !== "active") return { found: false };
      dir.passwordResets.set(hex(req.tokenHash), { userId: u.id, companyId: u.companyId, expiresAt: timestampMs(req.expiresAt), spent: false });
      return { found: true, userId: u.id, companyId: u.companyId, email: u.email, name: u.name, locale: dir.companies.get(u.companyId)?.locale ?? "en" };
    },

    async lookupToken(req, ctx) {
      requirePeer(ctx, "auth");
      if (req.tokenHash.length !== 32) throw invalid([{ field: "tokenHash", description: "must be a 32-byte SHA-256 digest" }]);
      const kind = req.kind === TokenKind.INVITE ? "invite" : req.kind === TokenKind.PASSWORD_RESET ? "reset" : undefined;
      if (!kind) throw invalid([{ field: "kind", description: "must be TOKEN_KIND_INVITE or TOKEN_KIND_PASSWORD_RESET" }]);
      const r = kind === "invite" ? token(dir.inviteTokens, req.tokenHash, "invited") : token(dir.passwordResets, req.tokenHash, "active");
      const outcome = r.outcome === "valid" ? LookupOutcome.VALID : r.outcome === "expired" ? LookupOutcome.EXPIRED : LookupOutcome.INVALID;
      return { outcome, email: r.u?.email ?? "", phone: r.u?.phone ?? "" };
    },

    async consumeResetToken(req, ctx) {
      requirePeer(ctx, "auth");
      if (req.tokenHash.length !== 32 || !req.passwordHash.startsWith("$argon2")) throw invalid([{ field: "tokenHash", description: "needs a 32-byte token hash and an argon2 password hash" }]);
      const r = token(dir.passwordResets, req.tokenHash, "active");
      if (r.outcome !== "valid") return { outcome: r.outcome === "expired" ? ResetOutcome.EXPIRED : ResetOutcome.INVALID };
      const u = r.u!;
      u.passwordHash = req.passwordHash;
      spendAll(dir.passwordResets, u.id);
      return { outcome: ResetOutcome.CONSUMED, userId: u.id, companyId: u.companyId, revokedSessionIds: dir.revokeAll(u.id) };
    },

    async consumeInviteToken(req, ctx) {
      requirePeer(ctx, "auth");
      if (req.tokenHash.length !== 32 || !req.passwordHash.startsWith("$argon2")) throw invalid([{ field: "tokenHash", description: "needs a 32-byte token hash and an argon2 password hash" }]);
      const s = req.session;
      if (s && (s.refreshHash.length !== 32 || !s.expiresAt)) throw invalid([{ field: "session", description: "needs a 32-byte refreshHash and expiresAt" }]);
      const r = token(dir.inviteTokens, req.tokenHash, "invited");
      if (r.outcome !== "valid") return { outcome: r.outcome === "expired" ? InviteOutcome.EXPIRED : InviteOutcome.INVALID };
      const u = r.u!;
      u.passwordHash = req.passwordHash;
      u.status = "active";
      spendAll(dir.inviteTokens, u.id);
      const sessionId = s ? openSession(dir, u.companyId, u.id, s) : "";
      return { outcome: InviteOutcome.CONSUMED, userId: u.id, companyId: u.companyId, role: roleToProto[u.role], sessionId };
    },
  };

  return { impl, queued };
}

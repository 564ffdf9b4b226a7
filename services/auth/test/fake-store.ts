/**
 * The people of the system in memory (companies, users, sessions, refresh tokens, and the one-time
 * tokens of invitations and password resets), and an in-memory DbAuthService over them that
 * follows the store's documented semantics (proto/crm/db/v1/db_auth.proto, ../store/auth-store.ts,
 * the functions of its migration): logins (email, phone) are unique across every company
 * (already_exists naming the field); the RPCs that run before a tenant is known are the auth
 * service's only (permission_denied for anyone else); a spent refresh token used again revokes its
 * session; a session of another company or user is not the caller's. The admin store's fake
 * (services/admin/test/fake-store.ts) works on the same directory. Test code only.
 */
import { randomUUID } from "node:crypto";
import { timestampFromMs, timestampMs } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import { AppError, invalid, isUuid, principalOf, requirePeer, requireRole, type Role } from "@crm/kit";
import { RotateRefreshTokenResponse_Outcome as Outcome, UserRole, UserStatus, type DbAuthService, type NewSession } from "@crm/gen/crm/db/v1/db_auth_pb";

export type Status = "active" | "invited" | "deactivated";

export interface StoredUser {
  id: string;
  companyId: string;
  email: string;
  phone: string | null;
  name: string;
  role: Role;
  status: Status;
  passwordHash: string | null;
  createdAt: number;
  deactivatedAt: number | null;
}

export interface StoredSession {
  id: string;
  companyId: string;
  userId: string;
  createdAt: number;
  lastUsedAt: number;
  expiresAt: number;
  userAgent: string;
  ip: string;
  revokedAt: number | null;
}

export interface OneTimeToken {
  userId: string;
  companyId: string;
  expiresAt: number;
  spent: boolean;
}

export interface Directory {
  /** The database's clock. */
  now: () => number;
  companies: Map<string, { id: string; name: string; address: string; locale: string }>;
  users: Map<string, StoredUser>;
  sessions: Map<string, StoredSession>;
  /** By the hex of the token's SHA-256. */
  refreshTokens: Map<string, { sessionId: string; spent: boolean }>;
  inviteTokens: Map<string, OneTimeToken>;
  passwordResets: Map<string, OneTimeToken>;
  addCompany(init?: { name?: string; locale?: string }): string;
  /** Stores a user (active, member, a unique e-mail unless given). */
  addUser(companyId: string, init?: Partial<Omit<StoredUser, "companyId">>): StoredUser;
  /** Opens a session of the user (as Login would), with its refresh token's hash. */
  addSession(userId: string, refreshHash?: Uint8Array, expiresAt?: number): StoredSession;
  /** The user with this e-mail or phone, in any company. */
  byLogin(login: { email?: string | undefined; phone?: string | undefined }): StoredUser | undefined;
  /** Revokes every open session of the user; the ids revoked. */
  revokeAll(userId: string): string[];
}

export const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

export const roleToProto: Record<Role, UserRole> = { owner: UserRole.OWNER, admin: UserRole.ADMIN, member: UserRole.MEMBER };
export const statusToProto: Record<Status, UserStatus> = { active: UserStatus.ACTIVE, invited: UserStatus.INVITED, deactivated: UserStatus.DEACTIVATED };

export function fakeDirectory(now: () => number): Directory {
  const dir: Directory = {
    now,
    companies: new Map(),
    users: new Map(),
    sessions: new Map(),
    refreshTokens: new Map(),
    inviteTokens: new Map(),
    passwordResets: new Map(),
    addCompany(init = {}) {
      const id = randomUUID();
      dir.companies.set(id, { id, name: init.name ?? "Acme", address: "", locale: init.locale ?? "en" });
      return id;
    },
    addUser(companyId, init = {}) {
      const id = init.id ?? randomUUID();
      const u: StoredUser = {
        id,
        companyId,
        email: init.email ?? `${id.slice(0, 8)}@example.com`,
        phone: init.phone ?? null,
        name: init.name ?? `User ${id.slice(0, 4)}`,
        role: init.role ?? "member",
        status: init.status ?? "active",
        passwordHash: init.passwordHash ?? null,
        createdAt: init.createdAt ?? now(),
        deactivatedAt: init.deactivatedAt ?? null,
      };
      unique(dir, u);
      dir.users.set(id, u);
      return u;
    },
    addSession(userId, refreshHash, expiresAt) {
      const u = dir.users.get(userId)!;
      const s: StoredSession = { id: randomUUID(), companyId: u.companyId, userId, createdAt: now(), lastUsedAt: now(), expiresAt: expiresAt ?? now() + 30 * 86_400_000, userAgent: "", ip: "", revokedAt: null };
      dir.sessions.set(s.id, s);
      if (refreshHash) dir.refreshTokens.set(hex(refreshHash), { sessionId: s.id, spent: false });
      return s;
    },
    byLogin({ email, phone }) {
      return [...dir.users.values()].find((u) => (email && u.email === email) || (phone && u.phone === phone));
    },
    revokeAll(userId) {
      const ids: string[] = [];
      for (const s of dir.sessions.values()) {
        if (s.userId === userId && s.revokedAt === null) {
          s.revokedAt = now();
          ids.push(s.id);
        }
      }
      return ids;
    },
  };
  return dir;
}

/** The unique indexes users_email_key and users_phone_key (across every company). */
export function unique(dir: Directory, u: Pick<StoredUser, "id" | "email" | "phone">): void {
  for (const o of dir.users.values()) {
    if (o.id === u.id) continue;
    if (o.email === u.email) throw Object.assign(new Error("duplicate key value violates unique constraint"), { constraint: "users_email_key" });
    if (u.phone && o.phone === u.phone) throw Object.assign(new Error("duplicate key value violates unique constraint"), { constraint: "users_phone_key" });
  }
}

function sessionTimes(s: NewSession | undefined) {
  if (!s || s.refreshHash.length !== 32 || !s.expiresAt) throw invalid([{ field: "session", description: "needs a 32-byte refreshHash and expiresAt" }]);
  return { hash: s.refreshHash, expiresAt: timestampMs(s.expiresAt), userAgent: s.userAgent.slice(0, 512), ip: s.ip.slice(0, 64) };
}

/** Opens a session of an active user of the company; not_found otherwise (as under row-level security). */
export function openSession(dir: Directory, companyId: string, userId: string, s: NewSession | undefined): string {
  const t = sessionTimes(s);
  const u = dir.users.get(userId);
  if (!u || u.companyId !== companyId || u.status !== "active") throw new AppError("not_found", `no active user ${userId} in company ${companyId}`);
  const session = dir.addSession(userId, t.hash, t.expiresAt);
  session.userAgent = t.userAgent;
  session.ip = t.ip;
  return session.id;
}

export function fakeAuthStore(dir: Directory): ServiceImpl<typeof DbAuthService> {
  return {
    async registerCompany(req, ctx) {
      requirePeer(ctx, "auth");
      sessionTimes(req.session);
      const companyId = randomUUID();
      const userId = randomUUID();
      try {
        unique(dir, { id: userId, email: req.ownerEmail, phone: req.ownerPhone || null });
      } catch (err) {
        const constraint = (err as { constraint?: string }).constraint;
        if (constraint === "users_email_key") throw new AppError("already_exists", `email ${req.ownerEmail} is already registered: log in instead, or reset the password`, [{ field: "email", description: "already registered" }]);
        throw new AppError("already_exists", `phone ${req.ownerPhone} is already registered: log in instead, or use another phone`, [{ field: "phone", description: "already registered" }]);
      }
      dir.companies.set(companyId, { id: companyId, name: req.companyName, address: req.address, locale: req.locale || "en" });
      dir.addUser(companyId, { id: userId, email: req.ownerEmail, phone: req.ownerPhone || null, name: req.ownerName, role: "owner", status: "active", passwordHash: req.passwordHash });
      const sessionId = openSession(dir, companyId, userId, req.session);
      return { companyId, userId, sessionId };
    },

    async loginDB(req, ctx) {
      requirePeer(ctx, "auth");
      if (!req.email === !req.phone) throw invalid([{ field: "email", description: "give exactly one of email or phone" }]);
      const u = dir.byLogin(req);
      if (!u) return { found: false };
      return { found: true, userId: u.id, companyId: u.companyId, role: roleToProto[u.role], status: statusToProto[u.status], passwordHash: u.passwordHash ?? "" };
    },

    async createSession(req, ctx) {
      requirePeer(ctx, "auth");
      if (!isUuid(req.companyId) || !isUuid(req.userId)) throw invalid([{ field: "userId", description: "userId and companyId must be UUIDs" }]);
      return { sessionId: openSession(dir, req.companyId, req.userId, req.session) };
    },

    async rotateRefreshToken(req, ctx) {
      requirePeer(ctx, "auth");
      if (req.oldHash.length !== 32 || req.newHash.length !== 32) throw invalid([{ field: "oldHash", description: "oldHash and newHash must be 32-byte SHA-256 digests" }]);
      const t = dir.refreshTokens.get(hex(req.oldHash));
      if (!t) return { outcome: Outcome.UNKNOWN };
      const s = dir.sessions.get(t.sessionId)!;
      const at = { sessionId: s.id, userId: s.userId, companyId: s.companyId, expiresAt: timestampFromMs(s.expiresAt) };
      if (t.spent) {
        s.revokedAt ??= dir.now();
        return { outcome: Outcome.REUSED, ...at };
      }
      const u = dir.users.get(s.userId)!;
      if (s.revokedAt !== null || s.expiresAt <= dir.now() || u.status !== "active") return { outcome: Outcome.ENDED, ...at };
      t.spent = true;
      dir.refreshTokens.set(hex(req.newHash), { sessionId: s.id, spent: false });
      s.lastUsedAt = dir.now();
      return { outcome: Outcome.ROTATED, ...at, role: roleToProto[u.role] };
    },

    async listSessions(_req, ctx) {
      const p = principalOf(ctx);
      const open = [...dir.sessions.values()]
        .filter((s) => s.companyId === p.companyId && s.userId === p.userId && s.revokedAt === null && s.expiresAt > dir.now())
        .sort((a, b) => b.lastUsedAt - a.lastUsedAt);
      return {
        sessions: open.map((s) => ({ sessionId: s.id, createdAt: timestampFromMs(s.createdAt), lastUsedAt: timestampFromMs(s.lastUsedAt), expiresAt: timestampFromMs(s.expiresAt), userAgent: s.userAgent, ip: s.ip })),
      };
    },

    async revokeSession(req, ctx) {
      const p = principalOf(ctx);
      if (!isUuid(req.sessionId)) throw invalid([{ field: "sessionId", description: "must be a session id (UUID) from ListSessions" }]);
      const s = dir.sessions.get(req.sessionId);
      const mine = s && s.companyId === p.companyId && s.userId === p.userId && s.revokedAt === null;
      if (mine) s.revokedAt = dir.now();
      return { revoked: Boolean(mine), userId: p.userId };
    },

    async revokeAllSessions(req, ctx) {
      const p = req.userId && req.userId !== principalOf(ctx).userId ? requireRole(ctx, "owner", "admin") : principalOf(ctx);
      const userId = req.userId || p.userId;
      if (!isUuid(userId)) throw invalid([{ field: "userId", description: "must be a user id (UUID)" }]);
      const u = dir.users.get(userId);
      return { sessionIds: u && u.companyId === p.companyId ? dir.revokeAll(userId) : [] };
    },
  };
}

/**
 * The people of the system in memory (companies, users, sessions, refresh tokens, and the one-time
 * tokens of invitations and password resets), and an in-memory DbAuthService over them that
 * follows the store's documented semantics (proto/crm/db/v1/db_auth.proto, ../store/auth-store.ts,
 * the functions of its migration): logins (email, phone) are unique across every company
 * (already_exists naming the field); the RPCs that run before a tenant is known are the auth
 * service's only (permission_denied for anyone else); a spent refresh token used again revokes its
 * session; a session of another company or user is not the caller's; API keys are managed by
 * active owners and admins with a session, and a key's use is recorded at most once a minute.
 * Audit events go to `dir.audit` in the same step as their change. The admin store's fakes
 * (services/admin/test/fake-store.ts, fake-audit-store.ts) work on the same directory. Test code only.
 */
import { randomUUID } from "node:crypto";
import { timestampFromMs, timestampMs } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import { actorOf, AppError, invalid, isUuid, principalOf, requirePeer, requireRole, type Actor, type Principal, type Role } from "@crm/kit";
import {
  RotateRefreshTokenResponse_Outcome as Outcome,
  UseApiKeyDBResponse_Outcome as KeyOutcome,
  UserRole,
  UserStatus,
  type ApiKeyRecord,
  type DbAuthService,
  type NewSession,
} from "@crm/gen/crm/db/v1/db_auth_pb";
import { apiKeyIdOf, apiKeyLimits, checkApiKey } from "../src/rules.js";

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

export interface StoredApiKey {
  id: string;
  companyId: string;
  name: string;
  prefix: string;
  /** Hex of the SHA-256 of the whole key. */
  hash: string;
  scopes: string[];
  requestsPerMinute: number;
  createdBy: string;
  createdAt: number;
  expiresAt: number | null;
  lastUsedAt: number | null;
  lastUsedIp: string;
  revokedAt: number | null;
}

/** One audit row, as the store writes it. */
export interface StoredAuditEvent {
  id: string;
  seq: number;
  companyId: string;
  occurredAt: number;
  action: string;
  actor: { type: string; id: string; name: string; userId: string };
  target: { type: string; id: string };
  ip: string;
  details: Record<string, string>;
}

export type AuditActor = Actor | { type: "anonymous" | "system"; id?: string; name?: string; userId?: string };

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
  apiKeys: Map<string, StoredApiKey>;
  /** The audit log, oldest first. */
  audit: StoredAuditEvent[];
  /** Appends an audit event of `companyId` (a user actor's name looked up, as the store does). */
  record(companyId: string, e: { action: string; actor: AuditActor; target?: { type: string; id: string }; ip?: string; details?: Record<string, string> }): void;
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
    apiKeys: new Map(),
    audit: [],
    record(companyId, e) {
      const name = e.actor.name || (e.actor.type === "user" && e.actor.id ? (dir.users.get(e.actor.id)?.name ?? "") : "");
      dir.audit.push({
        id: randomUUID(),
        seq: dir.audit.length + 1,
        companyId,
        occurredAt: now(),
        action: e.action,
        actor: { type: e.actor.type, id: e.actor.id ?? "", name, userId: e.actor.userId ?? "" },
        target: e.target ?? { type: "", id: "" },
        ip: e.ip ?? "",
        details: e.details ?? {},
      });
    },
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

const keyRecord = (dir: Directory, k: StoredApiKey): Omit<ApiKeyRecord, "$typeName"> => {
  const u = dir.users.get(k.createdBy);
  return {
    apiKeyId: k.id,
    name: k.name,
    prefix: k.prefix,
    scopes: k.scopes,
    createdAt: timestampFromMs(k.createdAt),
    createdBy: k.createdBy,
    expiresAt: k.expiresAt === null ? undefined : timestampFromMs(k.expiresAt),
    lastUsedAt: k.lastUsedAt === null ? undefined : timestampFromMs(k.lastUsedAt),
    lastUsedIp: k.lastUsedIp,
    revokedAt: k.revokedAt === null ? undefined : timestampFromMs(k.revokedAt),
    requestsPerMinute: k.requestsPerMinute,
    creatorRole: u ? roleToProto[u.role] : UserRole.UNSPECIFIED,
    creatorStatus: u ? statusToProto[u.status] : UserStatus.UNSPECIFIED,
  };
};

/** An active owner or admin with a session, as the database knows them now. */
function keyManager(dir: Directory, p: Principal) {
  if (p.apiKey) throw new AppError("permission_denied", "API keys cannot manage API keys: use an owner's or admin's session");
  const u = dir.users.get(p.userId);
  if (!u || u.companyId !== p.companyId || u.status !== "active" || (u.role !== "owner" && u.role !== "admin")) {
    throw new AppError("permission_denied", `API keys are managed by owners and admins; you are ${u?.status === "active" ? u.role : "not an active user"}`);
  }
}

const utcDay = (ms: number) => Math.floor(ms / 86_400_000);

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
      const actor = { type: "user" as const, id: userId, name: req.ownerName, userId };
      dir.record(companyId, { action: "auth.company_registered", actor, target: { type: "company", id: companyId }, ip: req.session?.ip, details: { email: req.ownerEmail } });
      dir.record(companyId, { action: "auth.login", actor, target: { type: "session", id: sessionId }, ip: req.session?.ip });
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
      const sessionId = openSession(dir, req.companyId, req.userId, req.session);
      dir.record(req.companyId, { action: "auth.login", actor: { type: "user", id: req.userId, name: "", userId: req.userId }, target: { type: "session", id: sessionId }, ip: req.session?.ip });
      return { sessionId };
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
      if (mine) {
        s.revokedAt = dir.now();
        dir.record(p.companyId, { action: req.sessionId === p.sessionId ? "auth.logout" : "auth.session_revoked", actor: actorOf(p), target: { type: "session", id: req.sessionId }, ip: req.ip });
      }
      return { revoked: Boolean(mine), userId: p.userId };
    },

    async revokeAllSessions(req, ctx) {
      const p = req.userId && req.userId !== principalOf(ctx).userId ? requireRole(ctx, "owner", "admin") : principalOf(ctx);
      const userId = req.userId || p.userId;
      if (!isUuid(userId)) throw invalid([{ field: "userId", description: "must be a user id (UUID)" }]);
      const u = dir.users.get(userId);
      const sessionIds = u && u.companyId === p.companyId ? dir.revokeAll(userId) : [];
      dir.record(p.companyId, { action: "auth.logout_all", actor: actorOf(p), target: { type: "user", id: userId }, ip: req.ip, details: { sessions_ended: String(sessionIds.length) } });
      return { sessionIds };
    },

    async createApiKeyDB(req, ctx) {
      const p = principalOf(ctx);
      const key = checkApiKey({ name: req.name, scopes: req.scopes, expiresAtMs: req.expiresAt ? timestampMs(req.expiresAt) : undefined, requestsPerMinute: req.requestsPerMinute }, dir.now());
      if (!/^[0-9a-f]{12}$/.test(req.prefix) || req.keyHash.length !== 32) throw invalid([{ field: "prefix", description: "needs the key's 12-character prefix and its 32-byte SHA-256" }]);
      keyManager(dir, p);
      const active = [...dir.apiKeys.values()].filter((k) => k.companyId === p.companyId && k.revokedAt === null && (k.expiresAt === null || k.expiresAt > dir.now()));
      if (active.length >= apiKeyLimits.activePerCompany) throw new AppError("failed_precondition", `your company has ${apiKeyLimits.activePerCompany} active API keys, the most it may hold: revoke one first`);
      const k: StoredApiKey = {
        id: randomUUID(),
        companyId: p.companyId,
        name: key.name,
        prefix: req.prefix,
        hash: hex(req.keyHash),
        scopes: key.scopes,
        requestsPerMinute: key.requestsPerMinute,
        createdBy: p.userId,
        createdAt: dir.now(),
        expiresAt: key.expiresAtMs ?? null,
        lastUsedAt: null,
        lastUsedIp: "",
        revokedAt: null,
      };
      dir.apiKeys.set(k.id, k);
      dir.record(p.companyId, { action: "api_key.created", actor: actorOf(p), target: { type: "api_key", id: k.id }, ip: req.ip, details: { name: k.name, prefix: k.prefix, scopes: k.scopes.join(" ") } });
      return { apiKey: keyRecord(dir, k) };
    },

    async listApiKeysDB(req, ctx) {
      const p = principalOf(ctx);
      keyManager(dir, p);
      const keys = [...dir.apiKeys.values()].filter((k) => k.companyId === p.companyId && (req.includeRevoked || k.revokedAt === null)).sort((a, b) => b.createdAt - a.createdAt);
      return { apiKeys: keys.map((k) => keyRecord(dir, k)) };
    },

    async revokeApiKeyDB(req, ctx) {
      const p = principalOf(ctx);
      const id = apiKeyIdOf(req.apiKeyId);
      keyManager(dir, p);
      const k = dir.apiKeys.get(id);
      if (!k || k.companyId !== p.companyId) throw new AppError("not_found", `no API key ${id} in your company: see ListApiKeys`);
      const now = k.revokedAt === null;
      if (now) {
        k.revokedAt = dir.now();
        dir.record(p.companyId, { action: "api_key.revoked", actor: actorOf(p), target: { type: "api_key", id }, ip: req.ip, details: { name: k.name, prefix: k.prefix } });
      }
      return { apiKey: keyRecord(dir, k), revokedNow: now };
    },

    async useApiKeyDB(req, ctx) {
      requirePeer(ctx, "auth");
      if (req.keyHash.length !== 32) throw invalid([{ field: "keyHash", description: "must be a 32-byte SHA-256 digest" }]);
      const k = [...dir.apiKeys.values()].find((x) => x.hash === hex(req.keyHash));
      if (!k) return { outcome: KeyOutcome.UNKNOWN };
      const u = dir.users.get(k.createdBy);
      const outcome =
        k.revokedAt !== null ? KeyOutcome.REVOKED : k.expiresAt !== null && k.expiresAt <= dir.now() ? KeyOutcome.EXPIRED : u?.status !== "active" ? KeyOutcome.CREATOR_INACTIVE : KeyOutcome.VALID;
      if (outcome === KeyOutcome.VALID && (k.lastUsedAt === null || k.lastUsedAt < dir.now() - 60_000)) {
        const firstToday = k.lastUsedAt === null || utcDay(k.lastUsedAt) < utcDay(dir.now());
        k.lastUsedAt = dir.now();
        k.lastUsedIp = req.ip.slice(0, 64);
        if (firstToday) dir.record(k.companyId, { action: "api_key.used", actor: { type: "api_key", id: k.id, name: `API key ${k.name}`, userId: k.createdBy }, target: { type: "api_key", id: k.id }, ip: k.lastUsedIp, details: { prefix: k.prefix } });
      }
      return { outcome, apiKey: keyRecord(dir, k), companyId: k.companyId };
    },
  };
}

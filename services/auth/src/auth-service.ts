/** crm.auth.v1.AuthService handlers. Dependencies come in; no wiring here. */
import type { Client, HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { JSONWebKeySet } from "jose";
import { AppError, clientIpKey, cookie, principalOf, scrubText, type Logger, type Revocations, type Role } from "@crm/kit";
import { AuthService, Role as ProtoRole } from "@crm/gen/crm/auth/v1/auth_pb";
import { DbAuthService, RotateRefreshTokenResponse_Outcome as Outcome, UserRole, UserStatus } from "@crm/gen/crm/db/v1/db_auth_pb";
import type { DbAuditService } from "@crm/gen/crm/db/v1/db_audit_pb";
import { ActorType } from "@crm/gen/crm/admin/v1/audit_pb";
import { accountLinkHandlers, type AccountLinkDeps } from "./account-links.js";
import { dummyHash, hashPassword, verifyPassword } from "./passwords.js";
import type { LoginThrottle } from "./throttle.js";
import { hashOpaqueToken, newOpaqueToken, opaqueTokenShape } from "@crm/contracts/tokens";
import type { TokenIssuer } from "./tokens.js";
import { validateLogin, validateRegister } from "./validation.js";

export interface AuthDeps {
  db: Client<typeof DbAuthService>;
  tokens: TokenIssuer;
  /** The JWKS GetJwks answers with; a function is asked on every call (reloaded, signing-keys.ts). */
  jwks: JSONWebKeySet | (() => JSONWebKeySet);
  revocations: Revocations;
  throttle: LoginThrottle;
  refreshTtlSeconds: number;
  log: Logger;
  now?: () => number;
  /** Password reset and invitations (their tokens and e-mails); unset: those RPCs answer unimplemented. */
  links?: AccountLinkDeps | undefined;
  /** Where failed logins are recorded (they write nothing else); unset: only logged. */
  audit?: Client<typeof DbAuditService> | undefined;
}

const fromDbRole: Record<number, Role> = { [UserRole.OWNER]: "owner", [UserRole.ADMIN]: "admin", [UserRole.MEMBER]: "member" };
export const toProtoRole: Record<Role, ProtoRole> = { owner: ProtoRole.OWNER, admin: ProtoRole.ADMIN, member: ProtoRole.MEMBER };

const badLogin = () => new AppError("invalid_credentials", "wrong email/phone or password");

export function authService(deps: AuthDeps): Partial<ServiceImpl<typeof AuthService>> {
  const now = deps.now ?? Date.now;

  function sessionOf(ctx: HandlerContext) {
    return {
      // Header bytes arrive as Latin-1, so a UTF-8 User-Agent can hold C1 controls: scrubbed, not refused (text-rules.ts).
      userAgent: scrubText((ctx.requestHeader.get("user-agent") ?? "").slice(0, 512), false),
      ip: ctx.values.get(clientIpKey),
      expiresAt: timestampFromDate(new Date(now() + deps.refreshTtlSeconds * 1000)),
    };
  }

  /** Tokens in the body, and as HttpOnly cookies for browsers. */
  async function issue(ctx: HandlerContext, c: { userId: string; companyId: string; role: Role; sessionId: string }, refreshToken: string, refreshExpiresAt: Date) {
    const access = await deps.tokens.issueAccess(c);
    const refreshMaxAge = Math.max(0, Math.floor((refreshExpiresAt.getTime() - now()) / 1000));
    ctx.responseHeader.append("set-cookie", `access_token=${access.token}; Path=/; Max-Age=${deps.tokens.accessTtlSeconds}; HttpOnly; Secure; SameSite=Strict`);
    ctx.responseHeader.append("set-cookie", `refresh_token=${refreshToken}; Path=/; Max-Age=${refreshMaxAge}; HttpOnly; Secure; SameSite=Strict`);
    return {
      accessToken: access.token,
      refreshToken,
      accessExpiresAt: timestampFromDate(access.expiresAt),
      refreshExpiresAt: timestampFromDate(refreshExpiresAt),
      sessionId: c.sessionId,
    };
  }

  function clearCookies(ctx: HandlerContext) {
    for (const name of ["access_token", "refresh_token"]) ctx.responseHeader.append("set-cookie", `${name}=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Strict`);
  }

  const revoke = (ids: string[]) => deps.revocations.revokeSessions(ids, deps.tokens.accessTtlSeconds + 60);

  /**
   * A failed login of a known account goes to its company's audit log. In the background: the
   * answer must take as long whether or not the account exists (no account enumeration by time).
   */
  function auditFailedLogin(account: { userId: string; companyId: string }, ip: string, reason: string) {
    if (!deps.audit) return;
    deps.audit
      .recordAuditEventsDB({ events: [{ companyId: account.companyId, action: "auth.login_failed", actorType: ActorType.ANONYMOUS, targetType: "user", targetId: account.userId, userId: account.userId, ip, details: { reason } }] })
      .catch((err: unknown) => deps.log.warn({ err: String(err), user_id: account.userId, company_id: account.companyId }, "cannot record a failed login in the audit log"));
  }

  return {
    async registerCompany(req, ctx) {
      const input = validateRegister(req);
      const refresh = newOpaqueToken();
      const session = sessionOf(ctx);
      const created = await deps.db.registerCompany({
        companyName: input.companyName,
        address: input.address,
        locale: input.locale,
        ownerEmail: input.email,
        ownerPhone: input.phone,
        ownerName: input.ownerName,
        passwordHash: await hashPassword(input.password),
        session: { refreshHash: refresh.hash, ...session },
      });
      deps.log.info({ company_id: created.companyId, user_id: created.userId }, "company registered");
      const tokens = await issue(ctx, { userId: created.userId, companyId: created.companyId, role: "owner", sessionId: created.sessionId }, refresh.token, new Date(now() + deps.refreshTtlSeconds * 1000));
      return { companyId: created.companyId, userId: created.userId, ...tokens };
    },

    async login(req, ctx) {
      const id = validateLogin(req, req.password);
      const login = id.email ?? id.phone;
      const ip = ctx.values.get(clientIpKey);
      const failures = await deps.throttle.check(login, ip);
      const account = await deps.db.loginDB(id);
      // Unknown accounts are verified against a dummy hash: same error, similar time.
      const ok = await verifyPassword(account.found && account.passwordHash ? account.passwordHash : dummyHash, req.password);
      if (!ok || !account.found || !account.passwordHash) {
        await deps.throttle.failed(login, ip);
        if (account.found) auditFailedLogin(account, ip, account.passwordHash ? "wrong password" : "no password set yet");
        throw badLogin();
      }
      if (account.status !== UserStatus.ACTIVE) {
        auditFailedLogin(account, ip, "account deactivated");
        throw new AppError("permission_denied", "this account is deactivated: ask an admin of your company");
      }
      await deps.throttle.succeeded(login, ip, failures);
      const role = fromDbRole[account.role];
      if (!role) throw new Error(`account ${account.userId} has no valid role`);
      const refresh = newOpaqueToken();
      const session = sessionOf(ctx);
      const { sessionId } = await deps.db.createSession({ userId: account.userId, companyId: account.companyId, session: { refreshHash: refresh.hash, ...session } });
      const tokens = await issue(ctx, { userId: account.userId, companyId: account.companyId, role, sessionId }, refresh.token, new Date(now() + deps.refreshTtlSeconds * 1000));
      return { userId: account.userId, companyId: account.companyId, role: toProtoRole[role], ...tokens };
    },

    async refresh(req, ctx) {
      const token = req.refreshToken || cookie(ctx.requestHeader, "refresh_token") || "";
      if (!token) throw new AppError("invalid_argument", "invalid request: refreshToken: is required (or send the refresh_token cookie)", [{ field: "refreshToken", description: "is required" }]);
      if (!opaqueTokenShape.test(token)) throw new AppError("session_ended", "refresh token is not valid: log in again");
      const next = newOpaqueToken();
      const r = await deps.db.rotateRefreshToken({ oldHash: hashOpaqueToken(token), newHash: next.hash });
      if (r.outcome === Outcome.REUSED) {
        await revoke([r.sessionId]);
        deps.log.warn({ session_id: r.sessionId, user_id: r.userId, company_id: r.companyId }, "refresh token reused: session revoked");
        clearCookies(ctx);
        throw new AppError("refresh_token_reused", "this refresh token was already used, so the session was ended to protect the account: log in again");
      }
      const role = fromDbRole[r.role];
      if (r.outcome !== Outcome.ROTATED || !role || !r.expiresAt) {
        clearCookies(ctx);
        throw new AppError("session_ended", "the session has ended (logged out, expired or revoked): log in again");
      }
      const expires = new Date(Number(r.expiresAt.seconds) * 1000);
      return issue(ctx, { userId: r.userId, companyId: r.companyId, role, sessionId: r.sessionId }, next.token, expires);
    },

    async check(_req, ctx) {
      const p = principalOf(ctx);
      return { userId: p.userId, companyId: p.companyId, role: toProtoRole[p.role], expiresAt: timestampFromDate(new Date(p.expiresAt * 1000)), sessionId: p.sessionId };
    },

    async logout(_req, ctx) {
      const p = principalOf(ctx);
      if (p.apiKey) throw new AppError("permission_denied", "an API key has no session to log out of: revoke the key instead (RevokeApiKey)");
      await deps.db.revokeSession({ sessionId: p.sessionId, ip: ctx.values.get(clientIpKey) });
      await revoke([p.sessionId]);
      clearCookies(ctx);
      return {};
    },

    async logoutAll(_req, ctx) {
      principalOf(ctx);
      const { sessionIds } = await deps.db.revokeAllSessions({ ip: ctx.values.get(clientIpKey) });
      await revoke(sessionIds);
      clearCookies(ctx);
      return { revoked: sessionIds.length };
    },

    async listSessions(_req, ctx) {
      const p = principalOf(ctx);
      const { sessions } = await deps.db.listSessions({});
      return { sessions: sessions.map(({ $typeName: _t, $unknown: _u, ...s }) => ({ ...s, current: s.sessionId === p.sessionId })) };
    },

    async revokeSession(req, ctx) {
      principalOf(ctx);
      const r = await deps.db.revokeSession({ sessionId: req.sessionId, ip: ctx.values.get(clientIpKey) });
      if (!r.revoked) throw new AppError("not_found", `no active session ${req.sessionId} of yours: see ListSessions`);
      await revoke([req.sessionId]);
      return {};
    },

    async getJwks() {
      const jwks = typeof deps.jwks === "function" ? deps.jwks() : deps.jwks;
      return { keys: jwks.keys.map((k) => ({ kty: k.kty ?? "", kid: k.kid ?? "", use: k.use ?? "sig", alg: k.alg ?? "RS256", n: k.n ?? "", e: k.e ?? "" })) };
    },

    // RequestPasswordReset, ResetPassword, AcceptInvite (account-links.ts).
    ...(deps.links ? accountLinkHandlers(deps.links, { now, refreshTtlSeconds: deps.refreshTtlSeconds, sessionOf, issue, revoke }) : {}),
  };
}


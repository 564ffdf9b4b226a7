/**
 * The e-mailed one-time links of AuthService: RequestPasswordReset, ResetPassword and
 * AcceptInvite. Tokens are 256 random bits; only their SHA-256 is stored (DbAdminService), each
 * works once, and a new password follows the registration rules (passwords.ts).
 *
 * RequestPasswordReset never tells whether an account exists: the same answer, no sooner than
 * RESET_MIN_RESPONSE_MS either way, and the per-login limit silently sends nothing rather than
 * answering differently.
 */
import type { Client, HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { AppError, clientIpKey, invalid, type Counter, type Logger, type Role, type Violation } from "@crm/kit";
import { AuthService, Role as ProtoRole } from "@crm/gen/crm/auth/v1/auth_pb";
import {
  ConsumeInviteTokenResponse_Outcome as InviteOutcome,
  ConsumeResetTokenResponse_Outcome as ResetOutcome,
  DbAdminService,
  LookupTokenResponse_Outcome as LookupOutcome,
  TokenKind,
} from "@crm/gen/crm/db/v1/db_admin_pb";
import { UserRole } from "@crm/gen/crm/db/v1/db_auth_pb";
import { DbEmailService } from "@crm/gen/crm/db/v1/db_email_pb";
import { EmailKind } from "@crm/gen/crm/email/v1/email_pb";
import { renderPasswordReset, tokenLink } from "@crm/contracts/email-templates";
import { hashPassword, passwordProblem } from "./passwords.js";
import { hashOpaqueToken, newOpaqueToken, opaqueTokenShape } from "@crm/contracts/tokens";
import { validateLogin } from "./validation.js";

export interface AccountLinkDeps {
  admin: Client<typeof DbAdminService>;
  email: Client<typeof DbEmailService>;
  counter: Counter;
  log: Logger;
  /** PUBLIC_URL, read when a link is made. */
  appUrl: () => string;
  resetTtlMinutes: number;
  resetPerLogin: number;
  resetPerIp: number;
  resetMinResponseMs: number;
}

/** What the handlers borrow from authService: sessions, token issuing, the revocation list. */
export interface AuthHelpers {
  now: () => number;
  refreshTtlSeconds: number;
  sessionOf(ctx: HandlerContext): { userAgent: string; ip: string; expiresAt: ReturnType<typeof timestampFromDate> };
  issue(ctx: HandlerContext, c: { userId: string; companyId: string; role: Role; sessionId: string }, refreshToken: string, refreshExpiresAt: Date): Promise<{
    accessToken: string;
    refreshToken: string;
    accessExpiresAt: ReturnType<typeof timestampFromDate>;
    refreshExpiresAt: ReturnType<typeof timestampFromDate>;
    sessionId: string;
  }>;
  revoke(sessionIds: string[]): Promise<void>;
}

const fromDbRole: Record<number, Role> = { [UserRole.OWNER]: "owner", [UserRole.ADMIN]: "admin", [UserRole.MEMBER]: "member" };
const toProtoRole: Record<Role, ProtoRole> = { owner: ProtoRole.OWNER, admin: ProtoRole.ADMIN, member: ProtoRole.MEMBER };

const HOUR = 3600;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const tokenWords = {
  invite: { name: "invitation link", fix: "ask an admin of your company to invite you again" },
  reset: { name: "password-reset link", fix: "ask for a new one with RequestPasswordReset" },
};

function badToken(kind: keyof typeof tokenWords, expired: boolean): AppError {
  const w = tokenWords[kind];
  const what = expired ? `this ${w.name} has expired` : `this ${w.name} is not valid or was already used`;
  return invalid([{ field: "token", description: `${what}: ${w.fix}` }]);
}

/** Token shape and the password's own rules (before any lookup): both reported at once. */
function checkInput(kind: keyof typeof tokenWords, token: string, passwordField: string, password: string) {
  const v: Violation[] = [];
  if (!token) v.push({ field: "token", description: "is required (from the link in the e-mail)" });
  else if (!opaqueTokenShape.test(token)) v.push({ field: "token", description: `is not a valid token: copy it whole from the ${tokenWords[kind].name} in the e-mail` });
  const problem = passwordProblem(password);
  if (problem) v.push({ field: passwordField, description: problem });
  if (v.length) throw invalid(v);
}

export function accountLinkHandlers(deps: AccountLinkDeps, h: AuthHelpers): Pick<ServiceImpl<typeof AuthService>, "requestPasswordReset" | "resetPassword" | "acceptInvite"> {
  /** The account's logins, so the password is not one of them; throws for a spent or expired token. */
  async function lookup(kind: "invite" | "reset", tokenHash: Buffer, passwordField: string, password: string) {
    const r = await deps.admin.lookupToken({ kind: kind === "invite" ? TokenKind.INVITE : TokenKind.PASSWORD_RESET, tokenHash });
    if (r.outcome !== LookupOutcome.VALID) throw badToken(kind, r.outcome === LookupOutcome.EXPIRED);
    const problem = passwordProblem(password, { email: r.email, phone: r.phone });
    if (problem) throw invalid([{ field: passwordField, description: problem }]);
  }

  return {
    async requestPasswordReset(req, ctx) {
      const id = validateLogin(req);
      const login = id.email ?? id.phone;
      const ip = ctx.values.get(clientIpKey);
      const perIp = await deps.counter.hit(`reset:ip:${ip}`, HOUR);
      if (perIp > deps.resetPerIp) {
        const retry = await deps.counter.ttl(`reset:ip:${ip}`);
        throw new AppError("rate_limited", `too many password-reset requests from this address; try again in ${Math.ceil(retry / 60)} min`, [], retry);
      }
      const floor = sleep(deps.resetMinResponseMs);
      const perLogin = await deps.counter.hit(`reset:login:${login}`, HOUR);
      if (perLogin <= deps.resetPerLogin) {
        const { token, hash } = newOpaqueToken();
        const found = await deps.admin.createPasswordReset({ ...id, tokenHash: hash, expiresAt: timestampFromDate(new Date(h.now() + deps.resetTtlMinutes * 60_000)) });
        if (found.found) {
          const mail = renderPasswordReset({ locale: found.locale, name: found.name, email: found.email, link: tokenLink(deps.appUrl(), "/reset-password", token), validMinutes: deps.resetTtlMinutes });
          const q = await deps.email.queueEmail({
            companyId: found.companyId,
            email: { to: found.email, subject: mail.subject, text: mail.text, html: mail.html, locale: mail.locale, kind: EmailKind.PASSWORD_RESET },
          });
          deps.log.info({ company_id: found.companyId, user_id: found.userId, email_id: q.emailId }, "password reset e-mail queued");
        }
      }
      await floor;
      return {};
    },

    async resetPassword(req) {
      checkInput("reset", req.token, "newPassword", req.newPassword);
      const tokenHash = hashOpaqueToken(req.token);
      await lookup("reset", tokenHash, "newPassword", req.newPassword);
      const r = await deps.admin.consumeResetToken({ tokenHash, passwordHash: await hashPassword(req.newPassword) });
      if (r.outcome !== ResetOutcome.CONSUMED) throw badToken("reset", r.outcome === ResetOutcome.EXPIRED);
      await h.revoke(r.revokedSessionIds);
      deps.log.info({ company_id: r.companyId, user_id: r.userId, sessions: r.revokedSessionIds.length }, "password reset");
      return {};
    },

    async acceptInvite(req, ctx) {
      checkInput("invite", req.token, "password", req.password);
      const tokenHash = hashOpaqueToken(req.token);
      await lookup("invite", tokenHash, "password", req.password);
      const refresh = newOpaqueToken();
      const r = await deps.admin.consumeInviteToken({ tokenHash, passwordHash: await hashPassword(req.password), session: { refreshHash: refresh.hash, ...h.sessionOf(ctx) } });
      if (r.outcome !== InviteOutcome.CONSUMED) throw badToken("invite", r.outcome === InviteOutcome.EXPIRED);
      const role = fromDbRole[r.role];
      if (!role) throw new Error(`invited user ${r.userId} has no valid role`);
      deps.log.info({ company_id: r.companyId, user_id: r.userId }, "invitation accepted");
      const tokens = await h.issue(ctx, { userId: r.userId, companyId: r.companyId, role, sessionId: r.sessionId }, refresh.token, new Date(h.now() + h.refreshTtlSeconds * 1000));
      return { userId: r.userId, companyId: r.companyId, role: toProtoRole[role], ...tokens };
    },
  };
}

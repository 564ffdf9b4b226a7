/**
 * crm.email.v1.EmailService handlers. Callers: users with role owner or admin (their token), and
 * our other services (their mTLS certificate, or the in-process identity), either forwarding a
 * user's token or, acting for no user, naming the company. The RPCs are public at the interceptor
 * level so that service callers without a user token get through; the handlers check the caller.
 */
import type { Client, HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { AppError, callingService, invalid, isUuid, tokenFromHeaders, type TokenVerifier } from "@crm/kit";
import { DbEmailService } from "@crm/gen/crm/db/v1/db_email_pb";
import { EmailService } from "@crm/gen/crm/email/v1/email_pb";
import { validateSend } from "./validation.js";

export interface EmailServiceDeps {
  db: Client<typeof DbEmailService>;
  verifier: TokenVerifier;
}

/** The company the call acts for, after checking who calls. */
export async function callerCompany(ctx: HandlerContext, verifier: TokenVerifier, requested: string): Promise<string> {
  // one of our services acting as itself (the gateway is not one: it only passes users' calls on)
  const internal = callingService(ctx.values) !== undefined;
  const token = tokenFromHeaders(ctx.requestHeader);
  if (token) {
    const p = await verifier.verify(token);
    if (!internal && p.role !== "owner" && p.role !== "admin") throw new AppError("permission_denied", `this call needs role owner or admin; you are ${p.role}`);
    if (requested && requested !== p.companyId) throw new AppError("permission_denied", "companyId must be empty or your own company");
    return p.companyId;
  }
  if (!internal) {
    throw new AppError("unauthenticated", "this call needs an access token: send Authorization: Bearer <token> or the access_token cookie (get one from /crm.auth.v1.AuthService/Login)");
  }
  if (!isUuid(requested)) throw invalid([{ field: "companyId", description: "is required (a UUID) when a service calls without a user's token" }]);
  return requested;
}

export function emailService(deps: EmailServiceDeps): ServiceImpl<typeof EmailService> {
  return {
    async sendEmail(req, ctx) {
      const companyId = await callerCompany(ctx, deps.verifier, req.companyId);
      const e = validateSend(req);
      const r = await deps.db.queueEmail({
        companyId,
        idempotencyKey: e.idempotencyKey,
        email: { to: e.to, subject: e.subject, text: e.text, html: e.html, locale: e.locale, kind: e.kind },
      });
      return { emailId: r.emailId, status: r.status, replayed: r.replayed };
    },

    async getEmailStatus(req, ctx) {
      const companyId = await callerCompany(ctx, deps.verifier, req.companyId);
      if (!isUuid(req.emailId)) throw invalid([{ field: "emailId", description: "must be an e-mail id (UUID) returned by SendEmail" }]);
      const r = await deps.db.getEmailStatusDB({ emailId: req.emailId, companyId });
      return { emailId: r.emailId, status: r.status, attempts: r.attempts, lastError: r.lastError, sentAt: r.sentAt, createdAt: r.createdAt };
    },
  };
}

/**
 * An in-memory DbEmailService for fast handler tests, following the store's documented semantics
 * (proto/crm/db/v1/db_email.proto, ../store/email-store.ts): only our services call it, each with
 * its identity (QueueEmail and GetEmailStatusDB: email, auth, admin; the delivery records: email
 * only), naming the company; an idempotency key is unique within a company and replays the first
 * e-mail; another company's e-mail is not_found; a sent e-mail never changes again. Each queued
 * e-mail's task is kept in `tasks`, as the outbox would hold it. Test code only.
 */
import { randomUUID } from "node:crypto";
import { timestampFromMs, timestampMs } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import { AppError, invalid, isUuid, requirePeer } from "@crm/kit";
import type { DbEmailService, OutgoingEmail } from "@crm/gen/crm/db/v1/db_email_pb";
import { EmailKind, EmailStatus } from "@crm/gen/crm/email/v1/email_pb";

export interface StoredEmail {
  id: string;
  companyId: string;
  email: OutgoingEmail;
  idempotencyKey: string;
  status: EmailStatus;
  attempts: number;
  lastError: string;
  sentAt: number | undefined;
  createdAt: number;
}

export interface FakeEmailStore {
  impl: ServiceImpl<typeof DbEmailService>;
  emails: Map<string, StoredEmail>;
  /** The e-mail tasks on the outbox, in order (what the workers will be sent). */
  tasks: StoredEmail[];
}

function emailProblem(e: OutgoingEmail | undefined): string | undefined {
  if (!e) return "is required";
  if (e.to.length < 3 || e.to.length > 254 || !e.to.includes("@") || /[\s<>,;]/.test(e.to)) return "to must be one e-mail address";
  if (!e.subject || e.subject.length > 998 || /[\r\n]/.test(e.subject)) return "subject must be 1..998 characters without line breaks";
  if (!e.text) return "text is required";
  return undefined;
}

function companyOf(companyId: string): string {
  if (!isUuid(companyId)) throw invalid([{ field: "companyId", description: "must be the company id (UUID) the e-mail belongs to" }]);
  return companyId;
}

/** `now`: the database's clock. */
export function fakeEmailStore(now: () => number): FakeEmailStore {
  const emails = new Map<string, StoredEmail>();
  const tasks: StoredEmail[] = [];

  const state = (e: StoredEmail) => ({
    emailId: e.id,
    status: e.status,
    attempts: e.attempts,
    lastError: e.lastError,
    sentAt: e.sentAt === undefined ? undefined : timestampFromMs(e.sentAt),
    createdAt: timestampFromMs(e.createdAt),
  });
  const of = (companyId: string, id: string) => {
    const e = emails.get(id);
    return e && e.companyId === companyId ? e : undefined;
  };
  const markSent = (companyId: string, id: string, sentAt: number) => {
    const e = of(companyId, id);
    if (!e) return { updated: false, attempts: 0 };
    if (e.status === EmailStatus.SENT) return { updated: false, attempts: e.attempts };
    e.status = EmailStatus.SENT;
    e.attempts++;
    e.sentAt = sentAt;
    return { updated: true, attempts: e.attempts };
  };

  const impl: ServiceImpl<typeof DbEmailService> = {
    async queueEmail(req, ctx) {
      requirePeer(ctx, "email", "auth", "admin");
      const companyId = companyOf(req.companyId);
      const problem = emailProblem(req.email);
      if (problem) throw invalid([{ field: "email", description: problem }]);
      if (req.idempotencyKey.length > 128) throw invalid([{ field: "idempotencyKey", description: "must be at most 128 characters" }]);
      const earlier = req.idempotencyKey ? [...emails.values()].find((e) => e.companyId === companyId && e.idempotencyKey === req.idempotencyKey) : undefined;
      if (earlier) return { emailId: earlier.id, status: earlier.status, replayed: true };
      const e: StoredEmail = {
        id: randomUUID(),
        companyId,
        email: { ...req.email!, locale: req.email!.locale || "en", kind: req.email!.kind || EmailKind.CUSTOM },
        idempotencyKey: req.idempotencyKey,
        status: EmailStatus.QUEUED,
        attempts: 0,
        lastError: "",
        sentAt: undefined,
        createdAt: now(),
      };
      emails.set(e.id, e);
      tasks.push(e);
      return { emailId: e.id, status: EmailStatus.QUEUED, replayed: false };
    },

    async markEmailSent(req, ctx) {
      requirePeer(ctx, "email");
      const companyId = companyOf(req.companyId);
      if (!isUuid(req.emailId)) throw invalid([{ field: "emailId", description: "must be an e-mail id (UUID)" }]);
      return markSent(companyId, req.emailId, req.sentAt ? timestampMs(req.sentAt) : now());
    },

    async markEmailFailed(req, ctx) {
      requirePeer(ctx, "email");
      const companyId = companyOf(req.companyId);
      if (!isUuid(req.emailId)) throw invalid([{ field: "emailId", description: "must be an e-mail id (UUID)" }]);
      const e = of(companyId, req.emailId);
      if (!e) throw new AppError("not_found", `no e-mail ${req.emailId} in company ${companyId}`);
      if (e.status === EmailStatus.QUEUED) {
        e.attempts++;
        e.lastError = req.error.slice(0, 2000);
        if (req.final) e.status = EmailStatus.FAILED;
      }
      return { attempts: e.attempts, status: e.status };
    },

    async getEmailStatusDB(req, ctx) {
      requirePeer(ctx, "email", "auth", "admin");
      const companyId = companyOf(req.companyId);
      if (!isUuid(req.emailId)) throw invalid([{ field: "emailId", description: "must be an e-mail id (UUID) returned by SendEmail" }]);
      const e = of(companyId, req.emailId);
      if (!e) throw new AppError("not_found", `no e-mail ${req.emailId} in your company: use the id SendEmail returned`);
      return state(e);
    },

    async advanceEmailWorkers(req, ctx) {
      requirePeer(ctx, "email");
      const seen = new Set<string>();
      const sent = req.sent.map((s) => {
        const m = markSent(companyOf(s.companyId), s.emailId, s.sentAt ? timestampMs(s.sentAt) : now());
        const first = !seen.has(s.emailId);
        seen.add(s.emailId);
        return { updated: m.updated && first, attempts: m.attempts };
      });
      const next = req.next.map((n) => {
        const e = of(companyOf(n.companyId), n.emailId);
        return { found: Boolean(e), email: e && state(e) };
      });
      return { sent, next };
    },
  };

  return { impl, emails, tasks };
}

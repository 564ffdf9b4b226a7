/**
 * The e-mail store, mounted by dbservice as DbEmailService: e-mails and their delivery state. An
 * e-mail row and its task on the outbox are written in ONE transaction, so a queued e-mail always
 * reaches RabbitMQ (dbservice's relay publishes it) and a task always has its row. Only services
 * call these RPCs: the calling service verified its user and names the company (the email service
 * passes its user's company; its workers, which act for no user, the task's company).
 */
import { randomUUID } from "node:crypto";
import { timestampDate, timestampFromDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import { AppError, invalid, isUuid, requirePeer } from "@crm/kit";
import type { DbEmailService, OutgoingEmail } from "@crm/gen/crm/db/v1/db_email_pb";
import { EmailKind, EmailStatus, EmailTaskSchema } from "@crm/gen/crm/email/v1/email_pb";
import { EMAIL_QUEUE } from "@crm/contracts";
import { encodeEvent } from "@crm/contracts/events";
import type { Db, OutboxMessage, Sql } from "@crm/dbservice/db";

/** Where e-mail tasks go: the default exchange, routing key = queue name. */
export interface EmailQueueConfig {
  /** The durable work queue of the email workers (EMAIL_QUEUE, default `email_tasks`). */
  queue: string;
  /** Called after a transaction that wrote tasks committed (wakes the relay where it cannot LISTEN). */
  afterOutbox?: (() => void) | undefined;
}

export const defaultEmailQueue = EMAIL_QUEUE;

const kindNames: Record<number, string> = { [EmailKind.WELCOME]: "welcome", [EmailKind.PASSWORD_RESET]: "password_reset", [EmailKind.CUSTOM]: "custom" };
const statusOf: Record<string, EmailStatus> = { queued: EmailStatus.QUEUED, sent: EmailStatus.SENT, failed: EmailStatus.FAILED };

const ts = (d: Date | null): Timestamp | undefined => (d ? timestampFromDate(d) : undefined);

/** Minimal sanity checks; callers validated and rendered the e-mail. A bad one is a caller bug. */
export function emailProblem(e: OutgoingEmail | undefined): string | undefined {
  if (!e) return "is required";
  if (e.to.length < 3 || e.to.length > 254 || !e.to.includes("@") || /[\s<>,;]/.test(e.to)) return "to must be one e-mail address";
  if (!e.subject || e.subject.length > 998 || /[\r\n]/.test(e.subject)) return "subject must be 1..998 characters without line breaks";
  if (!e.text) return "text is required";
  return undefined;
}

export interface QueuedEmail {
  emailId: string;
  createdAt: Date;
}

/**
 * Inserts e-mail rows and their outbox tasks in the caller's transaction (tenant `companyId`).
 * Used by QueueEmail and by RegisterUsersInCompany (invitations in the users' transaction).
 */
export async function queueEmails(db: Pick<Db, "enqueueMany">, sql: Sql, cfg: EmailQueueConfig, companyId: string, emails: { email: OutgoingEmail; idempotencyKey?: string }[]): Promise<QueuedEmail[]> {
  if (emails.length === 0) return [];
  const ids = emails.map(() => randomUUID());
  const { rows } = await sql.query<{ id: string; created_at: Date }>(
    `INSERT INTO emails (id, company_id, kind, to_address, subject, locale, idempotency_key)
     SELECT id, $2, kind, to_address, subject, locale, nullif(key, '')
     FROM unnest($1::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[]) AS t(id, kind, to_address, subject, locale, key)
     RETURNING id, created_at`,
    [
      ids,
      companyId,
      emails.map((e) => kindNames[e.email.kind] ?? "custom"),
      emails.map((e) => e.email.to),
      emails.map((e) => e.email.subject),
      emails.map((e) => e.email.locale || "en"),
      emails.map((e) => e.idempotencyKey ?? ""),
    ],
  );
  const createdAt = new Map(rows.map((r) => [r.id, r.created_at]));
  const out: QueuedEmail[] = [];
  const tasks: OutboxMessage[] = [];
  for (let i = 0; i < emails.length; i++) {
    const e = emails[i]!.email;
    const id = ids[i]!;
    const at = createdAt.get(id) ?? new Date();
    const task = encodeEvent(EmailTaskSchema, {
      emailId: id,
      companyId,
      to: e.to,
      subject: e.subject,
      text: e.text,
      html: e.html,
      locale: e.locale || "en",
      kind: e.kind || EmailKind.CUSTOM,
      createdAt: timestampFromDate(at),
      attempt: 1,
    });
    tasks.push({
      exchange: "",
      routingKey: cfg.queue,
      ...task,
      messageId: id,
      companyId,
    });
    out.push({ emailId: id, createdAt: at });
  }
  await db.enqueueMany(sql, tasks);
  return out;
}

function companyOf(companyId: string): string {
  if (!isUuid(companyId)) throw invalid([{ field: "companyId", description: "must be the company id (UUID) the e-mail belongs to" }]);
  return companyId;
}

export function emailStore(db: Db, cfg: EmailQueueConfig): ServiceImpl<typeof DbEmailService> {
  return {
    async queueEmail(req, ctx) {
      requirePeer(ctx, "email", "auth", "admin");
      const companyId = companyOf(req.companyId);
      const problem = emailProblem(req.email);
      if (problem) throw invalid([{ field: "email", description: problem }]);
      if (req.idempotencyKey.length > 128) throw invalid([{ field: "idempotencyKey", description: "must be at most 128 characters" }]);
      const key = req.idempotencyKey;
      const replay = async (sql: Sql) => {
        const { rows } = await sql.query<{ id: string; status: string }>("SELECT id, status FROM emails WHERE idempotency_key = $1", [key]);
        return rows[0] ? { emailId: rows[0].id, status: statusOf[rows[0].status] ?? EmailStatus.UNSPECIFIED, replayed: true } : undefined;
      };
      const attempt = () =>
        db.tenant(companyId, async (sql) => {
          if (key) {
            const earlier = await replay(sql);
            if (earlier) return earlier;
          }
          const [q] = await queueEmails(db, sql, cfg, companyId, [{ email: req.email!, idempotencyKey: key }]);
          return { emailId: q!.emailId, status: EmailStatus.QUEUED, replayed: false };
        });
      try {
        const r = await attempt();
        if (!r.replayed) cfg.afterOutbox?.();
        return r;
      } catch (err) {
        // Two calls with the same new key at once: the loser replays the winner's e-mail.
        if ((err as { code?: string }).code === "23505" && key) {
          const again = await db.tenant(companyId, replay);
          if (again) return again;
        }
        throw err;
      }
    },

    async markEmailSent(req, ctx) {
      requirePeer(ctx, "email");
      const companyId = companyOf(req.companyId);
      const sent = sentInput(req);
      return db.tenant(companyId, async (sql) => (await markManySent(sql, [sent])).get(sent.emailId) ?? { updated: false, attempts: 0 });
    },

    async markEmailFailed(req, ctx) {
      requirePeer(ctx, "email");
      const companyId = companyOf(req.companyId);
      if (!isUuid(req.emailId)) throw invalid([{ field: "emailId", description: "must be an e-mail id (UUID)" }]);
      return db.tenant(companyId, async (sql) => {
        const { rows } = await sql.query<{ attempts: number; status: string }>(
          `UPDATE emails SET attempts = attempts + 1, last_error = $2, status = CASE WHEN $3 THEN 'failed' ELSE status END, updated_at = now()
           WHERE id = $1 AND status = 'queued' RETURNING attempts, status`,
          [req.emailId, req.error.slice(0, 2000), req.final],
        );
        const row = rows[0] ?? (await sql.query<{ attempts: number; status: string }>("SELECT attempts, status FROM emails WHERE id = $1", [req.emailId])).rows[0];
        if (!row) throw new AppError("not_found", `no e-mail ${req.emailId} in company ${companyId}`);
        return { attempts: row.attempts, status: statusOf[row.status] ?? EmailStatus.UNSPECIFIED };
      });
    },

    async getEmailStatusDB(req, ctx) {
      requirePeer(ctx, "email", "auth", "admin");
      const companyId = companyOf(req.companyId);
      if (!isUuid(req.emailId)) throw invalid([{ field: "emailId", description: "must be an e-mail id (UUID) returned by SendEmail" }]);
      const [r] = await db.tenant(companyId, (sql) => statusOfEmails(sql, [req.emailId]));
      if (!r) throw new AppError("not_found", `no e-mail ${req.emailId} in your company: use the id SendEmail returned`);
      return r;
    },

    async advanceEmailWorkers(req, ctx) {
      requirePeer(ctx, "email");
      for (const field of ["sent", "next"] as const) {
        if (req[field].length > maxAdvanceBatch) throw invalid([{ field, description: `at most ${maxAdvanceBatch} e-mails per call` }]);
      }
      const sent = req.sent.map((s, i) => ({ companyId: companyOf(s.companyId), ...sentInput(s, `sent[${i}].emailId`) }));
      const next = req.next.map((n, i) => {
        if (!isUuid(n.emailId)) throw invalid([{ field: `next[${i}].emailId`, description: "must be an e-mail id (UUID)" }]);
        return { companyId: companyOf(n.companyId), emailId: n.emailId };
      });
      const marked = new Map<string, { updated: boolean; attempts: number }>();
      const found = new Map<string, EmailState>();
      // One transaction per company (usually one): the records first, then the lookups.
      for (const companyId of new Set([...sent, ...next].map((e) => e.companyId))) {
        await db.tenant(companyId, async (sql) => {
          const mine = sent.filter((s) => s.companyId === companyId);
          for (const [id, m] of await markManySent(sql, mine)) marked.set(id, m);
          const ids = next.filter((n) => n.companyId === companyId).map((n) => n.emailId);
          for (const e of await statusOfEmails(sql, ids)) found.set(e.emailId, e);
        });
      }
      // An e-mail named twice in sent is updated once: the first names it.
      const seen = new Set<string>();
      return {
        sent: sent.map((s) => {
          const m = marked.get(s.emailId) ?? { updated: false, attempts: 0 };
          const first = !seen.has(s.emailId);
          seen.add(s.emailId);
          return { updated: m.updated && first, attempts: m.attempts };
        }),
        next: next.map((n) => {
          const e = found.get(n.emailId);
          return { found: Boolean(e), email: e };
        }),
      };
    },
  };
}

/** E-mails per list in one AdvanceEmailWorkers call. */
const maxAdvanceBatch = 1000;

function sentInput(req: { emailId: string; sentAt?: Timestamp | undefined; smtpMessageId: string }, field = "emailId") {
  if (!isUuid(req.emailId)) throw invalid([{ field, description: "must be an e-mail id (UUID)" }]);
  return { emailId: req.emailId, sentAt: req.sentAt ? timestampDate(req.sentAt) : new Date(), smtpMessageId: req.smtpMessageId.slice(0, 998) };
}

/** Records accepted deliveries in one statement; an e-mail already sent is left as it is (updated false). Per e-mail id: updated, and its attempts. */
async function markManySent(sql: Sql, sent: { emailId: string; sentAt: Date; smtpMessageId: string }[]): Promise<Map<string, { updated: boolean; attempts: number }>> {
  const out = new Map<string, { updated: boolean; attempts: number }>();
  if (sent.length === 0) return out;
  const { rows } = await sql.query<{ id: string; attempts: number }>(
    `UPDATE emails e SET status = 'sent', attempts = e.attempts + 1, sent_at = s.sent_at, smtp_message_id = nullif(s.message_id, ''), updated_at = now()
     FROM unnest($1::uuid[], $2::timestamptz[], $3::text[]) AS s(id, sent_at, message_id)
     WHERE e.id = s.id AND e.status <> 'sent' RETURNING e.id, e.attempts`,
    [sent.map((s) => s.emailId), sent.map((s) => s.sentAt), sent.map((s) => s.smtpMessageId)],
  );
  for (const r of rows) out.set(r.id, { updated: true, attempts: r.attempts });
  const others = sent.map((s) => s.emailId).filter((id) => !out.has(id));
  if (others.length > 0) {
    const cur = await sql.query<{ id: string; attempts: number }>("SELECT id, attempts FROM emails WHERE id = ANY($1::uuid[])", [others]);
    for (const r of cur.rows) out.set(r.id, { updated: false, attempts: r.attempts });
  }
  return out;
}

async function statusOfEmails(sql: Sql, emailIds: string[]) {
  if (emailIds.length === 0) return [];
  const { rows } = await sql.query<EmailRow>("SELECT id, status, attempts, last_error, sent_at, created_at FROM emails WHERE id = ANY($1::uuid[])", [emailIds]);
  return rows.map(statusOfRow);
}

interface EmailRow {
  id: string;
  status: string;
  attempts: number;
  last_error: string;
  sent_at: Date | null;
  created_at: Date;
}

type EmailState = ReturnType<typeof statusOfRow>;

const statusOfRow = (r: EmailRow) => ({ emailId: r.id, status: statusOf[r.status] ?? EmailStatus.UNSPECIFIED, attempts: r.attempts, lastError: r.last_error, sentAt: ts(r.sent_at), createdAt: ts(r.created_at) });

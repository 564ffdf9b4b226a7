/**
 * Handing an e-mail to the outside world: nodemailer over SMTP (SMTP_URL; STARTTLS whenever the
 * server offers it), or, without SMTP_URL, an .eml file per e-mail under DATA_DIR/outbox. The
 * e-mail id is the Message-ID, so a receiver can recognise a message it already has.
 */
import { mkdirSync, renameSync, writeFileSync, existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { createTransport } from "nodemailer";
import type { Logger } from "@crm/kit";

export interface OutgoingMessage {
  /** The e-mail id (UUID): becomes the Message-ID. */
  id: string;
  to: string;
  subject: string;
  text: string;
  /** Empty: text only. */
  html: string;
  locale: string;
}

export interface SendResult {
  /** The Message-ID header the message carried. */
  messageId: string;
  /** The server's answer (or the file written). */
  response: string;
}

/** A failed delivery: `permanent` when the server refused the message for good (5xx). */
export class SendFailure extends Error {
  override name = "SendFailure";
  constructor(
    message: string,
    readonly permanent: boolean,
  ) {
    super(message);
  }
}

export interface Sender {
  send(m: OutgoingMessage): Promise<SendResult>;
  close(): void;
}

export interface SenderOptions {
  from: string;
  timeoutMs: number;
}

/** "CRM <no-reply@crm.example>" → "crm.example". */
export function domainOf(from: string): string {
  const m = /@([^>\s]+)>?\s*$/.exec(from);
  return m?.[1] ?? "crm.localhost";
}

export const messageIdOf = (id: string, from: string) => `<${id}@${domainOf(from)}>`;

function mail(m: OutgoingMessage, from: string) {
  return {
    from,
    to: m.to,
    subject: m.subject,
    text: m.text,
    ...(m.html ? { html: m.html } : {}),
    messageId: messageIdOf(m.id, from),
    headers: { "X-CRM-Email-Id": m.id, "Auto-Submitted": "auto-generated", "Content-Language": m.locale || "en" },
  };
}

/** What went wrong, for people and for GetEmailStatus (no credentials: nodemailer does not put them in errors). */
export function classify(err: unknown): SendFailure {
  if (err instanceof SendFailure) return err;
  const e = err as { message?: string; responseCode?: number; permanent?: boolean; code?: string; response?: string };
  const code = typeof e.responseCode === "number" ? e.responseCode : undefined;
  const permanent = e.permanent ?? (code !== undefined && code >= 500 && code < 600);
  let text = (e.response || e.message || String(err)).replace(/\s+/g, " ").trim();
  if (code && text.startsWith(String(code))) text = text.slice(3).replace(/^[\s-]+/, "");
  return new SendFailure(`${code ? `SMTP ${code}: ` : e.code ? `${e.code}: ` : ""}${text}`.slice(0, 2000), Boolean(permanent));
}

/** One SMTP connection (kept open between messages), for one worker. */
export function smtpSender(url: string, opts: SenderOptions): Sender {
  const transport = createTransport({
    url,
    pool: true,
    maxConnections: 1,
    maxMessages: 10_000,
    connectionTimeout: opts.timeoutMs,
    greetingTimeout: opts.timeoutMs,
    socketTimeout: opts.timeoutMs,
  });
  return {
    async send(m) {
      try {
        const info = await transport.sendMail(mail(m, opts.from));
        return { messageId: info.messageId, response: info.response };
      } catch (err) {
        throw classify(err);
      }
    },
    close: () => transport.close(),
  };
}

/** Development: each e-mail becomes DIR/<id>.eml (written atomically; an existing file means sent). */
export function fileSender(dir: string, opts: SenderOptions, log: Logger): Sender {
  const outbox = resolve(dir);
  mkdirSync(outbox, { recursive: true });
  log.warn({ dir: outbox }, `SMTP_URL is not set: e-mails are written as .eml files to ${outbox} and not delivered`);
  const transport = createTransport({ streamTransport: true, buffer: true, newline: "unix" });
  return {
    async send(m) {
      const file = join(outbox, `${m.id}.eml`);
      const messageId = messageIdOf(m.id, opts.from);
      if (existsSync(file)) return { messageId, response: `already written: ${file}` };
      const info = await transport.sendMail(mail(m, opts.from));
      const tmp = `${file}.${process.pid}.tmp`;
      writeFileSync(tmp, info.message as Buffer);
      renameSync(tmp, file);
      log.info({ email_id: m.id, file }, `e-mail written to ${file}`);
      return { messageId, response: `written: ${file}` };
    },
    close() {},
  };
}

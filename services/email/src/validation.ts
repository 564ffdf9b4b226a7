/** Input rules of SendEmail. Pure: returns the normalised e-mail or throws `invalid` naming every bad field. */
import { z } from "zod";
import { invalid, type Violation } from "@crm/kit";
import { EmailKind } from "@crm/gen/crm/email/v1/email_pb";

export const MAX_BODY_BYTES = 1024 * 1024;
const emailSchema = z.email();

export function normaliseRecipient(raw: string): string | undefined {
  const e = raw.trim().toLowerCase();
  return e.length <= 254 && emailSchema.safeParse(e).success ? e : undefined;
}

export interface SendInput {
  email: string;
  subject: string;
  body: string;
  html?: string | undefined;
  idempotencyKey: string;
  kind: EmailKind;
  locale: string;
}

export interface ValidSend {
  to: string;
  subject: string;
  text: string;
  html: string;
  idempotencyKey: string;
  kind: EmailKind;
  locale: string;
}

const bytes = (s: string) => Buffer.byteLength(s, "utf8");

export function validateSend(req: SendInput): ValidSend {
  const v: Violation[] = [];
  const to = normaliseRecipient(req.email);
  if (!to) v.push({ field: "email", description: req.email.trim() ? "must be one valid e-mail address like name@example.com" : "is required" });
  const subject = req.subject.trim();
  if (!subject) v.push({ field: "subject", description: "is required" });
  else if (/[\r\n]/.test(subject)) v.push({ field: "subject", description: "must be one line (no line breaks)" });
  else if (subject.length > 998) v.push({ field: "subject", description: "must be at most 998 characters" });
  if (!req.body.trim()) v.push({ field: "body", description: "is required (the plain-text body)" });
  else if (bytes(req.body) > MAX_BODY_BYTES) v.push({ field: "body", description: "must be at most 1 MiB" });
  const html = req.html ?? "";
  if (bytes(html) > MAX_BODY_BYTES) v.push({ field: "html", description: "must be at most 1 MiB" });
  if (req.idempotencyKey.length > 128) v.push({ field: "idempotencyKey", description: "must be at most 128 characters" });
  if (!(req.kind in EmailKind)) v.push({ field: "kind", description: "is not a known e-mail kind" });
  const locale = req.locale.trim() || "en";
  if (!/^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$/.test(locale) || locale.length > 35) v.push({ field: "locale", description: 'must be a BCP 47 language tag like "en" or "ru-RU"' });
  if (v.length) throw invalid(v);
  return { to: to!, subject, text: req.body, html, idempotencyKey: req.idempotencyKey, kind: req.kind || EmailKind.CUSTOM, locale };
}

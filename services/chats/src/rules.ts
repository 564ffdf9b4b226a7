/**
 * The chats domain's rules used on both sides: by the service's request checks (validation.ts,
 * chat-service.ts) and by its store (services/chats/store), which checks again what it is given
 * (dbservice trusts no caller's input). Pure: no I/O.
 */
import { AppError, isUuid, type Violation } from "@crm/kit";

export const limits = {
  name: 200,
  content: 4000,
  clientMessageId: 64,
  members: 1000,
  pageSize: 200,
  defaultPageSize: 50,
} as const;

/** Length in characters (code points), as PostgreSQL counts them. */
export const chars = (s: string) => {
  let n = 0;
  for (const _ of s) n++;
  return n;
};

/** A chat that does not exist and one the caller is not a member of look the same. */
export const notFound = (chatId: string) => new AppError("not_found", `chat ${chatId} not found, or you are not a member of it`);

/** A message's text: trimmed, 1..limits.content characters, no NUL. */
export function contentViolations(raw: string): { content: string; violations: Violation[] } {
  const content = raw.trim();
  const violations: Violation[] = [];
  if (!content) violations.push({ field: "content", description: raw ? "must not be only whitespace" : `is required (1..${limits.content} characters)` });
  else if (chars(content) > limits.content) violations.push({ field: "content", description: `must be at most ${limits.content} characters after trimming (got ${chars(content)})` });
  else if (content.includes("\u0000")) violations.push({ field: "content", description: "must not contain NUL characters" });
  return { content, violations };
}

// A chat's record (issue 16: "a chat may be attached to a record"): the reference a request names.

/** The columns of chat_records a reference fills; all null: detach. */
export interface ChatRecord {
  company: string | null;
  person: string | null;
  deal: string | null;
}

/** crm.records.v1.ObjectType as numbers, so this file stays free of generated code. */
const TYPES: Record<number, keyof ChatRecord> = { 1: "company", 2: "person", 3: "deal" };

/**
 * The record of a request: undefined when unset; all null for an empty reference ({}); else the
 * company, person or deal. Violations naming `field` for anything else (a task, a bad id).
 */
export function chatRecordOf(ref: { objectType: number; id: string } | undefined, field: string, out: Violation[]): ChatRecord | undefined {
  if (!ref) return undefined;
  const none: ChatRecord = { company: null, person: null, deal: null };
  if (ref.objectType === 0 && ref.id === "") return none;
  const bad: Violation[] = [];
  const kind = TYPES[ref.objectType];
  if (!kind) bad.push({ field: `${field}.objectType`, description: "must be OBJECT_TYPE_COMPANY, OBJECT_TYPE_PERSON or OBJECT_TYPE_DEAL (send {} to detach the chat)" });
  if (!isUuid(ref.id)) bad.push({ field: `${field}.id`, description: `must be the record's id (UUID), got ${JSON.stringify(ref.id.slice(0, 80))}` });
  out.push(...bad);
  if (bad.length || !kind) return undefined;
  return { ...none, [kind]: ref.id.toLowerCase() };
}

/** The record a row points to, as a RecordRef's fields; undefined when none. */
export function recordRefOf(r: { rec_company_id?: string | null; rec_person_id?: string | null; rec_deal_id?: string | null }): { objectType: number; id: string } | undefined {
  if (r.rec_company_id) return { objectType: 1, id: r.rec_company_id };
  if (r.rec_person_id) return { objectType: 2, id: r.rec_person_id };
  if (r.rec_deal_id) return { objectType: 3, id: r.rec_deal_id };
  return undefined;
}

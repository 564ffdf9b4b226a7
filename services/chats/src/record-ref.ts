/**
 * A chat's record (issue 16: "a chat may be attached to a record"): which customer record of the
 * records domain a request names. Used by the service's request checks and again by the store.
 * Pure: no I/O.
 */
import { invalid, isUuid, type Violation } from "@crm/kit";

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

/** SetChatRecord's request checks: the chat id and the record (unset or {}: detach). */
export function validateSetChatRecord<R extends { objectType: number; id: string }>(req: { chatId: string; record?: R | undefined }): { chatId: string; record: R | undefined } {
  const v: Violation[] = [];
  if (!isUuid(req.chatId)) v.push({ field: "chatId", description: req.chatId ? `must be a chat id (UUID), got ${JSON.stringify(req.chatId.slice(0, 40))}` : "is required: the chat id (UUID)" });
  chatRecordOf(req.record, "record", v);
  if (v.length) throw invalid(v);
  return { chatId: req.chatId, record: req.record };
}

/** ListChats' record filter, checked. */
export function validateRecordFilter<R extends { objectType: number; id: string }>(record: R | undefined): R | undefined {
  const v: Violation[] = [];
  chatRecordOf(record, "record", v);
  if (v.length) throw invalid(v);
  return record;
}

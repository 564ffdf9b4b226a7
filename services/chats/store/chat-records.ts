/**
 * Chats attached to records (table chat_records, migrations/1700000000151_chat_records.sql): the
 * SQL of SetChatRecordDB and of ListChats' record filter. The record is checked by the table's
 * composite foreign keys (the record must be in the row's tenant); their refusal is turned into
 * not_found naming the field.
 */
import { AppError, invalid, type Principal, type Violation } from "@crm/kit";
import type { Sql } from "@crm/dbservice/db";
import { chatRecordOf, notFound, recordRefOf, type ChatRecord } from "../src/rules.js";

/** The chat view's record columns; needs `c` as the chats row. */
export const RECORD_COLUMNS = `
    (SELECT r.rec_company_id FROM chat_records r WHERE r.chat_id = c.id) AS rec_company_id,
    (SELECT r.rec_person_id FROM chat_records r WHERE r.chat_id = c.id) AS rec_person_id,
    (SELECT r.rec_deal_id FROM chat_records r WHERE r.chat_id = c.id) AS rec_deal_id`;

export interface RecordColumns {
  rec_company_id?: string | null;
  rec_person_id?: string | null;
  rec_deal_id?: string | null;
}

export const chatRecordRef = (r: RecordColumns) => recordRefOf(r);

/** A request's record, or invalid_argument naming the field. */
export function recordArg(ref: { objectType: number; id: string } | undefined, field = "record"): ChatRecord | undefined {
  const v: Violation[] = [];
  const r = chatRecordOf(ref, field, v);
  if (v.length) throw invalid(v);
  return r;
}

/** ListChats' filter: `AND <the chat is attached to r>` with r's id as parameter $n, or "" for no filter. */
export function recordFilter(r: ChatRecord | undefined, n: number): { sql: string; value: string | null } {
  const column = r?.company ? "rec_company_id" : r?.person ? "rec_person_id" : r?.deal ? "rec_deal_id" : undefined;
  if (!column) return { sql: `AND ($${n}::uuid IS NULL)`, value: null };
  return { sql: `AND EXISTS (SELECT 1 FROM chat_records r WHERE r.chat_id = c.id AND r.${column} = $${n}::uuid)`, value: r!.company ?? r!.person ?? r!.deal };
}

const KIND: Record<string, string> = {
  chat_records_rec_company_fkey: "company",
  chat_records_rec_person_fkey: "person",
  chat_records_rec_deal_fkey: "deal",
};

/**
 * Attaches chat `id` to `record` (replacing any record) or, with no record, detaches it. The caller
 * must be a member of the chat (not_found otherwise, as everywhere in chats).
 */
export async function setChatRecord(sql: Sql, p: Principal, id: string, record: ChatRecord | undefined): Promise<void> {
  const { rowCount } = await sql.query("SELECT 1 FROM chat_members WHERE chat_id = $1 AND user_id = $2", [id, p.userId]);
  if (!rowCount) throw notFound(id);
  if (!record || (!record.company && !record.person && !record.deal)) {
    await sql.query("DELETE FROM chat_records WHERE chat_id = $1", [id]);
    return;
  }
  try {
    await sql.query(
      `INSERT INTO chat_records (chat_id, company_id, rec_company_id, rec_person_id, rec_deal_id, attached_by)
       VALUES ($1, $2, $3, $4, $5, $6)
       ON CONFLICT (chat_id) DO UPDATE SET rec_company_id = excluded.rec_company_id, rec_person_id = excluded.rec_person_id,
         rec_deal_id = excluded.rec_deal_id, attached_by = excluded.attached_by, attached_at = now()`,
      [id, p.companyId, record.company, record.person, record.deal, p.userId],
    );
  } catch (err) {
    const e = err as { code?: string; constraint?: string };
    const kind = e.code === "23503" && e.constraint ? KIND[e.constraint] : undefined;
    if (kind) throw new AppError("not_found", `no ${kind} with this id in your company: attach the chat to a record that exists`, [{ field: "record.id", description: `no such ${kind} in your company` }]);
    throw err;
  }
}

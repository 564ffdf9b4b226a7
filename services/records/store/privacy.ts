/**
 * PrivacyService in the store (DbPrivacyService): a person's data-protection requests.
 *
 * - ExportPersonDataDB: everything held about a person, trash included — the record with every
 *   custom value (archived fields too), its whole timeline, the notes and tasks linked to it, and
 *   the deals and companies it is linked to.
 * - ErasePersonDB: in ONE transaction, the person's words (names, e-mail addresses, phone numbers,
 *   job title, custom text values) are replaced by "[erased]" in the notes and tasks linked to it
 *   and in their timelines and change events; the values of the person's own timeline entries and
 *   change events become "[erased]" (who did what when stays); the person row goes (with its
 *   e-mail index, its links to companies, deals, notes and tasks, and chats attached to it: foreign
 *   keys ON DELETE CASCADE; the deals, notes and tasks that named it change as in a purge, shared.ts
 *   eraseWithCascades: a new etag and an UPDATED event each); its words leave the search
 *   vocabulary unless another record holds them. Deals, companies and their amounts stay, so
 *   reports keep their totals.
 *
 * Owners and admins only (the role of the transaction, read from the database). Both write their
 * audit event (no personal data: the person's id and counts) in the same transaction. The
 * timeline and the change log are append-only for the application role; the rewrites go through
 * the narrow SECURITY DEFINER functions of migrations/1700000000152_records_privacy.sql.
 */
import { create, fromBinary, fromJson, toBinary, toJson, type JsonObject, type JsonValue, type MessageInitShape } from "@bufbuild/protobuf";
import { ValueSchema, timestampNow, type Value } from "@bufbuild/protobuf/wkt";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { AppError, actorOf, principalOf } from "@crm/kit";
import type { DbPrivacyService } from "@crm/gen/crm/db/v1/db_privacy_pb";
import { RecordChangeSchema, RecordSnapshotSchema } from "@crm/gen/crm/records/v1/stream_pb";
import type { ExportPersonDataResponseSchema } from "@crm/gen/crm/records/v1/privacy_pb";
import type { Db, Sql } from "@crm/dbservice/db";
import { asCaller, isAdmin, type Acting } from "./acting.js";
import { getCompany, toCompany } from "./companies.js";
import { getDeal, toDeal } from "./deals.js";
import type { ExportAudit } from "./export-store.js";
import { getNote, toNote } from "./notes.js";
import { getPerson, toPerson } from "./people.js";
import { eraseWithCascades, idOf } from "./shared.js";
import { getTask, toTask } from "./tasks.js";
import { listTimeline } from "./timeline.js";
import { recordReaders } from "./readers.js";

export interface PrivacyStoreOptions {
  /** The audit log (the admin store's, handed in by dbservice). */
  audit: ExportAudit;
  /** Wakes the outbox relay after a commit that wrote events. */
  afterOutbox?: () => void;
}

const ERASED = "[erased]";

function mustBeAdmin(a: Acting, what: string): void {
  if (!isAdmin(a)) throw new AppError("permission_denied", `only owners and admins may ${what}; ask one of them`);
}

/** The ids of the notes or tasks linked to the person. */
async function linked(sql: Sql, kind: "note" | "task", personId: string): Promise<string[]> {
  const { rows } = await sql.query<{ id: string }>(`SELECT ${kind}_id AS id FROM rec_${kind}_links WHERE person_id = $1 ORDER BY ${kind}_id`, [personId]);
  return rows.map((r) => r.id);
}

/**
 * The texts that identify the person, longest first (so "Ann Lee" goes before "Ann"): names, the
 * full name, e-mail addresses, phone numbers (also as digits), job title, custom text values.
 * Words shorter than 3 characters are left alone (they would erase parts of unrelated words).
 */
export function personWords(
  p: { first_name: string; last_name: string; emails: string[]; phones: string[]; job_title: string; custom: JsonObject },
  history: readonly { field: string; before: unknown; after: unknown }[] = [],
): string[] {
  const words = new Set<string>();
  const add = (w: unknown) => {
    if (typeof w === "string" && w.trim().length >= 3) words.add(w.trim());
  };
  const name = (n: unknown) => {
    add(n);
    if (typeof n === "string") n.split(/[\s-]+/).forEach(add);
  };
  add(`${p.first_name} ${p.last_name}`);
  name(p.first_name);
  name(p.last_name);
  add(p.job_title);
  // Values the person had before (an earlier name or address), from its timeline.
  for (const c of history) {
    if (!/^(first_name|last_name|emails|phones|job_title|custom(\..*)?)$/.test(c.field)) continue;
    for (const v of [c.before, c.after]) {
      if (Array.isArray(v)) v.forEach(add);
      else if (v && typeof v === "object") Object.values(v).forEach((x) => (Array.isArray(x) ? x.forEach(add) : add(x)));
      else if (c.field.endsWith("name")) name(v);
      else add(v);
    }
  }
  for (const e of p.emails) {
    add(e);
    add(e.split("@")[0]);
  }
  for (const ph of p.phones) {
    add(ph);
    add(ph.replace(/^\+/, ""));
  }
  for (const v of Object.values(p.custom ?? {})) {
    if (Array.isArray(v)) v.forEach(add);
    else add(v);
  }
  return [...words].sort((a, b) => b.length - a.length || (a < b ? -1 : 1));
}

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** A JSON text with each word (as it appears inside a JSON string) replaced by "[erased]", without regard to case. */
export function scrubJsonText(json: string, words: readonly string[]): string {
  let out = json;
  for (const w of words) out = out.replace(new RegExp(escapeRegExp(JSON.stringify(w).slice(1, -1)), "gi"), ERASED);
  return out;
}

/**
 * A kept change event after the erasure: the person's own (`ownId`) keeps its version, type, id,
 * action, actor and time, with the snapshot reduced to the id and every value "[erased]"; any
 * other has the person's words replaced.
 */
export function scrubChange(event: Uint8Array, words: readonly string[], ownId: string): Uint8Array {
  const change = fromBinary(RecordChangeSchema, event);
  if (change.recordId === ownId) {
    const stub = () => create(RecordSnapshotSchema, { record: { case: "person", value: { id: ownId } } });
    const erased = (v: Value | undefined) => (v && v.kind.case !== undefined && v.kind.case !== "nullValue" ? create(ValueSchema, { kind: { case: "stringValue", value: ERASED } }) : v);
    change.record = change.record ? stub() : undefined;
    change.previous = change.previous ? stub() : undefined;
    for (const c of change.changes) {
      c.before = erased(c.before);
      c.after = erased(c.after);
    }
    return toBinary(RecordChangeSchema, change);
  }
  const json = JSON.stringify(toJson(RecordChangeSchema, change));
  const scrubbed = scrubJsonText(json, words);
  return scrubbed === json ? event : toBinary(RecordChangeSchema, fromJson(RecordChangeSchema, JSON.parse(scrubbed) as JsonValue));
}

export function privacyStore(db: Db, o: PrivacyStoreOptions): ServiceImpl<typeof DbPrivacyService> {
  const tx = <T>(ctx: HandlerContext, fn: (sql: Sql, a: Acting) => Promise<T>) => asCaller(db, ctx, fn, {}, { readers: recordReaders, afterOutbox: o.afterOutbox });

  return {
    async exportPersonDataDB({ request: r }, ctx) {
      const id = idOf(r?.personId ?? "", "personId");
      const response = await tx(ctx, async (sql, a): Promise<MessageInitShape<typeof ExportPersonDataResponseSchema>> => {
        mustBeAdmin(a, "export a person's data");
        const row = await getPerson(sql, id);
        // Every custom value, archived fields' too (the record's own view shows the active ones).
        const { rows: raw } = await sql.query<{ custom: JsonObject }>("SELECT custom FROM rec_people WHERE id = $1", [id]);
        const timeline = [];
        let token = "";
        do {
          const page = await listTimeline(sql, "person", id, 500, token);
          timeline.push(...page.entries);
          token = page.nextPageToken;
        } while (token);
        const notes = await Promise.all((await linked(sql, "note", id)).map((n) => getNote(sql, n)));
        const tasks = await Promise.all((await linked(sql, "task", id)).map((t) => getTask(sql, t)));
        const { rows: dealIds } = await sql.query<{ id: string }>("SELECT deal_id AS id FROM rec_deal_people WHERE person_id = $1 ORDER BY ord, deal_id", [id]);
        const deals = [];
        for (const d of dealIds) deals.push(await getDeal(sql, d.id));
        const companies = [];
        for (const c of row.companies) companies.push(await getCompany(sql, c.company_id));
        await o.audit.record(sql, [{
          action: "records.person_exported",
          actor: actorOf(principalOf(ctx)),
          target: { type: "person", id },
          details: { timeline_entries: String(timeline.length), notes: String(notes.length), tasks: String(tasks.length), deals: String(deals.length), companies: String(companies.length) },
        }]);
        return {
          person: toPerson({ ...row, custom: raw[0]?.custom ?? row.custom }),
          timeline,
          notes: notes.map(toNote),
          tasks: tasks.map(toTask),
          deals: deals.map(toDeal),
          companies: companies.map(toCompany),
          exportTime: timestampNow(),
        };
      });
      o.audit.afterCommit();
      return { response };
    },

    async erasePersonDB({ request: r }, ctx) {
      const id = idOf(r?.personId ?? "", "personId");
      const response = await tx(ctx, async (sql, a) => {
        mustBeAdmin(a, "erase a person");
        const { rows } = await sql.query<{ first_name: string; last_name: string; emails: string[]; phones: string[]; job_title: string; custom: JsonObject; lexemes: string[] }>(
          "SELECT first_name, last_name, emails, phones, job_title, custom, tsvector_to_array(search_tsv) AS lexemes FROM rec_people WHERE id = $1 FOR UPDATE",
          [id],
        );
        const person = rows[0];
        if (!person) throw new AppError("not_found", `no person ${id} in your company (an erased person is gone for good)`);
        const { rows: history } = await sql.query<{ c: { field: string; before: unknown; after: unknown } }>(
          "SELECT jsonb_array_elements(changes) AS c FROM rec_timeline WHERE object_type = 'person' AND record_id = $1",
          [id],
        );
        const words = personWords(person, history.map((h) => h.c));
        const notes = await linked(sql, "note", id);
        const tasks = await linked(sql, "task", id);

        // Notes and tasks linked to the person: their text, then their timelines and the person's own.
        // Their version moves once, with the link they lose below (eraseWithCascades).
        const { rowCount: notesScrubbed } = await sql.query(
          "UPDATE rec_notes SET text = crm_privacy_scrub(text, $2) WHERE id = ANY($1::uuid[]) AND crm_privacy_scrub(text, $2) <> text",
          [notes, words],
        );
        const { rowCount: tasksScrubbed } = await sql.query(
          "UPDATE rec_tasks SET title = crm_privacy_scrub(title, $2) WHERE id = ANY($1::uuid[]) AND crm_privacy_scrub(title, $2) <> title",
          [tasks, words],
        );
        const { rows: [entries] } = await sql.query<{ n: number }>("SELECT crm_privacy_erase_timeline($1, $2::uuid[], $3::text[]) AS n", [id, [...notes, ...tasks], words]);

        // The change events kept for WatchRecords' replay: the person's, its notes' and tasks', and
        // those the notes and tasks wrote on the other records they link (their text as summary).
        const { rows: events } = await sql.query<{ version: string; event: Buffer }>(
          `SELECT version::text AS version, event FROM rec_changes
           WHERE record_id = ANY($1::uuid[])
              OR record_id IN (SELECT record_id FROM rec_note_links WHERE note_id = ANY($2::uuid[])
                               UNION SELECT record_id FROM rec_task_links WHERE task_id = ANY($3::uuid[]))
           ORDER BY version`,
          [[id, ...notes, ...tasks], notes, tasks],
        );
        const rewritten = events
          .map((e) => ({ version: e.version, before: new Uint8Array(e.event), after: scrubChange(new Uint8Array(e.event), words, id) }))
          .filter((e) => Buffer.compare(Buffer.from(e.before), Buffer.from(e.after)) !== 0);
        if (rewritten.length) {
          await sql.query("SELECT crm_privacy_rewrite_changes($1::bigint[], $2::bytea[])", [rewritten.map((e) => e.version), rewritten.map((e) => Buffer.from(e.after))]);
        }

        // The links go with the row (ON DELETE CASCADE); count them first.
        const { rows: [links] } = await sql.query<{ n: string }>(
          `SELECT (SELECT count(*) FROM rec_person_companies WHERE person_id = $1) + (SELECT count(*) FROM rec_deal_people WHERE person_id = $1)
                + (SELECT count(*) FROM rec_note_links WHERE person_id = $1) + (SELECT count(*) FROM rec_task_links WHERE person_id = $1) AS n`,
          [id],
        );
        // As a purge: the deals naming the person and the notes and tasks linking them lose them,
        // each an UPDATED change with a new version (etag), its timeline entry and its event (the
        // ids in person_ids or links only, no personal data: not the scrubbed text's diff).
        await eraseWithCascades(sql, a, "person", id);
        await sql.query("SELECT crm_privacy_forget_words($1::text[])", [person.lexemes]);

        const counts = {
          timelineEntriesAnonymized: Number(entries?.n ?? 0),
          notesScrubbed: notesScrubbed ?? 0,
          tasksScrubbed: tasksScrubbed ?? 0,
          linksRemoved: Number(links?.n ?? 0),
        };
        await o.audit.record(sql, [{
          action: "records.person_erased",
          actor: actorOf(principalOf(ctx)),
          target: { type: "person", id },
          details: {
            timeline_entries_anonymized: String(counts.timelineEntriesAnonymized),
            notes_scrubbed: String(counts.notesScrubbed),
            tasks_scrubbed: String(counts.tasksScrubbed),
            links_removed: String(counts.linksRemoved),
            change_events_rewritten: String(rewritten.length),
          },
        }]);
        return counts;
      });
      o.audit.afterCommit();
      return { response };
    },
  };
}

/**
 * Notes: rec_notes and their links (links.ts). Members change the notes they wrote (the policies
 * say so on author_id; the same rule here to name it). Every change goes to the note's timeline
 * and, with the note as subject, to its linked records' timelines, in the same transaction; the
 * text appears there up to its first 500 characters.
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import { invalid, type Violation } from "@crm/kit";
import type { Note, NoteSchema } from "@crm/gen/crm/records/v1/note_pb";
import type { Sql } from "@crm/dbservice/db";
import { checkNote, excerpt, linkKindToProto, linksJson, withoutLinks, type LinkInput, type NoteInput } from "../src/rules.js";
import { diff, etagOf, updatable, type Snapshot } from "../src/rules.js";
import { isAdmin, type Acting, type ConstraintInfo } from "./acting.js";
import { linksExist, linksSql, writeLinkedTimelines, writeLinks } from "./links.js";
import type { ListSpec } from "./lists.js";
import { iso, lockForChange, notFound, purgeTime, ts, writeTimeline } from "./shared.js";

export interface NoteRow {
  id: string;
  text: string;
  author_id: string;
  links: LinkInput[];
  version: string;
  created_at: Date;
  updated_at: Date;
  deleted_at: Date | null;
}

const COLS = `n.id, n.text, n.author_id, n.version, n.created_at, n.updated_at, n.deleted_at, ${linksSql("note", "n")}`;
const SELECT = `SELECT ${COLS} FROM rec_notes n`;
const RULE = "members change the notes they wrote";

export const noteConstraints: Record<string, ConstraintInfo> = {
  rec_notes_text_check: { field: "note.text", reason: "invalid_argument", message: "must be 1..20000 characters" },
  rec_note_links_pkey: { field: "note.links", reason: "invalid_argument", message: "links the same record twice" },
};

export function toNote(r: NoteRow): MessageInitShape<typeof NoteSchema> {
  return {
    id: r.id,
    text: r.text,
    links: r.links.map((l) => ({ objectType: linkKindToProto[l.object_type], id: l.id })),
    authorId: r.author_id,
    etag: etagOf(r.version),
    createTime: ts(r.created_at),
    updateTime: ts(r.updated_at),
    deleteTime: ts(r.deleted_at),
    purgeTime: purgeTime(r.deleted_at),
  };
}

function snapshot(r: Pick<NoteRow, "text" | "links">): Snapshot {
  return { text: excerpt(r.text), links: linksJson(r.links) };
}

export const noteList: ListSpec = {
  kind: "note",
  from: "rec_notes n",
  alias: "n",
  select: COLS,
  columns: {
    id: { expr: "n.id", notNull: true },
    author_id: { expr: "n.author_id" },
    text: { expr: "n.text" },
    create_time: { expr: "n.created_at", notNull: true },
    update_time: { expr: "n.updated_at", notNull: true },
    delete_time: { expr: "n.deleted_at" },
    record_ids: { links: { from: "rec_note_links l", join: "l.note_id = n.id", elem: "l.record_id" } },
  },
};

export async function getNote(sql: Sql, id: string): Promise<NoteRow> {
  const { rows } = await sql.query<NoteRow>(`${SELECT} WHERE n.id = $1`, [id]);
  if (!rows[0]) throw notFound("note", id);
  return rows[0];
}

function checked(n: Note, paths: readonly string[]): NoteInput {
  const v: Violation[] = [];
  const input = checkNote(n, paths, v);
  if (v.length) throw invalid(v);
  return input;
}

export async function createNote(sql: Sql, a: Acting, n: Note): Promise<NoteRow> {
  const input = checked(n, updatable.note);
  await linksExist(sql, input.links, "note.links");
  const { rows } = await sql.query<{ id: string }>("INSERT INTO rec_notes (company_id, text, author_id) VALUES ($1, $2, $3) RETURNING id", [a.companyId, input.text, a.userId]);
  const id = rows[0]!.id;
  await writeLinks(sql, a, "note", id, input.links ?? [], true);
  const row = await getNote(sql, id);
  await writeTimeline(sql, a, "note", id, "created", diff({}, snapshot(row)));
  const summary = diff({}, withoutLinks(snapshot(row)));
  await writeLinkedTimelines(sql, a, { kind: "note", id }, [], row.links, "created", summary, summary);
  return row;
}

const mayChange = (a: Acting) => (row: NoteRow) => isAdmin(a) || row.author_id === a.userId;

export async function updateNote(sql: Sql, a: Acting, id: string, n: Note, paths: string[], etag: bigint | undefined): Promise<NoteRow> {
  const input = checked(n, paths);
  const before = await lockForChange<NoteRow>(sql, a, "note", SELECT, id, { etag, may: mayChange(a), rule: RULE });
  const next: NoteRow = { ...before, ...(input.text !== undefined && { text: input.text }), ...(input.links !== undefined && { links: input.links }) };
  // The diff shows excerpts: compare the whole text for "changed".
  const changes = diff(snapshot(before), snapshot(next));
  const textChanged = next.text !== before.text;
  if (textChanged && !changes.some((c) => c.field === "text")) changes.unshift({ field: "text", before: excerpt(before.text), after: excerpt(next.text) });
  if (changes.length === 0) return before;
  const linksChanged = changes.some((c) => c.field === "links");
  if (linksChanged) await linksExist(sql, next.links, "note.links");
  await sql.query("UPDATE rec_notes SET text = $2, version = version + 1, updated_at = now() WHERE id = $1", [id, next.text]);
  if (linksChanged) await writeLinks(sql, a, "note", id, next.links, false);
  await writeTimeline(sql, a, "note", id, "updated", changes);
  const after = await getNote(sql, id);
  await writeLinkedTimelines(sql, a, { kind: "note", id }, before.links, after.links, "updated", changes.filter((c) => c.field !== "links"), diff({}, withoutLinks(snapshot(after))));
  return after;
}

export async function trashNote(sql: Sql, a: Acting, id: string, trash: boolean, etag?: bigint): Promise<NoteRow> {
  const before = await lockForChange<NoteRow>(sql, a, "note", SELECT, id, { etag, trash: "allow", may: mayChange(a), rule: RULE });
  if (Boolean(before.deleted_at) === trash) return before;
  await sql.query(`UPDATE rec_notes SET deleted_at = ${trash ? "now()" : "NULL"}, version = version + 1, updated_at = now() WHERE id = $1`, [id]);
  const after = await getNote(sql, id);
  const changes = [{ field: "delete_time", before: iso(before.deleted_at), after: iso(after.deleted_at) }];
  const action = trash ? "deleted" : "restored";
  await writeTimeline(sql, a, "note", id, action, changes);
  await writeLinkedTimelines(sql, a, { kind: "note", id }, before.links, after.links, action, changes, []);
  return after;
}

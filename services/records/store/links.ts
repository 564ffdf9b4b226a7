/**
 * The links of tasks and notes to companies, people and deals (rec_task_links, rec_note_links),
 * and the entries a task or note writes on the timelines of the records it links, in the same
 * transaction as its change: CREATED/UPDATED/DELETED/RESTORED with the task or note as subject,
 * LINKED and UNLINKED when its links change.
 */
import { AppError, type Violation } from "@crm/kit";
import type { Sql } from "@crm/dbservice/db";
import type { LinkInput } from "../src/rules.js";
import type { FieldChangeJson } from "../src/rules.js";
import type { Acting } from "./acting.js";
import { tables, writeTimeline, type Subject, type TimelineAction } from "./shared.js";

/** The SELECT expression of a task's or note's links, in their order. */
export const linksSql = (kind: "task" | "note", alias: string) =>
  `coalesce((SELECT jsonb_agg(jsonb_build_object('object_type', l.object_type, 'id', l.record_id) ORDER BY l.ord)
             FROM rec_${kind}_links l WHERE l.${kind}_id = ${alias}.id), '[]'::jsonb) AS links`;

/** not_found naming each link to no live record of the tenant (another tenant's, purged, or in the trash). */
export async function linksExist(sql: Sql, links: readonly LinkInput[] | undefined, path: string): Promise<void> {
  if (!links?.length) return;
  const found = new Set<string>();
  for (const kind of ["company", "person", "deal"] as const) {
    const ids = links.filter((l) => l.object_type === kind).map((l) => l.id);
    if (!ids.length) continue;
    const { rows } = await sql.query<{ id: string }>(`SELECT id FROM ${tables[kind]} WHERE id = ANY($1::uuid[]) AND deleted_at IS NULL`, [ids]);
    for (const r of rows) found.add(r.id);
  }
  const v: Violation[] = [];
  links.forEach((l, i) => {
    if (!found.has(l.id)) v.push({ field: `${path}[${i}].id`, description: `names no ${l.object_type} of yours (or one in the trash): ${l.id}` });
  });
  if (v.length) throw new AppError("not_found", v.map((x) => `${x.field} ${x.description}`).join("; "), v);
}

/** Replaces the links of a task or note. */
export async function writeLinks(sql: Sql, a: Acting, kind: "task" | "note", id: string, links: readonly LinkInput[], creating: boolean): Promise<void> {
  if (!creating) await sql.query(`DELETE FROM rec_${kind}_links WHERE ${kind}_id = $1`, [id]);
  if (!links.length) return;
  await sql.query(
    `INSERT INTO rec_${kind}_links (company_id, ${kind}_id, object_type, record_id, ord)
     SELECT $1, $2, l.object_type, l.record_id, l.ord - 1 FROM unnest($3::text[], $4::uuid[]) WITH ORDINALITY AS l (object_type, record_id, ord)`,
    [a.companyId, id, links.map((l) => l.object_type), links.map((l) => l.id)],
  );
}

/**
 * The entries of one change of a task or note on its linked records: `action` with `changes` on
 * the records linked before and after, LINKED (with `summary`) on the newly linked ones,
 * UNLINKED on the ones no longer linked.
 */
export async function writeLinkedTimelines(
  sql: Sql,
  a: Acting,
  subject: Subject,
  before: readonly LinkInput[],
  after: readonly LinkInput[],
  action: TimelineAction,
  changes: FieldChangeJson[],
  summary: FieldChangeJson[],
): Promise<void> {
  const was = new Set(before.map((l) => l.id));
  const is = new Set(after.map((l) => l.id));
  for (const l of after) {
    if (!was.has(l.id)) await writeTimeline(sql, a, l.object_type, l.id, action === "created" ? "created" : "linked", summary, subject);
    else if (changes.length) await writeTimeline(sql, a, l.object_type, l.id, action, changes, subject);
  }
  for (const l of before) if (!is.has(l.id)) await writeTimeline(sql, a, l.object_type, l.id, "unlinked", summary, subject);
}

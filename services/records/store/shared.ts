/** What the stores of companies, people and deals share: locking a record to change it, etags, owners, the timeline. */
import type pg from "pg";
import { timestampFromDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { AppError, invalid } from "@crm/kit";
import type { Sql } from "@crm/dbservice/db";
import type { RecordSnapshot } from "@crm/gen/crm/records/v1/stream_pb";
import { TRASH_DAYS, etagOf, isId, normalId, parseEtag, type FieldChangeJson, type ObjectKind } from "../src/rules.js";
import { actorOfActing, mayEdit, type Acting } from "./acting.js";
import { membersEditAll } from "./permissions.js";

export const tables: Record<ObjectKind, string> = { company: "rec_companies", person: "rec_people", deal: "rec_deals", task: "rec_tasks", note: "rec_notes" };
const names: Record<ObjectKind, string> = { company: "company", person: "person", deal: "deal", task: "task", note: "note" };
/** The alias each store's SELECT gives its table. */
const aliases: Record<ObjectKind, string> = { company: "c", person: "p", deal: "d", task: "t", note: "n" };

/** The id a request names, or invalid_argument for `field`. */
export function idOf(value: string, field = "id"): string {
  const id = normalId(value);
  if (!isId(id)) throw invalid([{ field, description: id === "" ? "is required: the record's id" : `must be an id (UUID), got ${JSON.stringify(value.slice(0, 80))}` }]);
  return id;
}

export function etagArg(value: string, field = "etag"): bigint | undefined {
  const v = parseEtag(value);
  if (v === "bad") throw invalid([{ field, description: "is not an etag this service returned: read the record again and send its etag" }]);
  return v;
}

export const notFound = (kind: ObjectKind, id: string) => new AppError("not_found", `no ${names[kind]} ${id} in your company`);

interface Owned {
  version: string;
  deleted_at: Date | null;
}

/**
 * The record, locked for the change (FOR UPDATE OF its alias): not_found when the tenant has no
 * such record, permission_denied when the caller may not change it (row-level security hides it
 * from FOR UPDATE then), aborted for a stale etag, failed_precondition in the trash (unless
 * `trash` allows it).
 */
export async function lockForChange<R extends Owned>(
  sql: Sql,
  a: Acting,
  kind: ObjectKind,
  select: string,
  id: string,
  o: { etag?: bigint | undefined; trash?: "refuse" | "allow"; may?: (row: R) => boolean; rule?: string } = {},
): Promise<R> {
  const { rows } = await sql.query<R>(lockingSelect(kind, select, "$1"), [id]);
  return checkLocked(sql, a, kind, rows[0], id, o);
}

/** `select` for the record whose id is the SQL `id` (a parameter or a literal), locked for the change (FOR UPDATE OF its alias). */
export const lockingSelect = (kind: ObjectKind, select: string, id: string) => `${select} WHERE ${aliases[kind]}.id = ${id} FOR UPDATE OF ${aliases[kind]}`;

/** lockForChange's checks of the row `lockingSelect` gave (undefined: none), for a caller that ran it in a batch. */
export async function checkLocked<R extends Owned>(
  sql: Sql,
  a: Acting,
  kind: ObjectKind,
  row: R | undefined,
  id: string,
  o: { etag?: bigint | undefined; trash?: "refuse" | "allow"; may?: (row: R) => boolean; rule?: string } = {},
): Promise<R> {
  const rule = o.rule ?? "members change only the records they own or are assigned";
  if (!row) {
    const { rowCount } = await sql.query(`SELECT 1 FROM ${tables[kind]} WHERE id = $1`, [id]);
    if (!rowCount) throw notFound(kind, id);
    throw new AppError("permission_denied", `you may not change ${names[kind]} ${id}: ${rule} (ask its owner or an admin)`);
  }
  // The rule, or an admin's grant to members for the whole object type (the policies' crm_may_edit_kind).
  const owned = row as R & { owner_id: string; assignee_id?: string | null };
  const may = (o.may ? o.may(row) : mayEdit(a, owned.owner_id) || owned.assignee_id === a.userId) || (await membersEditAll(sql, a, kind));
  if (!may) throw new AppError("permission_denied", `you may not change ${names[kind]} ${id}: ${rule}`);
  if (o.etag !== undefined && BigInt(row.version) !== o.etag) {
    throw new AppError("aborted", `${names[kind]} ${id} changed since you read it (etag ${etagOf(o.etag)}, now ${row.version}): read it again and retry`);
  }
  if ((o.trash ?? "refuse") === "refuse" && row.deleted_at) {
    throw new AppError("failed_precondition", `${names[kind]} ${id} is in the trash: undelete it first`);
  }
  return row;
}

/** The owner of a new or changed record: the caller by default; a member may name only themself; an active user of the tenant. */
export async function ownerFor(sql: Sql, a: Acting, requested: string | null | undefined, field: string): Promise<string> {
  const owner = requested ?? a.userId;
  if (owner !== a.userId) {
    if (!(a.role === "owner" || a.role === "admin")) {
      throw new AppError("permission_denied", "members own what they create: leave ownerId empty (owners and admins may hand records to others)", [{ field, description: "may only be yourself for a member" }]);
    }
    const { rowCount } = await sql.query("SELECT 1 FROM users WHERE id = $1 AND status = 'active'", [owner]);
    if (!rowCount) throw new AppError("not_found", `no active user ${owner} in your company`, [{ field, description: "names no active user of your company" }]);
  }
  return owner;
}

/**
 * The assignee of a new or changed company or deal (null: none): an active user of the tenant.
 * Changing it is for owners and admins, the record's owner, or a member where an admin allows the
 * whole type; an assignee may not hand the record on (the policies' WITH CHECK says the same).
 */
export async function assigneeFor(sql: Sql, a: Acting, requested: string | null, before: { owner_id: string; assignee_id: string | null } | null, field: string): Promise<string | null> {
  if (before && requested === before.assignee_id) return requested;
  if (before && a.role === "member" && before.owner_id !== a.userId && !(await membersEditAll(sql, a, field.startsWith("deal") ? "deal" : "company"))) {
    throw new AppError("permission_denied", "an assignee may not hand the record on: ask its owner or an admin", [{ field, description: "may be changed by the record's owner, owners and admins" }]);
  }
  if (requested === null) return null;
  const { rowCount } = await sql.query("SELECT 1 FROM users WHERE id = $1 AND status = 'active'", [requested]);
  if (!rowCount) throw new AppError("not_found", `no active user ${requested} in your company`, [{ field, description: "names no active user of your company" }]);
  return requested;
}

export type TimelineAction = "created" | "updated" | "deleted" | "restored" | "stage_changed" | "linked" | "unlinked";

/** The task or note an entry on a linked record is about. */
export interface Subject {
  kind: "task" | "note";
  id: string;
}

/** One timeline entry, in the caller's transaction, under the caller's name. */
export async function writeTimeline(sql: Sql, a: Acting, kind: ObjectKind, recordId: string, action: TimelineAction, changes: FieldChangeJson[], subject?: Subject): Promise<void> {
  const actor = actorOfActing(a);
  await sql.query(
    "INSERT INTO rec_timeline (company_id, object_type, record_id, action, actor_type, actor_id, actor_name, changes, subject_type, subject_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    [a.companyId, kind, recordId, action, actor.type, actor.id, actor.name, JSON.stringify(changes), subject?.kind ?? null, subject?.id ?? null],
  );
  // Its event: versioned and published with the commit (changes.ts).
  a.pending.push({ kind, recordId, action, changes, subject });
}

/**
 * Like writeTimeline, for a write that has the record as it is now (`record`, the row its write
 * statement returned): the timeline entry is not written here but with the change's version, in
 * the statement sent with the COMMIT (changes.ts publishChanges), so the write costs no round trip
 * for it and its event no read of the record. Same transaction, same entry.
 */
export function noteChange(a: Acting, kind: ObjectKind, recordId: string, action: TimelineAction, changes: FieldChangeJson[], record: RecordSnapshot): void {
  a.pending.push({ kind, recordId, action, changes, record, timeline: actorOfActing(a) });
}

/** `v` as an SQL literal of a statement sent with others in one round trip (`batch`): NULL, a number, or a quoted string. */
export function lit(sql: Sql, v: string | number | bigint | boolean | null | undefined): string {
  if (v === null || v === undefined) return "NULL";
  if (typeof v === "number" || typeof v === "bigint") return String(v);
  if (typeof v === "boolean") return v ? "true" : "false";
  return sql.escapeLiteral(v);
}

/**
 * Statements run in ONE round trip, in order (the simple query protocol: each statement sees what
 * the ones before it wrote, with a fresh snapshot after a lock, as separate queries would), values
 * spliced in with `lit`. Returns each statement's result.
 */
export async function batch(sql: Sql, statements: string[]): Promise<pg.QueryResult[]> {
  const r = (await sql.query(statements.join(";\n"))) as unknown as pg.QueryResult | pg.QueryResult[];
  return Array.isArray(r) ? r : [r];
}

export const ts = (d: Date | null | undefined): Timestamp | undefined => (d ? timestampFromDate(d) : undefined);
export const purgeTime = (deleted: Date | null) => (deleted ? timestampFromDate(new Date(deleted.getTime() + TRASH_DAYS * 86_400_000)) : undefined);
export const iso = (d: Date | null | undefined) => (d ? d.toISOString() : null);

/**
 * Purges a record in the trash: owners and admins only (the DELETE policy says so too); its timeline goes with it.
 * The records that lose a link to it change too (eraseWithCascades).
 */
export async function purge(sql: Sql, a: Acting, kind: ObjectKind, id: string): Promise<void> {
  if (!(a.role === "owner" || a.role === "admin")) throw new AppError("permission_denied", `only owners and admins may purge; a member may move a ${names[kind]} they own to the trash`);
  const { rows } = await sql.query<{ deleted_at: Date | null }>(`SELECT deleted_at FROM ${tables[kind]} WHERE id = $1 FOR UPDATE`, [id]);
  if (!rows[0]) throw notFound(kind, id);
  if (!rows[0].deleted_at) throw new AppError("failed_precondition", `${names[kind]} ${id} is not in the trash: delete it first, then purge it`);
  await eraseWithCascades(sql, a, kind, id);
  await sql.query("DELETE FROM rec_timeline WHERE object_type = $1 AND record_id = $2", [kind, id]);
  // A task's or note's entries on the records it linked go with it.
  if (kind === "task" || kind === "note") await sql.query("DELETE FROM rec_timeline WHERE subject_id = $1", [id]);
}

/**
 * Deletes a record for good (a purge, a person's erasure: privacy.ts) and notes it PURGED. The
 * records that lose a link to it (a company's deals and people, a person's deals, and the tasks
 * and notes linking any of them: migration 340) are read in the DELETE's own snapshot, before the
 * foreign keys' actions (migration 300), and change like any change: each is noted UPDATED with
 * its diff (its timeline entry and event with the COMMIT, as if the caller had unlinked it) and
 * gets a new version (etag) and update time in the same statement, as an update gives (the job's
 * crm_purge_trash, migrations 330 and 340, does the same), so a client holding the old etag is
 * refused (aborted) and caches reread it.
 */
export async function eraseWithCascades(sql: Sql, a: Acting, kind: ObjectKind, id: string): Promise<void> {
  const cascades = await sql.query<{ object_type: ObjectKind; id: string; changes: FieldChangeJson[] }>(
    `WITH gone AS (DELETE FROM ${tables[kind]} WHERE id = $1),
     cascades AS (SELECT * FROM crm_purge_cascades($2, ARRAY[$1]::uuid[])),
     deals_bumped AS (UPDATE rec_deals d SET version = d.version + 1, updated_at = now() FROM cascades c WHERE c.object_type = 'deal' AND d.id = c.id),
     people_bumped AS (UPDATE rec_people p SET version = p.version + 1, updated_at = now() FROM cascades c WHERE c.object_type = 'person' AND p.id = c.id),
     tasks_bumped AS (UPDATE rec_tasks t SET version = t.version + 1, updated_at = now() FROM cascades c WHERE c.object_type = 'task' AND t.id = c.id),
     notes_bumped AS (UPDATE rec_notes n SET version = n.version + 1, updated_at = now() FROM cascades c WHERE c.object_type = 'note' AND n.id = c.id)
     SELECT c.object_type, c.id, c.changes FROM cascades c`,
    [id, kind],
  );
  a.pending.push({ kind, recordId: id, action: "purged", changes: [] });
  const actor = actorOfActing(a);
  for (const c of cascades.rows) a.pending.push({ kind: c.object_type, recordId: c.id, action: "updated", changes: c.changes, timeline: actor });
}

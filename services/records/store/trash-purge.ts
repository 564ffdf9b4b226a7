/**
 * The trash's 30-day purge (PurgeTrashDB, called by the records service's job): ONE transaction
 * with no tenant erases, through the SECURITY DEFINER function crm_purge_trash (migrations 112,
 * 300, 330, 340), what went to the trash over TRASH_DAYS ago in every tenant, and learns from it
 * what else changed (a purged company's deals and people, a purged person's deals, and the tasks
 * and notes linking a purged record lose their link; their versions move in the function). Those
 * are changes like a user's purge makes: each gets its tenant's next version and its event
 * (changes.ts publishChanges), with the actor ACTOR_TYPE_SYSTEM, in the same transaction.
 *
 * publishChanges writes under the policies of the tenant it names, so the transaction takes each
 * tenant in turn: `app.company_id` is set to it and `app.role` to "system" — a role no user has,
 * which the policies let read the tenant's records and write its versions and changes
 * (`crm_role() IS NOT NULL`) but change nothing else (every write policy wants owner, admin or
 * member). Round trips: the purge; per tenant with changed (not only purged) records, one to read
 * them; the versions and events of every tenant with the COMMIT. Never one per record.
 */
import type { Db, Sql } from "@crm/dbservice/db";
import { TRASH_DAYS, type FieldChangeJson, type ObjectKind } from "../src/rules.js";
import { publishChanges, type PendingChange, type RecordReaders } from "./changes.js";

interface PurgedRow {
  object_type: ObjectKind;
  id: string;
  company_id: string;
  action: "purged" | "updated";
  changes: FieldChangeJson[];
  at: Date;
}

/**
 * `later`'s diffs after `earlier`'s, into `earlier`: a field both changed (a task's or note's
 * `links`, losing a deal and then a company in one call) is one diff, from the first before to
 * the last after, as one update of both would write it.
 */
function mergeDiffs(earlier: FieldChangeJson[], later: readonly FieldChangeJson[]): void {
  for (const c of later) {
    const i = earlier.findIndex((e) => e.field === c.field);
    if (i < 0) earlier.push(c);
    else earlier[i] = { field: c.field, before: earlier[i]!.before, after: c.after };
  }
}

/** The actor the job's events and timeline entries name. */
export const TRASH_PURGE_ACTOR = { type: "system", id: "", name: "trash purge" } as const;

const asTenant = (sql: Sql, companyId: string) =>
  `SELECT set_config('app.company_id', ${sql.escapeLiteral(companyId)}, true), set_config('app.role', 'system', true)`;

/**
 * Erases up to `limit` records of each kind; answers how many were erased and whether some kind
 * came back full (call again). `afterOutbox` wakes the relay after a commit that wrote events.
 */
export async function purgeTrash(db: Db, readers: RecordReaders, limit: number, afterOutbox?: () => void): Promise<{ purged: number; more: boolean }> {
  let events = 0;
  const result = await db.system(async (sql) => {
    const { rows } = await sql.query<PurgedRow>(
      "SELECT p.object_type, p.id, p.company_id, p.action, p.changes, now() AS at FROM crm_purge_trash(make_interval(days => $1), $2) p",
      [TRASH_DAYS, limit],
    );
    const perKind = new Map<string, number>();
    // Per tenant, in the order the function erased them; a record changed by several purges of
    // this call (a deal losing its company and a person) is ONE change with every field's diff.
    const tenants = new Map<string, Map<string, PendingChange>>();
    for (const r of rows) {
      if (r.action === "purged") perKind.set(r.object_type, (perKind.get(r.object_type) ?? 0) + 1);
      const changes = tenants.get(r.company_id) ?? new Map<string, PendingChange>();
      tenants.set(r.company_id, changes);
      const key = `${r.object_type}:${r.id}`;
      const seen = changes.get(key);
      if (seen && seen.action === "updated" && r.action === "updated") mergeDiffs(seen.changes, r.changes);
      else changes.set(seen ? `${key}:${changes.size}` : key, { kind: r.object_type, recordId: r.id, action: r.action, changes: [...r.changes] });
    }
    // Tenants in one order (their ids): the version rows are locked with the COMMIT in this order,
    // so two replicas' jobs touching the same tenants cannot deadlock on them.
    for (const [companyId, changes] of [...tenants].sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0))) {
      const pending = [...changes.values()];
      // The changed records are read as this tenant (publishChanges reads them); the versions are
      // taken with the COMMIT, where the same setting must come first.
      if (pending.some((p) => p.action !== "purged")) await sql.query(asTenant(sql, companyId));
      db.atCommit(sql, asTenant(sql, companyId));
      events += await publishChanges(db, sql, { companyId, userId: "", pending, actor: TRASH_PURGE_ACTOR }, readers, rows[0]!.at);
    }
    return { purged: [...perKind.values()].reduce((n, k) => n + k, 0), more: [...perKind.values()].some((n) => n >= limit) };
  });
  if (events) afterOutbox?.();
  return result;
}

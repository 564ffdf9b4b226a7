/**
 * Record changes as events (crm.records.v1.RecordChange). Whatever changes a record notes it on
 * the transaction's Acting (`a.pending`, next to its timeline entry); at the end of the
 * transaction `publishChanges`:
 *
 * 1. takes each record as it is now: the one the writer noted with its change (the row its write
 *    statement returned), else read (one query per object type, before any lock), and rebuilds its
 *    state before the change from the change's field diff;
 * 2. builds the events in TypeScript (@crm/contracts/events `unversionedRecordChange`), without
 *    their versions, which are not known yet;
 * 3. hands ONE statement to db.atCommit, sent with the COMMIT in the transaction's last round trip:
 *    it takes the tenant's next versions with one row update (rec_versions, INSERT ... ON
 *    CONFLICT) and writes the events into rec_changes (WatchRecords' replay) and the outbox, each
 *    with its version's bytes put before it (`crm_pb_int64_field`). That row's lock orders the
 *    tenant's writers until COMMIT, so versions are gap-free in commit order; it is held for that
 *    one round trip only (the statement, the commit and its WAL flush), not across a round trip
 *    to this process.
 */
import { create, fromJson, toJson, type JsonObject, type JsonValue, type MessageInitShape } from "@bufbuild/protobuf";
import { ValueSchema, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { RECORD_CHANGE_VERSION_FIELD, unversionedRecordChange } from "@crm/contracts/events";
import { ActorType, ObjectType } from "@crm/gen/crm/records/v1/common_pb";
import { CompanySchema } from "@crm/gen/crm/records/v1/company_pb";
import { DealSchema } from "@crm/gen/crm/records/v1/deal_pb";
import { NoteSchema } from "@crm/gen/crm/records/v1/note_pb";
import { PersonSchema } from "@crm/gen/crm/records/v1/person_pb";
import { TaskSchema } from "@crm/gen/crm/records/v1/task_pb";
import { ChangeAction, RecordSnapshotSchema, type RecordSnapshot } from "@crm/gen/crm/records/v1/stream_pb";
import { OUTBOX_COLUMNS, outboxValues, type Db, type Sql } from "@crm/dbservice/db";
import type { FieldChangeJson, ObjectKind } from "../src/rules.js";

/** A change of a record in the current transaction, versioned and published at its end. */
export interface PendingChange {
  kind: ObjectKind;
  recordId: string;
  action: "created" | "updated" | "deleted" | "restored" | "stage_changed" | "purged" | "linked" | "unlinked";
  /** As in the timeline: proto field names, JSON values. */
  changes: FieldChangeJson[];
  /** The task or note a linked / unlinked entry is about (the record's own fields did not change). */
  subject?: { kind: string; id: string } | undefined;
  /** The record after the change when the caller has it; else it is read at the end (none for a purged one). */
  record?: RecordSnapshot | undefined;
  /**
   * Set when the change's timeline entry is still to be written (shared.ts noteChange): who it
   * names. publishChanges writes it with the COMMIT, before the versions are taken.
   */
  timeline?: { type: "user" | "api_key" | "import"; id: string; name: string } | undefined;
}

/** Who changes what: the transaction's tenant, acting user and the changes noted so far (acting.ts Acting). */
export interface ChangeContext {
  companyId: string;
  userId: string;
  pending: PendingChange[];
  /**
   * Who the events name (unset: the user): an API key or an import job (acting.ts), or the system
   * itself (id empty: the trash's 30-day purge, trash-purge.ts).
   */
  actor?: { type: "user" | "api_key" | "import" | "system"; id: string; name: string } | undefined;
}

const actorTypes = { user: ActorType.USER, api_key: ActorType.API_KEY, import: ActorType.IMPORT, system: ActorType.SYSTEM } as const;

/** Reads records of one type as they are now, by id (missing ids: purged meanwhile). */
export type RecordReader = (sql: Sql, ids: string[]) => Promise<Map<string, RecordSnapshot>>;
export type RecordReaders = Partial<Record<ObjectKind, RecordReader>>;

const actions: Record<PendingChange["action"], ChangeAction> = {
  created: ChangeAction.CREATED,
  updated: ChangeAction.UPDATED,
  deleted: ChangeAction.DELETED,
  restored: ChangeAction.RESTORED,
  stage_changed: ChangeAction.STAGE_CHANGED,
  purged: ChangeAction.PURGED,
  linked: ChangeAction.LINKED,
  unlinked: ChangeAction.UNLINKED,
};

const objectTypes: Record<string, ObjectType> = { company: ObjectType.COMPANY, person: ObjectType.PERSON, deal: ObjectType.DEAL, task: ObjectType.TASK, note: ObjectType.NOTE };

const schemas = { company: CompanySchema, person: PersonSchema, deal: DealSchema, task: TaskSchema, note: NoteSchema } as const;
type SnapshotCase = keyof typeof schemas;

/** A snapshot of one record (the readers' building block). */
export function snapshotOf<K extends SnapshotCase>(kind: K, value: MessageInitShape<(typeof schemas)[K]>): RecordSnapshot {
  return create(RecordSnapshotSchema, { record: { case: kind, value } as MessageInitShape<typeof RecordSnapshotSchema>["record"] });
}

/**
 * The record as it was before `changes` (timeline diffs: proto field names, JSON values, "custom.<key>"
 * for custom fields), rebuilt from its state after them. Output-only bookkeeping (etag, update_time)
 * stays as after. Undefined when it cannot be rebuilt.
 */
export function previousOf(after: RecordSnapshot, changes: readonly FieldChangeJson[]): RecordSnapshot | undefined {
  const r = after.record;
  if (r.case === undefined) return undefined;
  const schema = schemas[r.case];
  const names = new Set(schema.fields.map((f) => f.name));
  const json = toJson(schema, r.value as never, { useProtoFieldName: true }) as JsonObject;
  for (const c of changes) {
    const custom = /^custom\.(.+)$/.exec(c.field);
    if (custom) {
      const values = { ...((json.custom as JsonObject | undefined) ?? {}) };
      if (c.before === null) delete values[custom[1]!];
      else values[custom[1]!] = c.before as JsonValue;
      json.custom = values;
      continue;
    }
    if (!names.has(c.field)) continue;
    let v = c.before as JsonValue;
    if (r.case === "deal" && c.field === "status" && typeof v === "string") v = `DEAL_STATUS_${v.toUpperCase()}`;
    if (v === null) delete json[c.field];
    else json[c.field] = v;
  }
  try {
    return create(RecordSnapshotSchema, { record: { case: r.case, value: fromJson(schema, json, { ignoreUnknownFields: true }) } as RecordSnapshot["record"] });
  } catch {
    return undefined;
  }
}

const hex = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("hex");
/**
 * `b` as a bytea literal: what sql.escapeLiteral makes of its \x… text (E'\\x…'), built at
 * once. escapeLiteral appends one character at a time: for an import's 5,000 events of ~500 bytes
 * that (and joining the pieces) took 1.5–2 s of string building and GC per batch on a loaded box,
 * most of the app's CPU per imported row; hex digits need no quoting.
 */
const byteaLiteral = (b: Uint8Array) => ` E'\\\\x${hex(b)}'`;

/**
 * Versions and publishes the changes noted in this transaction (see the file comment): the
 * statement goes with the COMMIT. `at`: the transaction's time (db.tenant's start), read when not given. Returns how many: the caller wakes the outbox relay after the
 * commit when there were any.
 */
export async function publishChanges(db: Db, sql: Sql, a: ChangeContext, readers: RecordReaders, at?: Date): Promise<number> {
  const pending = a.pending.splice(0);
  if (pending.length === 0) return 0;

  // The records as they are now, for the changes whose writer did not note it.
  const now = new Map<string, RecordSnapshot>();
  const byKind = new Map<ObjectKind, Set<string>>();
  for (const p of pending) if (!p.record && p.action !== "purged" && readers[p.kind]) byKind.set(p.kind, (byKind.get(p.kind) ?? new Set()).add(p.recordId));
  for (const [kind, ids] of byKind) for (const [id, snap] of await readers[kind]!(sql, [...ids])) now.set(`${kind}:${id}`, snap);

  // The transaction's time (now()): db.tenant's start gives it; else it is read.
  const changeTime = timestampFromDate(at ?? (await sql.query<{ at: Date }>("SELECT now() AS at")).rows[0]!.at);
  const lit = (v: string) => sql.escapeLiteral(v);
  const company = lit(a.companyId);
  const rows = pending.map((p, i) => {
    const record = p.record ?? now.get(`${p.kind}:${p.recordId}`);
    const previous = p.action === "created" || !record ? undefined : p.subject ? record : previousOf(record, p.changes);
    const e = unversionedRecordChange({
      tenantId: a.companyId,
      objectType: objectTypes[p.kind] ?? ObjectType.UNSPECIFIED,
      recordId: p.recordId,
      action: actions[p.action],
      actor: a.actor ? { type: actorTypes[a.actor.type], id: a.actor.id, name: a.actor.name } : { type: ActorType.USER, id: a.userId },
      changes: p.changes.map((c) => ({ field: c.field, before: fromJson(ValueSchema, c.before as JsonValue), after: fromJson(ValueSchema, c.after as JsonValue) })),
      record,
      previous,
      changeTime,
    });
    return { sql: `(${i + 1}, ${lit(p.kind)}, ${lit(p.recordId)}::uuid, ${byteaLiteral(e.payload)}::bytea)`, e };
  });
  // Timeline entries not written yet (shared.ts noteChange): a statement of their own before the
  // versions', in the same round trip, so the version row is not locked while they are written.
  const entries = pending.filter((p) => p.timeline);
  if (entries.length) {
    const row = (p: PendingChange) =>
      `(${company}::uuid, ${lit(p.kind)}, ${lit(p.recordId)}::uuid, ${lit(p.action)}, ${lit(p.timeline!.type)}, ${lit(p.timeline!.id)}::uuid, ${lit(p.timeline!.name)}, ${lit(JSON.stringify(p.changes))}::jsonb)`;
    db.atCommit(sql, `INSERT INTO rec_timeline (company_id, object_type, record_id, action, actor_type, actor_id, actor_name, changes) VALUES ${entries.map(row).join(", ")}`);
  }
  // Every event of one transaction has the same exchange, routing key, type and headers.
  const o = outboxValues({ ...rows[0]!.e, companyId: a.companyId });
  db.atCommit(
    sql,
    `WITH v AS (
       INSERT INTO rec_versions AS v (company_id, version) VALUES (${company}, ${pending.length}) ON CONFLICT (company_id) DO UPDATE SET version = v.version + excluded.version
       RETURNING v.version - ${pending.length} AS base
     ), e (n, kind, record_id, body) AS (VALUES ${rows.map((r) => r.sql).join(", ")}
     ), c AS (
       INSERT INTO rec_changes (company_id, version, object_type, record_id, event)
       SELECT ${company}, v.base + e.n, e.kind, e.record_id, crm_pb_int64_field(${RECORD_CHANGE_VERSION_FIELD}, v.base + e.n) || e.body FROM v, e
     )
     INSERT INTO outbox (${OUTBOX_COLUMNS})
     SELECT ${lit(o.exchange)}, ${lit(o.routingKey)}, crm_pb_int64_field(${RECORD_CHANGE_VERSION_FIELD}, v.base + e.n) || e.body, ${lit(o.contentType)},
            ${company} || ':' || (v.base + e.n), ${lit(o.headers)}::jsonb, ${company}::uuid
     FROM v, e ORDER BY e.n`,
  );
  return pending.length;
}

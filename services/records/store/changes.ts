/**
 * Record changes as events (crm.records.v1.RecordChange). Whatever changes a record notes it on
 * the transaction's Acting (`a.pending`, next to its timeline entry); at the end of the
 * transaction `publishChanges`:
 *
 * 1. reads the records as they are now (one query per object type) and rebuilds each one's state
 *    before the change from the change's field diff;
 * 2. takes the tenant's next versions with ONE row update (rec_versions, INSERT ... ON CONFLICT),
 *    as late as possible: that row's lock orders the tenant's writers until COMMIT;
 * 3. builds the events in TypeScript (@crm/contracts/events) and hands their INSERT into
 *    rec_changes (the replay of WatchRecords) and into the outbox to db.atCommit, so they go with
 *    the COMMIT in one round trip: the lock is held for two round trips and the commit.
 */
import { create, fromJson, toJson, type JsonObject, type JsonValue, type MessageInitShape } from "@bufbuild/protobuf";
import { ValueSchema, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { recordChangeEvent } from "@crm/contracts/events";
import { ActorType, ObjectType } from "@crm/gen/crm/records/v1/common_pb";
import { CompanySchema } from "@crm/gen/crm/records/v1/company_pb";
import { DealSchema } from "@crm/gen/crm/records/v1/deal_pb";
import { PersonSchema } from "@crm/gen/crm/records/v1/person_pb";
import { ChangeAction, RecordSnapshotSchema, type RecordSnapshot } from "@crm/gen/crm/records/v1/stream_pb";
import type { Db, Sql } from "@crm/dbservice/db";
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
}

/** Who changes what: the transaction's tenant, acting user and the changes noted so far (acting.ts Acting). */
export interface ChangeContext {
  companyId: string;
  userId: string;
  pending: PendingChange[];
  /** Who the events name (unset: the user): an API key or an import job (acting.ts). */
  actor?: { type: "user" | "api_key" | "import"; id: string; name: string } | undefined;
}

const actorTypes = { user: ActorType.USER, api_key: ActorType.API_KEY, import: ActorType.IMPORT } as const;

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

const schemas = { company: CompanySchema, person: PersonSchema, deal: DealSchema } as const;
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
 * Versions and publishes the changes noted in this transaction (see the file comment). Returns
 * how many: the caller wakes the outbox relay after the commit when there were any.
 */
export async function publishChanges(db: Db, sql: Sql, a: ChangeContext, readers: RecordReaders): Promise<number> {
  const pending = a.pending.splice(0);
  if (pending.length === 0) return 0;

  // The records as they are now (before the version lock).
  const now = new Map<string, RecordSnapshot>();
  const byKind = new Map<ObjectKind, Set<string>>();
  for (const p of pending) if (p.action !== "purged" && readers[p.kind]) byKind.set(p.kind, (byKind.get(p.kind) ?? new Set()).add(p.recordId));
  for (const [kind, ids] of byKind) for (const [id, snap] of await readers[kind]!(sql, [...ids])) now.set(`${kind}:${id}`, snap);

  // The tenant's versions: one row, one update, held until COMMIT.
  const { rows } = await sql.query<{ version: string; at: Date }>(
    `INSERT INTO rec_versions AS v (company_id, version) VALUES ($1, $2) ON CONFLICT (company_id) DO UPDATE SET version = v.version + excluded.version
     RETURNING v.version, now() AS at`,
    [a.companyId, pending.length],
  );
  const last = BigInt(rows[0]!.version);
  const at = timestampFromDate(rows[0]!.at);
  const first = last - BigInt(pending.length) + 1n;

  const events = pending.map((p, i) => {
    const record = p.record ?? now.get(`${p.kind}:${p.recordId}`);
    const previous = p.action === "created" || !record ? undefined : p.subject ? record : previousOf(record, p.changes);
    return recordChangeEvent({
      version: first + BigInt(i),
      tenantId: a.companyId,
      objectType: objectTypes[p.kind] ?? ObjectType.UNSPECIFIED,
      recordId: p.recordId,
      action: actions[p.action],
      actor: a.actor ? { type: actorTypes[a.actor.type], id: a.actor.id, name: a.actor.name } : { type: ActorType.USER, id: a.userId },
      changes: p.changes.map((c) => ({ field: c.field, before: fromJson(ValueSchema, c.before as JsonValue), after: fromJson(ValueSchema, c.after as JsonValue) })),
      record,
      previous,
      changeTime: at,
    });
  });
  const lit = (v: string) => sql.escapeLiteral(v);
  const values = events.map((e, i) => `(${lit(a.companyId)}, ${first + BigInt(i)}, ${lit(pending[i]!.kind)}, ${lit(pending[i]!.recordId)}, ${lit(`\\x${hex(e.payload)}`)})`);
  db.atCommit(
    sql,
    `INSERT INTO rec_changes (company_id, version, object_type, record_id, event) VALUES ${values.join(", ")}`,
    events.map((e) => ({ ...e, companyId: a.companyId })),
  );
  return pending.length;
}

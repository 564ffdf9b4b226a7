/** The timeline: rec_timeline, read newest first with a cursor. Entries are written by shared.ts writeTimeline, in the change's transaction. */
import type { MessageInitShape } from "@bufbuild/protobuf";
import { fromJson, type JsonValue } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { AppError, invalid, type Violation } from "@crm/kit";
import { ActorType, ObjectType } from "@crm/gen/crm/records/v1/common_pb";
import { TimelineAction, type TimelineEntrySchema } from "@crm/gen/crm/records/v1/timeline_pb";
import type { Sql } from "@crm/dbservice/db";
import { decodePageToken, encodePageToken, pageSizeOf, queryFingerprint, type FieldChangeJson, type ObjectKind } from "../src/rules.js";
import { tables } from "./shared.js";
import { ts } from "./shared.js";

interface EntryRow {
  id: string;
  object_type: ObjectKind;
  record_id: string;
  action: keyof typeof actions;
  actor_type: keyof typeof actors;
  actor_id: string | null;
  actor_name: string;
  changes: FieldChangeJson[];
  created_at: Date;
  subject_type: "task" | "note" | null;
  subject_id: string | null;
}

const actions = {
  created: TimelineAction.CREATED,
  updated: TimelineAction.UPDATED,
  deleted: TimelineAction.DELETED,
  restored: TimelineAction.RESTORED,
  stage_changed: TimelineAction.STAGE_CHANGED,
  linked: TimelineAction.LINKED,
  unlinked: TimelineAction.UNLINKED,
} as const;
const actors = { user: ActorType.USER, api_key: ActorType.API_KEY, import: ActorType.IMPORT, system: ActorType.SYSTEM } as const;
export const objectKinds: Partial<Record<ObjectType, ObjectKind>> = {
  [ObjectType.COMPANY]: "company",
  [ObjectType.PERSON]: "person",
  [ObjectType.DEAL]: "deal",
  [ObjectType.TASK]: "task",
  [ObjectType.NOTE]: "note",
};
export const kindToProto: Record<ObjectKind, ObjectType> = { company: ObjectType.COMPANY, person: ObjectType.PERSON, deal: ObjectType.DEAL, task: ObjectType.TASK, note: ObjectType.NOTE };

function toEntry(r: EntryRow): MessageInitShape<typeof TimelineEntrySchema> {
  return {
    id: r.id,
    objectType: kindToProto[r.object_type],
    recordId: r.record_id,
    action: actions[r.action],
    actor: { type: actors[r.actor_type], id: r.actor_id ?? "", name: r.actor_name || (r.actor_type === "import" && r.actor_id ? `import ${r.actor_id}` : "") },
    changes: r.changes.map((c) => ({ field: c.field, before: fromJson(ValueSchema, c.before as JsonValue), after: fromJson(ValueSchema, c.after as JsonValue) })),
    createTime: ts(r.created_at),
    subject: r.subject_type && r.subject_id ? { objectType: kindToProto[r.subject_type], id: r.subject_id } : undefined,
  };
}

export async function listTimeline(sql: Sql, kind: ObjectKind, recordId: string, pageSize: number, pageToken: string) {
  const v: Violation[] = [];
  const fingerprint = queryFingerprint("timeline", [kind, recordId]);
  const cursor = decodePageToken(pageToken, fingerprint, 1, v);
  const before = cursor?.keys[0];
  if (before !== undefined && (before === null || !/^\d{1,19}$/.test(before))) v.push({ field: "pageToken", description: "is not a token this service returned; start again with an empty pageToken" });
  if (v.length) throw invalid(v);
  const { rowCount } = await sql.query(`SELECT 1 FROM ${tables[kind]} WHERE id = $1`, [recordId]);
  if (!rowCount) throw new AppError("not_found", `no ${kind} ${recordId} in your company (a purged record's timeline goes with it)`);
  const size = pageSizeOf(pageSize);
  const { rows } = await sql.query<EntryRow>(
    // "ORDER BY t.id": by the bigint, not by the text output column of the same name ("10" < "9").
    `SELECT t.id::text AS id, object_type, record_id, action, actor_type, actor_id, actor_name, changes, created_at, subject_type, subject_id FROM rec_timeline t
     WHERE object_type = $1 AND record_id = $2 AND ($3::bigint IS NULL OR id < $3::bigint)
     ORDER BY t.id DESC LIMIT $4`,
    [kind, recordId, before ?? null, size + 1],
  );
  const page = rows.slice(0, size);
  const last = page[page.length - 1];
  return {
    entries: page.map(toEntry),
    nextPageToken: rows.length > size && last ? encodePageToken(fingerprint, { keys: [last.id, recordId] }) : "",
  };
}

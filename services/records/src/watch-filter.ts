/**
 * A list's filter tree (rules.ts parseFilter) evaluated on a record in memory, for WatchRecords:
 * the same meaning as the SQL lists compile it to (store/lists.ts): text without regard to case,
 * an empty value matching only is_empty (and not_equals), a list field matching when any element
 * does, "me" as the watcher. Pure.
 */
import type { DescMessage, JsonValue } from "@bufbuild/protobuf";
import { timestampMs, type Timestamp } from "@bufbuild/protobuf/wkt";
import { Operator } from "@crm/gen/crm/records/v1/common_pb";
import { CompanySchema } from "@crm/gen/crm/records/v1/company_pb";
import { DealSchema, DealStatus } from "@crm/gen/crm/records/v1/deal_pb";
import { NoteSchema } from "@crm/gen/crm/records/v1/note_pb";
import { PersonSchema } from "@crm/gen/crm/records/v1/person_pb";
import { TaskSchema } from "@crm/gen/crm/records/v1/task_pb";
import type { RecordSnapshot } from "@crm/gen/crm/records/v1/stream_pb";
import { ME, type FilterNode } from "./rules.js";

type Scalar = string | number | bigint | boolean | null;
type Value = Scalar | Scalar[];

const schemas: Record<string, DescMessage> = { company: CompanySchema, person: PersonSchema, deal: DealSchema, task: TaskSchema, note: NoteSchema };
const statusNames: Partial<Record<DealStatus, string>> = { [DealStatus.OPEN]: "open", [DealStatus.WON]: "won", [DealStatus.LOST]: "lost" };

const isTimestamp = (v: unknown): v is Timestamp => typeof v === "object" && v !== null && (v as { $typeName?: string }).$typeName === "google.protobuf.Timestamp";

function fromJson(v: JsonValue | undefined): Value {
  if (v === undefined || v === null) return null;
  if (Array.isArray(v)) return v.filter((x): x is string | number | boolean => typeof x !== "object" || x === null).map((x) => x ?? null);
  if (typeof v === "object") return null;
  return v;
}

/** The value of a field (its proto name, or custom.<key>) of a record: "" and unset as null. */
export function fieldValue(snap: RecordSnapshot, field: string): Value {
  const r = snap.record;
  if (r.case === undefined) return null;
  const msg = r.value as unknown as Record<string, unknown>;
  const custom = /^custom\.(.+)$/.exec(field);
  if (custom) return fromJson((msg.custom as Record<string, JsonValue> | undefined)?.[custom[1]!]);
  if (r.case === "person" && field === "company_ids") return r.value.companies.map((l) => l.companyId);
  if (r.case === "deal" && field === "status") return statusNames[r.value.status] ?? null;
  // A task's or note's linked records: the ids of its links (as the lists' record_ids).
  if ((r.case === "task" || r.case === "note") && field === "record_ids") return r.value.links.map((l) => l.id);
  const f = schemas[r.case]!.fields.find((x) => x.name === field);
  if (!f) return null;
  const v = msg[f.localName];
  if (v === undefined || v === null || v === "") return null;
  if (isTimestamp(v)) return timestampMs(v);
  if (Array.isArray(v)) return v as Scalar[];
  return v as Scalar;
}

const lower = (v: Scalar) => (v === null ? "" : String(v).toLowerCase());

function compare(a: Scalar, b: string, type: string): number {
  switch (type) {
    case "int":
      return typeof a === "bigint" || typeof a === "number" ? Number(BigInt(a) - BigInt(b)) : String(a).localeCompare(b);
    case "number":
      return Number(a) - Number(b);
    case "time":
      return (typeof a === "number" ? a : Date.parse(String(a))) - Date.parse(b);
    default:
      // date (YYYY-MM-DD), and anything else compared as text in the "C" collation.
      return String(a) < b ? -1 : String(a) > b ? 1 : 0;
  }
}

/** Does one condition hold for the record? Unknown types hold (a watcher rather sees too much than too little). */
function condition(n: Extract<FilterNode, { kind: "cond" }>, snap: RecordSnapshot, userId: string): boolean {
  const raw = fieldValue(snap, n.field);
  const values = n.values.map((v) => (v === ME ? userId : v));
  const v0 = values[0]!;
  const list = Array.isArray(raw) ? raw : raw === null ? [] : [raw];
  switch (n.type) {
    case "text": {
      const e = lower(raw as Scalar);
      switch (n.op) {
        case Operator.EQUALS: return e === v0;
        case Operator.NOT_EQUALS: return e !== v0;
        case Operator.IN: return values.includes(e);
        case Operator.CONTAINS: return e.includes(v0);
        case Operator.STARTS_WITH: return e.startsWith(v0);
        case Operator.IS_EMPTY: return e === "";
        case Operator.IS_NOT_EMPTY: return e !== "";
      }
      return true;
    }
    case "text_list": {
      const xs = list.map(lower);
      switch (n.op) {
        case Operator.EQUALS: return xs.includes(v0);
        case Operator.IN: return xs.some((x) => values.includes(x));
        case Operator.CONTAINS: return xs.some((x) => x.includes(v0));
        case Operator.STARTS_WITH: return xs.some((x) => x.startsWith(v0));
        case Operator.IS_EMPTY: return xs.length === 0;
        case Operator.IS_NOT_EMPTY: return xs.length > 0;
      }
      return true;
    }
    case "id_list":
    case "multi": {
      const xs = list.map((x) => (n.type === "id_list" ? lower(x) : String(x)));
      switch (n.op) {
        case Operator.EQUALS: return xs.includes(v0);
        case Operator.IN: return xs.some((x) => values.includes(x));
        case Operator.IS_EMPTY: return xs.length === 0;
        case Operator.IS_NOT_EMPTY: return xs.length > 0;
      }
      return true;
    }
  }
  // Scalars: id, enum, select, bool, int, number, date, time.
  const e: Scalar = Array.isArray(raw) ? null : raw;
  const norm = (x: Scalar): string | null => (x === null ? null : n.type === "id" ? String(x).toLowerCase() : n.type === "bool" ? String(x === true || x === "true") : String(x));
  const s = norm(e);
  switch (n.op) {
    case Operator.EQUALS: return s !== null && (isOrdered(n.type) ? compare(e, v0, n.type) === 0 : s === v0);
    case Operator.NOT_EQUALS: return s === null || (isOrdered(n.type) ? compare(e, v0, n.type) !== 0 : s !== v0);
    case Operator.IN: return s !== null && values.some((v) => (isOrdered(n.type) ? compare(e, v, n.type) === 0 : s === v));
    case Operator.GREATER_THAN: return s !== null && compare(e, v0, n.type) > 0;
    case Operator.GREATER_OR_EQUAL: return s !== null && compare(e, v0, n.type) >= 0;
    case Operator.LESS_THAN: return s !== null && compare(e, v0, n.type) < 0;
    case Operator.LESS_OR_EQUAL: return s !== null && compare(e, v0, n.type) <= 0;
    case Operator.BETWEEN: return s !== null && compare(e, v0, n.type) >= 0 && compare(e, values[1]!, n.type) <= 0;
    case Operator.IS_EMPTY: return s === null;
    case Operator.IS_NOT_EMPTY: return s !== null;
  }
  return true;
}

const isOrdered = (type: string) => type === "int" || type === "number" || type === "time" || type === "date";

/** Does the record match the filter (undefined: every record)? */
export function matches(node: FilterNode | undefined, snap: RecordSnapshot, userId: string): boolean {
  if (!node) return true;
  if (node.kind === "cond") return condition(node, snap, userId);
  return node.kind === "and" ? node.children.every((c) => matches(c, snap, userId)) : node.children.some((c) => matches(c, snap, userId));
}

/** In the watched list: matches the filter, and outside the trash unless the watch shows it. */
export function inView(node: FilterNode | undefined, snap: RecordSnapshot | undefined, userId: string, showDeleted: boolean): boolean {
  if (!snap || snap.record.case === undefined) return false;
  if (!showDeleted && (snap.record.value as { deleteTime?: unknown }).deleteTime) return false;
  return matches(node, snap, userId);
}

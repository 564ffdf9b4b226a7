/**
 * The records domain's rules, shared by the service's request checks (validation.ts) and by its
 * store (services/records/store), which applies them again to what reaches it. Pure: no I/O.
 *
 * - normal forms: web domains, e-mail addresses, phone numbers, currencies, dates, tags;
 * - etags: a record's version as text;
 * - the fields of each object that lists filter and sort on (their types), the filter tree and
 *   order_by parsed into a checked form, and the page token that carries a keyset cursor;
 * - kanban positions (fractional-indexing keys) and the status that follows a stage's kind;
 * - the field-level diff the timeline keeps;
 * - custom fields: definitions, values checked against them, the catalog lists use;
 * - tasks and notes: their input and links;
 * - reports: currencies' minor-unit digits, exchange rates as decimals, report periods.
 */
import { createHash } from "node:crypto";
import { domainToASCII } from "node:url";
import { generateKeyBetween, generateNKeysBetween } from "fractional-indexing";
import { z } from "zod";
import type { JsonObject, JsonValue } from "@bufbuild/protobuf";
import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import type { Violation } from "@crm/kit";
import { ObjectType, Operator, type Filter, type RecordRef } from "@crm/gen/crm/records/v1/common_pb";
import { FieldType as ProtoFieldType } from "@crm/gen/crm/records/v1/field_pb";

// ---------------------------------------------------------------------------------------------
// Limits

export const LIMITS = {
  name: 200,
  personName: 100,
  address: 500,
  industry: 100,
  maxSize: 10_000_000,
  tags: 50,
  tag: 50,
  emails: 20,
  email: 254,
  phones: 20,
  jobTitle: 200,
  companyLinks: 50,
  linkRole: 100,
  pipelineName: 100,
  stageName: 100,
  stages: 50,
  lostReason: 500,
  dealPeople: 100,
  pageSize: 500,
  defaultPageSize: 50,
  filterDepth: 4,
  filterConditions: 30,
  inValues: 100,
  filterValue: 500,
  orderKeys: 3,
  orderBy: 200,
  pageToken: 2000,
} as const;

/** Days a record stays in the trash before it is purged. */
export const TRASH_DAYS = 30;

/** Length in code points (what a user counts), not UTF-16 units. */
export const textLength = (s: string) => [...s].length;

/** A violation when `value` is longer than `max` (or empty while required). */
export function textViolation(value: string, field: string, max: number, required = false): Violation | undefined {
  if (required && value.trim() === "") return { field, description: "is required" };
  const n = textLength(value);
  if (n > max) return { field, description: `must be at most ${max} characters (got ${n})` };
  return undefined;
}

/** An id from a client: UUIDs are compared in lower case. */
export const normalId = (s: string) => s.trim().toLowerCase();
const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
export const isId = (s: string) => uuid.test(s);

// ---------------------------------------------------------------------------------------------
// Normal forms

/**
 * A web domain in its stored form: "https://www.Example.COM:443/about" → "example.com";
 * internationalised names in their xn-- (punycode) form. Undefined when it is not a domain.
 */
export function normalizeDomain(raw: string): string | undefined {
  let s = raw.trim().toLowerCase();
  if (s === "") return "";
  s = s.replace(/^[a-z][a-z0-9+.-]*:\/\//, ""); // scheme
  s = s.replace(/^[^/?#@]*@/, ""); // user info
  s = s.split(/[/?#]/, 1)[0]!; // path, query, fragment
  s = s.replace(/:\d*$/, ""); // port
  s = s.replace(/\.$/, ""); // the root's dot
  if (s.startsWith("www.")) s = s.slice(4);
  if (!s.includes(".")) return undefined;
  const ascii = domainToASCII(s);
  if (!ascii || ascii.length > 253) return undefined;
  const labels = ascii.split(".");
  const label = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
  if (!labels.every((l) => label.test(l))) return undefined;
  if (!/^[a-z0-9-]{2,63}$/.test(labels[labels.length - 1]!) || /^\d+$/.test(labels[labels.length - 1]!)) return undefined; // not an IP address
  return ascii;
}

const emailSchema = z.email();
/** An e-mail address as written (trimmed); undefined when it is not one. Compare with emailKey. */
export function normalizeEmail(raw: string): string | undefined {
  const e = raw.trim();
  if (e.length > LIMITS.email || !emailSchema.safeParse(e.toLowerCase()).success) return undefined;
  return e;
}
export const emailKey = (e: string) => e.toLowerCase();

/** "+1 (415) 555-0100" → "+14155550100"; undefined when it is not an E.164 number. */
export function normalizePhone(raw: string): string | undefined {
  const compact = raw.replace(/[\s().-]/g, "");
  return /^\+[1-9]\d{6,14}$/.test(compact) ? compact : undefined;
}

// Read on first use: ICU's currency data is ≈ 1.8 MB of resident pages, which a process that
// never checks a currency (dbservice loads these rules through the records store) need not pay.
let currencies: Set<string> | undefined;
/** An ISO 4217 code in upper case, or undefined. */
export function normalizeCurrency(raw: string): string | undefined {
  const c = raw.trim().toUpperCase();
  if (!/^[A-Z]{3}$/.test(c)) return undefined;
  currencies ??= new Set(Intl.supportedValuesOf("currency"));
  return currencies.has(c) ? c : undefined;
}

/** A calendar date YYYY-MM-DD (years 1900..9999), or undefined. */
export function normalizeDate(raw: string): string | undefined {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(raw.trim());
  if (!m) return undefined;
  const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (y < 1900) return undefined;
  const dt = new Date(Date.UTC(y, mo - 1, d));
  if (dt.getUTCFullYear() !== y || dt.getUTCMonth() !== mo - 1 || dt.getUTCDate() !== d) return undefined;
  return raw.trim();
}

/** Tags trimmed, empty ones dropped, each kept once (first spelling wins, compared without case). */
export function normalizeTags(raw: readonly string[]): string[] {
  const seen = new Set<string>();
  const out: string[] = [];
  for (const t of raw.map((x) => x.trim().replace(/\s+/g, " "))) {
    if (t === "" || seen.has(t.toLowerCase())) continue;
    seen.add(t.toLowerCase());
    out.push(t);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Etags: the record's version, as text.

export const etagOf = (version: bigint | number | string) => String(version);

/** The version an etag names; undefined for "" (no check); "bad" when it is not one of ours. */
export function parseEtag(etag: string): bigint | undefined | "bad" {
  const s = etag.trim().replace(/^W\//, "").replace(/^"(.*)"$/, "$1");
  if (s === "") return undefined;
  if (!/^[1-9]\d{0,18}$/.test(s)) return "bad";
  return BigInt(s);
}

// ---------------------------------------------------------------------------------------------
// Stages and deal status

export type StageKindName = "open" | "won" | "lost";
export const stageKinds: readonly StageKindName[] = ["open", "won", "lost"];

// ---------------------------------------------------------------------------------------------
// Fields that lists filter and sort on

export type FieldType =
  | "text" // compared without regard to case
  | "id" // a UUID; empty when unset
  | "enum"
  | "int"
  | "date" // YYYY-MM-DD
  | "time" // a timestamp
  | "text_list" // any element
  | "id_list"
  | "number" // a decimal (custom number fields)
  | "bool"
  | "select" // one of `values` (custom select fields)
  | "multi"; // any of `values` (custom multi-select fields)

export interface FieldSpec {
  type: FieldType;
  sortable: boolean;
  /** enum: accepted spellings → stored value. */
  values?: Readonly<Record<string, string>>;
  /** Filter only with show_deleted (delete_time). */
  trashOnly?: boolean;
  /** A user's id: the value "me" means the caller. */
  user?: boolean;
  /** A custom field (custom.<key>): its key and type (see "Custom fields" below). */
  custom?: { key: string; type: string };
}

export type ObjectKind = "company" | "person" | "deal" | "task" | "note";
/** The objects that have custom fields. */
export type CustomKind = "company" | "person" | "deal";
export const customKinds: readonly CustomKind[] = ["company", "person", "deal"];
export const hasCustom = (k: string): k is CustomKind => (customKinds as readonly string[]).includes(k);
export const plurals: Record<ObjectKind, string> = { company: "companies", person: "people", deal: "deals", task: "tasks", note: "notes" };

const f = (type: FieldType, sortable = true, extra: Partial<FieldSpec> = {}): FieldSpec => ({ type, sortable, ...extra });
const statusValues = enumValues("DEAL_STATUS", stageKinds);

function enumValues(prefix: string, names: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const n of names) {
    out[n] = n;
    out[`${prefix}_${n.toUpperCase()}`] = n;
  }
  return out;
}

const common = {
  id: f("id"),
  owner_id: f("id", true, { user: true }),
  create_time: f("time"),
  update_time: f("time"),
  delete_time: f("time", true, { trashOnly: true }),
};

export const fields: Record<ObjectKind, Readonly<Record<string, FieldSpec>>> = {
  company: {
    ...common,
    name: f("text"),
    domain: f("text"),
    address: f("text"),
    industry: f("text"),
    size: f("int"),
    tags: f("text_list"),
    assignee_id: f("id", true, { user: true }),
  },
  person: {
    ...common,
    first_name: f("text"),
    last_name: f("text"),
    emails: f("text_list"),
    phones: f("text_list"),
    job_title: f("text"),
    company_ids: f("id_list", false),
  },
  deal: {
    ...common,
    name: f("text"),
    pipeline_id: f("id"),
    stage_id: f("id"),
    position: f("text"),
    amount_minor: f("int"),
    currency_code: f("text"),
    expected_close_date: f("date"),
    status: f("enum", true, { values: statusValues }),
    lost_reason: f("text"),
    company_id: f("id"),
    person_ids: f("id_list", false),
    stage_enter_time: f("time"),
    close_time: f("time"),
    assignee_id: f("id", true, { user: true }),
  },
  task: {
    ...common,
    title: f("text"),
    due_time: f("time"),
    assignee_id: f("id", true, { user: true }),
    done: f("bool"),
    done_time: f("time"),
    record_ids: f("id_list", false),
  },
  note: {
    id: f("id"),
    text: f("text", false),
    author_id: f("id", true, { user: true }),
    record_ids: f("id_list", false),
    create_time: f("time"),
    update_time: f("time"),
    delete_time: f("time", true, { trashOnly: true }),
  },
};

/** A custom field's name in filters, sorts and masks: "custom.<key>". */
export const customFieldPattern = /^custom\.([a-z][a-z0-9_]{0,49})$/;

/** Does a filter tree or order_by name a custom field (so the store reads the definitions)? */
export function mentionsCustom(filter: Filter | undefined, orderBy: string): boolean {
  if (/(^|[\s,])custom\./.test(orderBy)) return true;
  const walk = (n: Filter | undefined, depth: number): boolean => {
    if (!n || depth > LIMITS.filterDepth + 1) return false;
    if (n.node.case === "condition") return n.node.value.field.trim().startsWith("custom.");
    if (n.node.case === "and" || n.node.case === "or") return n.node.value.filters.slice(0, LIMITS.filterConditions).some((c) => walk(c, depth + 1));
    return false;
  };
  return walk(filter, 1);
}

const allOps = new Set(Object.values(Operator).filter((v): v is Operator => typeof v === "number" && v !== Operator.UNSPECIFIED));
const ranges = [Operator.GREATER_THAN, Operator.GREATER_OR_EQUAL, Operator.LESS_THAN, Operator.LESS_OR_EQUAL, Operator.BETWEEN];
const eq = [Operator.EQUALS, Operator.NOT_EQUALS, Operator.IN, Operator.IS_EMPTY, Operator.IS_NOT_EMPTY];
const textOps = [...eq, Operator.CONTAINS, Operator.STARTS_WITH];
export const operatorsOf: Record<FieldType, ReadonlySet<Operator>> = {
  text: new Set(textOps),
  id: new Set(eq),
  enum: new Set([Operator.EQUALS, Operator.NOT_EQUALS, Operator.IN]),
  int: new Set([...eq, ...ranges]),
  date: new Set([...eq, ...ranges]),
  time: new Set([Operator.IS_EMPTY, Operator.IS_NOT_EMPTY, ...ranges]),
  text_list: new Set([Operator.EQUALS, Operator.IN, Operator.CONTAINS, Operator.STARTS_WITH, Operator.IS_EMPTY, Operator.IS_NOT_EMPTY]),
  id_list: new Set([Operator.EQUALS, Operator.IN, Operator.IS_EMPTY, Operator.IS_NOT_EMPTY]),
  number: new Set([...eq, ...ranges]),
  bool: new Set([Operator.EQUALS, Operator.NOT_EQUALS, Operator.IS_EMPTY, Operator.IS_NOT_EMPTY]),
  select: new Set(eq),
  multi: new Set([Operator.EQUALS, Operator.IN, Operator.IS_EMPTY, Operator.IS_NOT_EMPTY]),
};

const opName = (op: Operator) => `OPERATOR_${Operator[op] ?? String(op)}`;

/** A value of a condition in its checked form: text (lower-cased where compared so), an id, a decimal integer, a date, an ISO time. */
export type FilterValue = string;

/** In a condition on a user's id: the caller (the store compiles it to crm_user()). */
export const ME = "me";

export type FilterNode =
  | { kind: "and" | "or"; children: FilterNode[] }
  | { kind: "cond"; field: string; type: FieldType; op: Operator; values: FilterValue[] };

/** A value read as the field's type; undefined with a violation pushed when it is not one. */
function parseValue(spec: FieldSpec, raw: string, field: string, out: Violation[]): FilterValue | undefined {
  const bad = (what: string) => {
    out.push({ field, description: `${what} (got ${JSON.stringify(raw.slice(0, 80))})` });
    return undefined;
  };
  if (textLength(raw) > LIMITS.filterValue) return bad(`must be at most ${LIMITS.filterValue} characters`);
  switch (spec.type) {
    case "text":
    case "text_list":
      return raw.toLowerCase();
    case "id":
    case "id_list": {
      const id = normalId(raw);
      if (spec.user && id === ME) return ME;
      return isId(id) ? id : bad(spec.user ? 'must be a user\'s id (UUID) or "me"' : "must be an id (UUID)");
    }
    case "number":
      return /^-?\d{1,20}(\.\d{1,20})?$/.test(raw.trim()) ? raw.trim() : bad("must be a number such as 12.5");
    case "bool": {
      const b = raw.trim().toLowerCase();
      return b === "true" || b === "false" ? b : bad('must be "true" or "false"');
    }
    case "select":
    case "multi":
    case "enum": {
      const v = spec.values?.[raw.trim()] ?? spec.values?.[raw.trim().toLowerCase()];
      return v ?? bad(`must be one of ${[...new Set(Object.values(spec.values ?? {}))].join(", ")}`);
    }
    case "int":
      return /^-?\d{1,18}$/.test(raw.trim()) ? BigInt(raw.trim()).toString() : bad("must be a whole number");
    case "date":
      return normalizeDate(raw) ?? bad("must be a date YYYY-MM-DD");
    case "time": {
      const t = Date.parse(raw.trim());
      if (!/^\d{4}-\d{2}-\d{2}T/.test(raw.trim()) || !Number.isFinite(t)) return bad('must be an RFC 3339 time such as "2026-05-01T00:00:00Z"');
      return new Date(t).toISOString();
    }
  }
}

/**
 * The filter tree checked against the object's fields: each node at most LIMITS.filterDepth deep,
 * LIMITS.filterConditions conditions in all. Violations name the node by its JSON path under `at`.
 */
export function parseFilter(
  kind: ObjectKind,
  filter: Filter | undefined,
  showDeleted: boolean,
  out: Violation[],
  at = "filter",
  custom?: CustomCatalog,
  deferred?: { custom: boolean },
): FilterNode | undefined {
  if (!filter || filter.node.case === undefined) return undefined;
  let conditions = 0;
  const walk = (node: Filter, path: string, depth: number): FilterNode | undefined => {
    if (depth > LIMITS.filterDepth) {
      out.push({ field: path, description: `the filter may be at most ${LIMITS.filterDepth} levels deep` });
      return undefined;
    }
    switch (node.node.case) {
      case "and":
      case "or": {
        const list = node.node.value.filters;
        const p = `${path}.${node.node.case}.filters`;
        if (list.length === 0 || list.length > LIMITS.filterConditions) {
          out.push({ field: p, description: `must hold 1..${LIMITS.filterConditions} filters` });
          return undefined;
        }
        const children = list.map((c, i) => walk(c, `${p}[${i}]`, depth + 1));
        if (children.some((c) => c === undefined)) return undefined;
        return { kind: node.node.case, children: children as FilterNode[] };
      }
      case "condition": {
        conditions++;
        const c = node.node.value;
        const p = `${path}.condition`;
        if (conditions === LIMITS.filterConditions + 1) out.push({ field: p, description: `a filter may hold at most ${LIMITS.filterConditions} conditions` });
        if (conditions > LIMITS.filterConditions) return undefined;
        const field = c.field.trim();
        const spec = fields[kind][field] ?? customSpec(kind, field, `${p}.field`, out, custom, deferred);
        if (spec === "deferred") return undefined;
        if (!spec) {
          if (out.some((v) => v.field === `${p}.field`)) return undefined;
          out.push({ field: `${p}.field`, description: `must be a field of ${kind}: ${Object.keys(fields[kind]).join(", ")}${hasCustom(kind) ? ", or custom.<key>" : ""} (got ${JSON.stringify(c.field.slice(0, 80))})` });
          return undefined;
        }
        if (spec.trashOnly && !showDeleted) {
          out.push({ field: `${p}.field`, description: "delete_time is only set in the trash: set showDeleted to filter on it" });
          return undefined;
        }
        if (!allOps.has(c.operator) || !operatorsOf[spec.type].has(c.operator)) {
          out.push({ field: `${p}.operator`, description: `must be one of ${[...operatorsOf[spec.type]].map(opName).join(", ")} for ${field}` });
          return undefined;
        }
        const want = wantValues(c.operator);
        if (c.values.length < want[0] || c.values.length > want[1]) {
          const n = want[0] === want[1] ? String(want[0]) : `${want[0]}..${want[1]}`;
          out.push({ field: `${p}.values`, description: `${opName(c.operator)} takes ${n} value${want[1] === 1 ? "" : "s"} (got ${c.values.length})` });
          return undefined;
        }
        const before = out.length;
        const values = c.values.map((v, i) => parseValue(spec, v, `${p}.values[${i}]`, out));
        if (out.length > before) return undefined;
        if ((c.operator === Operator.CONTAINS || c.operator === Operator.STARTS_WITH) && values[0] === "") {
          out.push({ field: `${p}.values[0]`, description: "must not be empty" });
          return undefined;
        }
        return { kind: "cond", field, type: spec.type, op: c.operator, values: values as string[] };
      }
      default:
        return undefined;
    }
  };
  return walk(filter, at, 1);
}

function wantValues(op: Operator): [number, number] {
  switch (op) {
    case Operator.IN:
      return [1, LIMITS.inValues];
    case Operator.BETWEEN:
      return [2, 2];
    case Operator.IS_EMPTY:
    case Operator.IS_NOT_EMPTY:
      return [0, 0];
    default:
      return [1, 1];
  }
}

/** The custom fields of an object as lists see them: "custom.<key>" → its spec (the active fields only). */
export type CustomCatalog = Readonly<Record<string, FieldSpec>>;

/**
 * The spec of "custom.<key>" from the catalog; without a catalog (the service, which does not read
 * the definitions) a well-formed name is "deferred" to the store, which checks it against them.
 */
function customSpec(kind: ObjectKind, field: string, path: string, out: Violation[], custom: CustomCatalog | undefined, deferred?: { custom: boolean }): FieldSpec | "deferred" | undefined {
  if (!field.startsWith("custom.")) return undefined;
  if (!hasCustom(kind)) {
    out.push({ field: path, description: `${kind}s have no custom fields (got ${JSON.stringify(field.slice(0, 80))})` });
    return undefined;
  }
  if (!customFieldPattern.test(field)) {
    out.push({ field: path, description: `a custom field is named custom.<key>, the key a lower-case letter then up to 49 lower-case letters, digits or underscores (got ${JSON.stringify(field.slice(0, 80))})` });
    return undefined;
  }
  if (!custom) {
    if (deferred) deferred.custom = true;
    return "deferred";
  }
  const spec = custom[field];
  if (!spec) out.push({ field: path, description: `${field} is not a custom field of ${plurals[kind]} (or it is archived): see FieldService.ListFields` });
  return spec;
}

export interface OrderKey {
  field: string;
  type: FieldType;
  desc: boolean;
}

/** "amount_minor desc, name" → keys (at most LIMITS.orderKeys); the default is "create_time desc". */
export function parseOrderBy(kind: ObjectKind, orderBy: string, out: Violation[], field = "orderBy", custom?: CustomCatalog, deferred?: { custom: boolean }): OrderKey[] {
  const text = orderBy.trim();
  if (text === "") return [{ field: "create_time", type: "time", desc: true }];
  if (text.length > LIMITS.orderBy) {
    out.push({ field, description: `must be at most ${LIMITS.orderBy} characters` });
    return [];
  }
  const keys: OrderKey[] = [];
  const parts = text.split(",");
  if (parts.length > LIMITS.orderKeys) {
    out.push({ field, description: `may name at most ${LIMITS.orderKeys} fields` });
    return [];
  }
  for (const part of parts) {
    const m = /^\s*([a-z_]+(?:\.[a-z0-9_]+)?)(?:\s+(asc|desc))?\s*$/i.exec(part);
    const before = out.length;
    const found = m ? (fields[kind][m[1]!] ?? customSpec(kind, m[1]!, field, out, custom, deferred)) : undefined;
    if (out.length > before) return [];
    if (found === "deferred") {
      keys.push({ field: m![1]!, type: "text", desc: m![2]?.toLowerCase() === "desc" });
      continue;
    }
    const spec = found;
    if (!m || !spec || !spec.sortable) {
      const sortable = [...Object.entries(fields[kind]), ...Object.entries(custom ?? {})].filter(([, s]) => s.sortable).map(([n]) => n);
      out.push({ field, description: `"${part.trim().slice(0, 80)}" is not "<field> [asc|desc]" with a field of ${kind} one can sort by: ${sortable.join(", ")}` });
      return [];
    }
    if (keys.some((k) => k.field === m[1])) {
      out.push({ field, description: `names ${m[1]} twice` });
      return [];
    }
    keys.push({ field: m[1]!, type: spec.type, desc: m[2]?.toLowerCase() === "desc" });
  }
  return keys;
}

// ---------------------------------------------------------------------------------------------
// Page tokens: the sort values of the last record of a page (its id last), bound to the query.

export interface Cursor {
  /** One value per order key (null: empty), then the id. */
  keys: (string | null)[];
}

/** What a page token is bound to: the same object, filter, order and trash setting. */
export function queryFingerprint(kind: string, parts: unknown): string {
  return createHash("sha256").update(JSON.stringify([kind, parts], (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v))).digest("base64url").slice(0, 16);
}

export function encodePageToken(fingerprint: string, cursor: Cursor): string {
  return Buffer.from(JSON.stringify({ q: fingerprint, k: cursor.keys })).toString("base64url");
}

/** The cursor of a token, or a violation (a token of another query, or not ours). "" → undefined. */
export function decodePageToken(token: string, fingerprint: string | null, nKeys: number, out: Violation[], field = "pageToken"): Cursor | undefined {
  if (token === "") return undefined;
  const bad = (why: string) => {
    out.push({ field, description: why });
    return undefined;
  };
  if (token.length > LIMITS.pageToken || !/^[A-Za-z0-9_-]+$/.test(token)) return bad("is not a token this service returned; start again with an empty pageToken");
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(token, "base64url").toString("utf8"));
  } catch {
    return bad("is not a token this service returned; start again with an empty pageToken");
  }
  const p = parsed as { q?: unknown; k?: unknown };
  if (typeof p !== "object" || p === null || typeof p.q !== "string" || !Array.isArray(p.k) || p.k.length !== nKeys + 1 || !p.k.every((k) => k === null || (typeof k === "string" && k.length <= 600))) {
    return bad("is not a token this service returned; start again with an empty pageToken");
  }
  if (fingerprint !== null && p.q !== fingerprint) return bad("belongs to a list with another filter, orderBy or showDeleted: send those unchanged with it, or start again with an empty pageToken");
  const id = p.k[nKeys];
  if (typeof id !== "string" || !isId(id)) return bad("is not a token this service returned; start again with an empty pageToken");
  return { keys: p.k as (string | null)[] };
}

export function pageSizeViolation(pageSize: number, field = "pageSize"): Violation | undefined {
  if (pageSize < 0 || pageSize > LIMITS.pageSize) return { field, description: `must be 1..${LIMITS.pageSize} (0 means ${LIMITS.defaultPageSize})` };
  return undefined;
}
export const pageSizeOf = (n: number) => Math.min(Math.max(n || LIMITS.defaultPageSize, 1), LIMITS.pageSize);

export interface ListParams {
  filter?: Filter | undefined;
  orderBy: string;
  pageSize: number;
  pageToken: string;
  showDeleted: boolean;
}

export interface ListQuery {
  filter: FilterNode | undefined;
  order: OrderKey[];
  /** What the page token is bound to. */
  fingerprint: string;
  cursor: Cursor | undefined;
}

/**
 * A List request checked as a whole (filter, orderBy, pageSize, pageToken); violations name its
 * fields. Conditions and sorts on custom fields are checked against `custom` (the store reads the
 * definitions); without it (the service) only their names are, and the rest is the store's.
 */
export function parseListQuery(kind: ObjectKind, req: ListParams, out: Violation[], custom?: CustomCatalog): ListQuery {
  const before = out.length;
  const size = pageSizeViolation(req.pageSize);
  if (size) out.push(size);
  const deferred = { custom: false };
  const filter = parseFilter(kind, req.filter, req.showDeleted, out, "filter", custom, deferred);
  const order = parseOrderBy(kind, req.orderBy, out, "orderBy", custom, deferred);
  const fingerprint = queryFingerprint(kind, [filter ?? null, order, req.showDeleted]);
  const cursor = out.length > before ? undefined : decodePageToken(req.pageToken, deferred.custom ? null : fingerprint, order.length, out);
  return { filter, order, fingerprint, cursor };
}

// ---------------------------------------------------------------------------------------------
// Kanban positions

/**
 * A key that sorts (byte-wise, as PostgreSQL's "C" collation and JavaScript's < do) between
 * `before` and `after` (null: the start / the end of the stage).
 */
export function positionBetween(before: string | null, after: string | null): string {
  return generateKeyBetween(before, after);
}

// ---------------------------------------------------------------------------------------------
// The timeline's diffs

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
/** A record as the timeline sees it: proto field names → JSON values (int64 as strings, times as RFC 3339). */
export type Snapshot = Record<string, Json | undefined>;

export interface FieldChangeJson {
  field: string;
  before: Json;
  after: Json;
}

const emptyToNull = (v: Json | undefined): Json => (v === undefined || v === "" || (Array.isArray(v) && v.length === 0) ? null : v);

/**
 * The fields whose values differ, in the order of `after`'s keys (then `before`'s), empty values
 * (unset, "", []) as null. A created record: diff({}, record) lists every field that is set.
 */
export function diff(before: Snapshot, after: Snapshot): FieldChangeJson[] {
  const out: FieldChangeJson[] = [];
  const names = [...new Set([...Object.keys(after), ...Object.keys(before)])];
  for (const field of names) {
    const b = emptyToNull(before[field]);
    const a = emptyToNull(after[field]);
    if (JSON.stringify(a) !== JSON.stringify(b)) out.push({ field, before: b, after: a });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Custom fields: a definition's input; a record's `custom` values checked and normalised against
// the definitions of its object type (violations name `<object>.custom.<key>`) into a patch the
// store applies in SQL (`custom = (custom - remove) || set`), so archived fields' values are kept;
// the catalog lists filter and sort on ("custom.<key>" → its FieldSpec).

export const FIELD_LIMITS = {
  perObject: 100,
  label: 100,
  description: 500,
  options: 200,
  option: 100,
  text: 1_000,
  longText: 10_000,
  url: 2_000,
  /** A record's custom values as JSON text. */
  customBytes: 64 * 1024,
} as const;

export const fieldKeyPattern = /^[a-z][a-z0-9_]{0,49}$/;

export type CustomFieldType =
  | "text" | "long_text" | "number" | "money" | "date" | "datetime" | "boolean" | "select" | "multi_select" | "url" | "email" | "phone" | "user";

export const fieldTypeNames: Partial<Record<ProtoFieldType, CustomFieldType>> = {
  [ProtoFieldType.TEXT]: "text",
  [ProtoFieldType.LONG_TEXT]: "long_text",
  [ProtoFieldType.NUMBER]: "number",
  [ProtoFieldType.MONEY]: "money",
  [ProtoFieldType.DATE]: "date",
  [ProtoFieldType.DATETIME]: "datetime",
  [ProtoFieldType.BOOLEAN]: "boolean",
  [ProtoFieldType.SELECT]: "select",
  [ProtoFieldType.MULTI_SELECT]: "multi_select",
  [ProtoFieldType.URL]: "url",
  [ProtoFieldType.EMAIL]: "email",
  [ProtoFieldType.PHONE]: "phone",
  [ProtoFieldType.USER]: "user",
};
export const fieldTypeToProto = Object.fromEntries(Object.entries(fieldTypeNames).map(([n, t]) => [t, Number(n)])) as Record<CustomFieldType, ProtoFieldType>;

export interface OptionDef {
  value: string;
  label: string;
  archived: boolean;
}

/** A definition as the rules need it. */
export interface CustomDef {
  key: string;
  label: string;
  type: CustomFieldType;
  required: boolean;
  options: OptionDef[];
  currencyCode: string | null;
  archived: boolean;
}

const hasOptions = (t: CustomFieldType) => t === "select" || t === "multi_select";

// ---------------------------------------------------------------------------------------------
// Definitions

export interface FieldDefInput {
  key?: string;
  type?: CustomFieldType;
  label?: string;
  description?: string;
  required?: boolean;
  options?: OptionDef[];
  currency_code?: string | null;
}

interface FieldLike {
  key: string;
  label: string;
  type: ProtoFieldType;
  required: boolean;
  options: { value: string; label: string; archived: boolean }[];
  currencyCode: string;
  description: string;
}

/** The options checked: values trimmed, 1..100 characters, unique without regard to case; 1..200 of them for a select. */
function checkOptions(out: Violation[], at: string, raw: FieldLike["options"], type: CustomFieldType | undefined): OptionDef[] {
  const opts: OptionDef[] = [];
  if (type && !hasOptions(type)) {
    if (raw.length) out.push({ field: `${at}.options`, description: "only select and multi-select fields have options" });
    return opts;
  }
  if (type && raw.length === 0) out.push({ field: `${at}.options`, description: `a ${type === "select" ? "select" : "multi-select"} field needs 1..${FIELD_LIMITS.options} options` });
  if (raw.length > FIELD_LIMITS.options) out.push({ field: `${at}.options`, description: `may hold at most ${FIELD_LIMITS.options} options (got ${raw.length})` });
  const seen = new Set<string>();
  raw.slice(0, FIELD_LIMITS.options).forEach((o, i) => {
    const value = o.value.trim();
    const label = o.label.trim();
    const bad = textViolation(value, `${at}.options[${i}].value`, FIELD_LIMITS.option, true);
    if (bad) out.push(bad);
    else if (seen.has(value.toLowerCase())) out.push({ field: `${at}.options[${i}].value`, description: "names another option of the field (values are compared without regard to case)" });
    const badLabel = textViolation(label, `${at}.options[${i}].label`, FIELD_LIMITS.option);
    if (badLabel) out.push(badLabel);
    seen.add(value.toLowerCase());
    opts.push({ value, label, archived: o.archived });
  });
  return opts;
}

/** CreateField: every part of a definition; violations name `${at}.<jsonName>`. */
export function checkNewField(f: FieldLike, out: Violation[], at = "field"): Required<FieldDefInput> {
  const key = f.key.trim();
  if (!fieldKeyPattern.test(key)) {
    out.push({ field: `${at}.key`, description: `must be a lower-case letter, then up to 49 lower-case letters, digits or underscores, e.g. "renewal_date" (got ${JSON.stringify(f.key.slice(0, 80))})` });
  }
  const type = fieldTypeNames[f.type];
  if (!type) out.push({ field: `${at}.type`, description: "must be one of FIELD_TYPE_TEXT, _LONG_TEXT, _NUMBER, _MONEY, _DATE, _DATETIME, _BOOLEAN, _SELECT, _MULTI_SELECT, _URL, _EMAIL, _PHONE, _USER" });
  const rest = checkFieldChange(f, ["label", "description", "required", "options"], type, out, at);
  let currency: string | null = null;
  if (type === "money") {
    currency = normalizeCurrency(f.currencyCode) ?? null;
    if (!currency) out.push({ field: `${at}.currencyCode`, description: `a money field needs its ISO 4217 currency, e.g. "EUR" (got ${JSON.stringify(f.currencyCode.slice(0, 80))})` });
  } else if (f.currencyCode.trim() !== "") out.push({ field: `${at}.currencyCode`, description: "only money fields have a currency" });
  return { key, type: type ?? "text", label: rest.label!, description: rest.description!, required: rest.required!, options: rest.options!, currency_code: currency };
}

/** UpdateField: the parts named by the mask (label, description, required, options). */
export function checkFieldChange(f: Pick<FieldLike, "label" | "description" | "required" | "options">, paths: readonly string[], type: CustomFieldType | undefined, out: Violation[], at = "field"): FieldDefInput {
  const r: FieldDefInput = {};
  for (const p of paths) {
    switch (p) {
      case "label": {
        r.label = f.label.trim();
        const bad = textViolation(r.label, `${at}.label`, FIELD_LIMITS.label, true);
        if (bad) out.push(bad);
        break;
      }
      case "description": {
        r.description = f.description.trim();
        const bad = textViolation(r.description, `${at}.description`, FIELD_LIMITS.description);
        if (bad) out.push(bad);
        break;
      }
      case "required":
        r.required = f.required;
        break;
      case "options":
        r.options = checkOptions(out, at, f.options, type);
        break;
    }
  }
  return r;
}

/** New options against the old: every old value stays (archive it instead of removing it). */
export function keptOptions(before: readonly OptionDef[], after: readonly OptionDef[], out: Violation[], at = "field"): void {
  const now = new Set(after.map((o) => o.value.toLowerCase()));
  for (const o of before) {
    if (!now.has(o.value.toLowerCase())) {
      out.push({ field: `${at}.options`, description: `drops the option ${JSON.stringify(o.value)}, which records may hold: keep it with archived set to true instead` });
    }
  }
  // The spelling of a kept value is the stored one.
  for (const o of after) {
    const old = before.find((b) => b.value.toLowerCase() === o.value.toLowerCase());
    if (old) o.value = old.value;
  }
}

// ---------------------------------------------------------------------------------------------
// Values

/** What a write does to a record's custom values: keys to drop, then values to set (the store: `(custom - remove) || set`). */
export interface CustomPatch {
  remove: string[];
  set: JsonObject;
  /** User ids the store checks are active users of the tenant, with the field that names each. */
  users: { field: string; id: string }[];
}

const isEmpty = (v: JsonValue | undefined) => v === undefined || v === null || v === "" || (Array.isArray(v) && v.length === 0);

/**
 * The service's check, without the definitions: names, count and size only (the store checks
 * the rest against the definitions).
 */
export function checkCustomShape(given: JsonObject | undefined, out: Violation[], at: string): void {
  if (!given) return;
  const keys = Object.keys(given);
  if (keys.length > FIELD_LIMITS.perObject) out.push({ field: `${at}.custom`, description: `may hold at most ${FIELD_LIMITS.perObject} values (got ${keys.length})` });
  for (const k of keys.slice(0, FIELD_LIMITS.perObject)) {
    if (!fieldKeyPattern.test(k)) out.push({ field: `${at}.custom`, description: `${JSON.stringify(k.slice(0, 80))} is not a custom field's key (a lower-case letter, then lower-case letters, digits or underscores)` });
  }
  if (JSON.stringify(given).length > FIELD_LIMITS.customBytes) out.push({ field: `${at}.custom`, description: `must be at most ${FIELD_LIMITS.customBytes} bytes as JSON` });
}

/** One value in its stored form; undefined (with a violation) when it does not fit the field. */
export function normalizeCustomValue(def: CustomDef, raw: JsonValue, field: string, out: Violation[], users: CustomPatch["users"]): JsonValue | undefined {
  const bad = (what: string) => {
    const shown = JSON.stringify(raw) ?? "";
    out.push({ field, description: `${what} (got ${shown.length > 80 ? `${shown.slice(0, 80)}…` : shown})` });
    return undefined;
  };
  const str = (max: number) => {
    if (typeof raw !== "string") return bad("must be text");
    const v = raw.trim();
    const n = textLength(v);
    return n > max ? bad(`must be at most ${max} characters (got ${n})`) : v;
  };
  switch (def.type) {
    case "text":
      return str(FIELD_LIMITS.text);
    case "long_text":
      return str(FIELD_LIMITS.longText);
    case "number": {
      const n = typeof raw === "number" ? raw : typeof raw === "string" && /^\s*-?\d+(\.\d+)?\s*$/.test(raw) ? Number(raw) : NaN;
      return Number.isFinite(n) && Math.abs(n) < 1e15 ? n : bad("must be a number between -1e15 and 1e15, e.g. 12.5");
    }
    case "money": {
      const n = typeof raw === "number" ? raw : typeof raw === "string" && /^\s*-?\d{1,16}\s*$/.test(raw) ? Number(raw) : NaN;
      return Number.isSafeInteger(n) ? n : bad(`must be a whole number of ${def.currencyCode ?? "the currency"}'s minor units (e.g. cents)`);
    }
    case "date":
      return (typeof raw === "string" && normalizeDate(raw)) || bad("must be a date YYYY-MM-DD");
    case "datetime": {
      const t = typeof raw === "string" && /^\d{4}-\d{2}-\d{2}T/.test(raw.trim()) ? Date.parse(raw.trim()) : NaN;
      const y = Number.isFinite(t) ? new Date(t).getUTCFullYear() : 0;
      return y >= 1900 && y <= 9999 ? new Date(t).toISOString() : bad('must be an RFC 3339 time such as "2026-05-01T09:30:00Z" (years 1900..9999)');
    }
    case "boolean":
      return typeof raw === "boolean" ? raw : bad("must be true or false");
    case "select": {
      if (typeof raw !== "string") return bad("must be one option's value");
      const o = def.options.find((x) => x.value.toLowerCase() === raw.trim().toLowerCase());
      if (!o || o.archived) return bad(`must be one of ${def.options.filter((x) => !x.archived).map((x) => JSON.stringify(x.value)).join(", ")}${o ? ` (${JSON.stringify(o.value)} is archived)` : ""}`);
      return o.value;
    }
    case "multi_select": {
      if (!Array.isArray(raw)) return bad("must be a list of option values");
      const picked: string[] = [];
      for (const [i, x] of raw.entries()) {
        const o = typeof x === "string" ? def.options.find((y) => y.value.toLowerCase() === x.trim().toLowerCase()) : undefined;
        if (!o || o.archived) {
          out.push({ field: `${field}[${i}]`, description: `must be one of ${def.options.filter((y) => !y.archived).map((y) => JSON.stringify(y.value)).join(", ")}` });
          return undefined;
        }
        if (picked.includes(o.value)) {
          out.push({ field: `${field}[${i}]`, description: "appears twice" });
          return undefined;
        }
        picked.push(o.value);
      }
      return picked;
    }
    case "url": {
      const u = str(FIELD_LIMITS.url);
      if (u === undefined) return undefined;
      const withScheme = /^[a-z][a-z0-9+.-]*:/i.test(u) ? u : `https://${u}`;
      try {
        const url = new URL(withScheme);
        if ((url.protocol === "http:" || url.protocol === "https:") && url.hostname.includes(".") && url.href.length <= FIELD_LIMITS.url) return url.href;
      } catch {
        // below
      }
      return bad('must be an http(s) URL such as "https://example.com/page"');
    }
    case "email":
      return (typeof raw === "string" && normalizeEmail(raw)) || bad("must be an e-mail address");
    case "phone":
      return (typeof raw === "string" && normalizePhone(raw)) || bad('must be a phone number in international form, e.g. "+14155550100"');
    case "user": {
      const id = typeof raw === "string" ? normalId(raw) : "";
      if (!isId(id)) return bad("must be a user's id (UUID)");
      users.push({ field, id });
      return id;
    }
  }
}

/**
 * A write's custom values checked against the definitions. `scope`: "all" (create, or the mask
 * path "custom": every active field is written, absent ones emptied) or the keys the mask names
 * ("custom.<key>"). Required fields in scope must end with a value. Violations name `${at}.custom.<key>`.
 */
export function checkCustom(
  kind: CustomKind,
  defs: readonly CustomDef[],
  given: JsonObject | undefined,
  scope: "all" | readonly string[],
  out: Violation[],
  at: string,
): CustomPatch {
  const patch: CustomPatch = { remove: [], set: {}, users: [] };
  const active = new Map(defs.filter((d) => !d.archived).map((d) => [d.key, d]));
  const byKey = new Map(defs.map((d) => [d.key, d]));
  const values = given ?? {};
  const plural = plurals[kind];
  const unknown = (key: string, path: string) => {
    const d = byKey.get(key);
    out.push({
      field: path,
      description: d
        ? `the custom field ${key} is archived: unarchive it (FieldService.UnarchiveField) to write it`
        : `is not a custom field of ${plural}: define it with FieldService.CreateField${active.size ? ` (fields: ${[...active.keys()].join(", ")})` : ""}`,
    });
  };
  let keys: string[];
  if (scope === "all") {
    const given = Object.keys(values);
    if (given.length > FIELD_LIMITS.perObject) out.push({ field: `${at}.custom`, description: `may hold at most ${FIELD_LIMITS.perObject} values` });
    for (const k of given.slice(0, FIELD_LIMITS.perObject)) if (!active.has(k) && !isEmpty(values[k])) unknown(k, `${at}.custom.${k.slice(0, 60)}`);
    keys = [...active.keys()];
  } else {
    keys = [];
    for (const k of scope) {
      if (active.has(k)) keys.push(k);
      else unknown(k, `${at}.custom.${k}`);
    }
  }
  for (const key of keys) {
    const def = active.get(key)!;
    const path = `${at}.custom.${key}`;
    patch.remove.push(key);
    const raw = values[key];
    if (isEmpty(raw)) {
      if (def.required) out.push({ field: path, description: `is required: ${def.label}` });
      continue;
    }
    const v = normalizeCustomValue(def, raw!, path, out, patch.users);
    if (v === undefined) continue;
    if (isEmpty(v)) {
      if (def.required) out.push({ field: path, description: `is required: ${def.label}` });
      continue;
    }
    patch.set[key] = v;
  }
  return patch;
}

/** The record's visible custom values after a patch. */
export function applyCustom(visible: JsonObject, patch: CustomPatch): JsonObject {
  const next: JsonObject = { ...visible };
  for (const k of patch.remove) delete next[k];
  return { ...next, ...patch.set };
}

/** For the timeline's diff: custom values as "custom.<key>" fields. */
export function customSnapshot(custom: JsonObject | null | undefined): Snapshot {
  const out: Snapshot = {};
  for (const k of Object.keys(custom ?? {}).sort()) out[`custom.${k}`] = custom![k] as Snapshot[string];
  return out;
}

/** The mask's custom paths as the keys they name; "custom" (or "*") means every field. */
export function customScope(paths: readonly string[]): "all" | string[] | undefined {
  if (paths.includes("custom")) return "all";
  const keys = paths.map((p) => customFieldPattern.exec(p)?.[1]).filter((k): k is string => Boolean(k));
  return keys.length ? keys : undefined;
}

// ---------------------------------------------------------------------------------------------
// Lists

function specOf(d: CustomDef): FieldSpec {
  const custom = { key: d.key, type: d.type };
  const values = () => Object.fromEntries(d.options.flatMap((o) => [[o.value, o.value], [o.value.toLowerCase(), o.value]]));
  switch (d.type) {
    case "number":
      return { type: "number", sortable: true, custom };
    case "money":
      return { type: "int", sortable: true, custom };
    case "date":
      return { type: "date", sortable: true, custom };
    case "datetime":
      return { type: "time", sortable: true, custom };
    case "boolean":
      return { type: "bool", sortable: true, custom };
    case "select":
      return { type: "select", sortable: true, values: values(), custom };
    case "multi_select":
      return { type: "multi", sortable: false, values: values(), custom };
    case "user":
      return { type: "id", sortable: true, user: true, custom };
    default:
      return { type: "text", sortable: true, custom };
  }
}

/** The active fields as lists see them: "custom.<key>" → spec. */
export function catalogOf(defs: readonly CustomDef[]): CustomCatalog {
  return Object.fromEntries(defs.filter((d) => !d.archived).map((d) => [`custom.${d.key}`, specOf(d)]));
}

/** A definition as FieldService answers it, for the rules. */
export function defFromField(f: { key: string; label: string; type: ProtoFieldType; required: boolean; options: OptionDef[]; currencyCode: string; archiveTime?: unknown }): CustomDef {
  return {
    key: f.key,
    label: f.label,
    type: fieldTypeNames[f.type] ?? "text",
    required: f.required,
    options: f.options.map((o) => ({ value: o.value, label: o.label, archived: o.archived })),
    currencyCode: f.currencyCode || null,
    archived: f.archiveTime !== undefined,
  };
}

// ---------------------------------------------------------------------------------------------
// Tasks and notes: their input, the links to records they carry, and what their entries on the
// linked records' timelines show.

export const ACTIVITY_LIMITS = {
  title: 500,
  noteText: 20_000,
  links: 20,
  /** A note's text in timeline diffs. */
  excerpt: 500,
} as const;

export interface LinkInput {
  object_type: CustomKind;
  id: string;
}

const linkKinds: Partial<Record<ObjectType, CustomKind>> = { [ObjectType.COMPANY]: "company", [ObjectType.PERSON]: "person", [ObjectType.DEAL]: "deal" };
export const linkKindToProto: Record<CustomKind, ObjectType> = { company: ObjectType.COMPANY, person: ObjectType.PERSON, deal: ObjectType.DEAL };

/** Links to companies, people and deals: each once, up to ACTIVITY_LIMITS.links. */
export function checkLinks(out: Violation[], path: string, links: readonly Pick<RecordRef, "objectType" | "id">[]): LinkInput[] {
  if (links.length > ACTIVITY_LIMITS.links) out.push({ field: path, description: `may hold at most ${ACTIVITY_LIMITS.links} links (got ${links.length})` });
  const seen = new Set<string>();
  const r: LinkInput[] = [];
  links.slice(0, ACTIVITY_LIMITS.links).forEach((l, i) => {
    const kind = linkKinds[l.objectType];
    const id = normalId(l.id);
    if (!kind) out.push({ field: `${path}[${i}].objectType`, description: "must be OBJECT_TYPE_COMPANY, OBJECT_TYPE_PERSON or OBJECT_TYPE_DEAL" });
    if (!isId(id)) out.push({ field: `${path}[${i}].id`, description: id === "" ? "is required: the record's id" : `must be an id (UUID), got ${JSON.stringify(l.id.slice(0, 80))}` });
    else if (seen.has(id)) out.push({ field: `${path}[${i}].id`, description: "links the same record twice" });
    else if (kind) {
      seen.add(id);
      r.push({ object_type: kind, id });
    }
  });
  return r;
}

/** A time from a request: years 1900..9999, as an ISO string. */
function time(out: Violation[], path: string, t: Timestamp | undefined): string | null {
  if (!t) return null;
  const d = timestampDate(t);
  const y = d.getUTCFullYear();
  if (!Number.isFinite(d.getTime()) || y < 1900 || y > 9999) {
    out.push({ field: path, description: "must be a time in the years 1900..9999" });
    return null;
  }
  return d.toISOString();
}

export interface TaskInput {
  title?: string;
  due_at?: string | null;
  /** null: unassigned (on create: the caller). */
  assignee_id?: string | null;
  done?: boolean;
  links?: LinkInput[];
  /** null: the caller. */
  owner_id?: string | null;
}

export function checkTask(
  t: { title: string; dueTime?: Timestamp | undefined; assigneeId: string; done: boolean; links: RecordRef[]; ownerId: string },
  paths: readonly string[],
  out: Violation[],
  at = "task",
): TaskInput {
  const r: TaskInput = {};
  const ref = (field: string, raw: string) => {
    const id = normalId(raw);
    if (id === "") return null;
    if (!isId(id)) out.push({ field: `${at}.${field}`, description: `must be a user's id (UUID), got ${JSON.stringify(raw.slice(0, 80))}` });
    return id;
  };
  for (const p of paths) {
    switch (p) {
      case "title": {
        r.title = t.title.trim();
        const bad = textViolation(r.title, `${at}.title`, ACTIVITY_LIMITS.title, true);
        if (bad) out.push(bad);
        break;
      }
      case "due_time":
        r.due_at = time(out, `${at}.dueTime`, t.dueTime);
        break;
      case "assignee_id":
        r.assignee_id = ref("assigneeId", t.assigneeId);
        break;
      case "done":
        r.done = t.done;
        break;
      case "links":
        r.links = checkLinks(out, `${at}.links`, t.links);
        break;
      case "owner_id":
        r.owner_id = ref("ownerId", t.ownerId);
        break;
    }
  }
  return r;
}

export interface NoteInput {
  text?: string;
  links?: LinkInput[];
}

export function checkNote(n: { text: string; links: RecordRef[] }, paths: readonly string[], out: Violation[], at = "note"): NoteInput {
  const r: NoteInput = {};
  for (const p of paths) {
    switch (p) {
      case "text": {
        // Markdown is kept as written: only blank text is refused.
        r.text = n.text;
        if (n.text.trim() === "") out.push({ field: `${at}.text`, description: "is required" });
        else if (textLength(n.text) > ACTIVITY_LIMITS.noteText) out.push({ field: `${at}.text`, description: `must be at most ${ACTIVITY_LIMITS.noteText} characters (got ${textLength(n.text)})` });
        break;
      }
      case "links":
        r.links = checkLinks(out, `${at}.links`, n.links);
        break;
    }
  }
  return r;
}

/** A note's text as timeline diffs keep it: its first ACTIVITY_LIMITS.excerpt characters. */
export function excerpt(text: string): string {
  const chars = [...text];
  return chars.length > ACTIVITY_LIMITS.excerpt ? `${chars.slice(0, ACTIVITY_LIMITS.excerpt).join("")}…` : text;
}

/** Links in a snapshot: [{object_type, id}] in their order. */
export const linksJson = (links: readonly LinkInput[]): Json => links.map((l) => ({ object_type: l.object_type, id: l.id }));

/** The snapshot without its links: what entries on linked records show. */
export function withoutLinks(s: Snapshot): Snapshot {
  const { links: _links, ...rest } = s;
  return rest;
}

// ---------------------------------------------------------------------------------------------
// Update masks

/** The fields UpdateX may change, by proto name. */
export const updatable: Record<ObjectKind | "pipeline" | "stage" | "field", readonly string[]> = {
  company: ["name", "domain", "address", "industry", "size", "owner_id", "assignee_id", "tags", "custom"],
  person: ["first_name", "last_name", "emails", "phones", "job_title", "companies", "owner_id", "custom"],
  deal: ["name", "amount_minor", "currency_code", "expected_close_date", "lost_reason", "company_id", "person_ids", "owner_id", "assignee_id", "custom"],
  task: ["title", "due_time", "assignee_id", "done", "links", "owner_id"],
  note: ["text", "links"],
  pipeline: ["name"],
  stage: ["name", "probability", "kind"],
  field: ["label", "description", "required", "options"],
};

/** The mask's paths checked ("*" is every updatable field); violations name updateMask.paths[i]. */
export function parseMask(kind: keyof typeof updatable, paths: readonly string[], out: Violation[], field = "updateMask"): string[] {
  const allowed = updatable[kind];
  if (paths.length === 0) {
    out.push({ field, description: `is required: the fields to change, e.g. "${allowed.slice(0, 2).join(",")}" (or "*" for all of ${allowed.join(", ")})` });
    return [];
  }
  if (paths.length === 1 && paths[0] === "*") return [...allowed];
  const seen = new Set<string>();
  paths.forEach((p, i) => {
    if (hasCustom(kind) && p.startsWith("custom.")) {
      if (customFieldPattern.test(p)) seen.add(p);
      else out.push({ field: `${field}.paths[${i}]`, description: `names one custom value as custom.<key> (a lower-case letter, then lower-case letters, digits or underscores; got ${JSON.stringify(p.slice(0, 80))})` });
    } else if (!allowed.includes(p)) {
      const hint = kind === "deal" && (p === "stage_id" || p === "position" || p === "pipeline_id") ? "; a deal changes stage or place by MoveDeal" : "";
      out.push({ field: `${field}.paths[${i}]`, description: `must be one of ${allowed.join(", ")} or "*" (got ${JSON.stringify(p.slice(0, 80))})${hint}` });
    } else seen.add(p);
  });
  return [...allowed.filter((p) => seen.has(p)), ...[...seen].filter((p) => p.startsWith("custom.")).sort()];
}

// ---------------------------------------------------------------------------------------------
// Input of each object: checked and normalised field by field. `paths` are the fields to read
// (every updatable one on create, the mask's on update); violations name `${at}.<jsonName>`.

type Out = Violation[];
const camel = (s: string) => s.replace(/_([a-z])/g, (_m, c: string) => c.toUpperCase());

function text(out: Out, at: string, field: string, value: string, max: number, required = false): string {
  const v = value.trim();
  const bad = textViolation(v, `${at}.${camel(field)}`, max, required);
  if (bad) out.push(bad);
  return v;
}

/** An optional reference: "" → null; else an id. */
function ref(out: Out, path: string, value: string): string | null {
  const id = normalId(value);
  if (id === "") return null;
  if (!isId(id)) out.push({ field: path, description: `must be an id (UUID), got ${JSON.stringify(value.slice(0, 80))}` });
  return id;
}

function idList(out: Out, path: string, values: readonly string[], max: number): string[] {
  if (values.length > max) out.push({ field: path, description: `may hold at most ${max} ids (got ${values.length})` });
  const seen = new Set<string>();
  const ids: string[] = [];
  values.slice(0, max).forEach((raw, i) => {
    const id = normalId(raw);
    if (!isId(id)) out.push({ field: `${path}[${i}]`, description: `must be an id (UUID), got ${JSON.stringify(raw.slice(0, 80))}` });
    else if (seen.has(id)) out.push({ field: `${path}[${i}]`, description: "appears twice" });
    else {
      seen.add(id);
      ids.push(id);
    }
  });
  return ids;
}

export interface CompanyInput {
  name?: string;
  domain?: string;
  address?: string;
  industry?: string;
  size?: number | null;
  owner_id?: string | null;
  assignee_id?: string | null;
  tags?: string[];
}

export function checkCompany(c: { name: string; domain: string; address: string; industry: string; size?: number | undefined; ownerId: string; assigneeId?: string; tags: string[] }, paths: readonly string[], out: Out, at = "company"): CompanyInput {
  const r: CompanyInput = {};
  for (const p of paths) {
    switch (p) {
      case "name":
        r.name = text(out, at, p, c.name, LIMITS.name, true);
        break;
      case "domain": {
        const d = normalizeDomain(c.domain);
        if (d === undefined) out.push({ field: `${at}.domain`, description: `must be a web domain such as "example.com" (got ${JSON.stringify(c.domain.slice(0, 80))})` });
        r.domain = d ?? "";
        break;
      }
      case "address":
        r.address = text(out, at, p, c.address, LIMITS.address);
        break;
      case "industry":
        r.industry = text(out, at, p, c.industry, LIMITS.industry);
        break;
      case "size":
        if (c.size !== undefined && (c.size < 0 || c.size > LIMITS.maxSize)) out.push({ field: `${at}.size`, description: `must be 0..${LIMITS.maxSize} (leave it unset when unknown)` });
        r.size = c.size ?? null;
        break;
      case "owner_id":
        r.owner_id = ref(out, `${at}.ownerId`, c.ownerId);
        break;
      case "assignee_id":
        r.assignee_id = ref(out, `${at}.assigneeId`, c.assigneeId ?? "");
        break;
      case "tags": {
        const tags = normalizeTags(c.tags);
        if (tags.length > LIMITS.tags) out.push({ field: `${at}.tags`, description: `may hold at most ${LIMITS.tags} tags (got ${tags.length})` });
        tags.forEach((t, i) => {
          if (textLength(t) > LIMITS.tag) out.push({ field: `${at}.tags[${i}]`, description: `must be at most ${LIMITS.tag} characters` });
        });
        r.tags = tags;
        break;
      }
    }
  }
  return r;
}

export interface PersonInput {
  first_name?: string;
  last_name?: string;
  emails?: string[];
  phones?: string[];
  job_title?: string;
  companies?: { company_id: string; role: string }[];
  owner_id?: string | null;
}

export function checkPerson(
  p: { firstName: string; lastName: string; emails: string[]; phones: string[]; jobTitle: string; companies: { companyId: string; role: string }[]; ownerId: string },
  paths: readonly string[],
  out: Out,
  at = "person",
): PersonInput {
  const r: PersonInput = {};
  for (const f of paths) {
    switch (f) {
      case "first_name":
        r.first_name = text(out, at, f, p.firstName, LIMITS.personName);
        break;
      case "last_name":
        r.last_name = text(out, at, f, p.lastName, LIMITS.personName);
        break;
      case "emails": {
        if (p.emails.length > LIMITS.emails) out.push({ field: `${at}.emails`, description: `may hold at most ${LIMITS.emails} addresses (got ${p.emails.length})` });
        const seen = new Set<string>();
        r.emails = [];
        p.emails.slice(0, LIMITS.emails).forEach((raw, i) => {
          const e = normalizeEmail(raw);
          if (e === undefined) out.push({ field: `${at}.emails[${i}]`, description: `must be an e-mail address (got ${JSON.stringify(raw.slice(0, 80))})` });
          else if (seen.has(emailKey(e))) out.push({ field: `${at}.emails[${i}]`, description: "appears twice (addresses are compared without regard to case)" });
          else {
            seen.add(emailKey(e));
            r.emails!.push(e);
          }
        });
        break;
      }
      case "phones": {
        if (p.phones.length > LIMITS.phones) out.push({ field: `${at}.phones`, description: `may hold at most ${LIMITS.phones} numbers (got ${p.phones.length})` });
        const seen = new Set<string>();
        r.phones = [];
        p.phones.slice(0, LIMITS.phones).forEach((raw, i) => {
          const n = normalizePhone(raw);
          if (n === undefined) out.push({ field: `${at}.phones[${i}]`, description: `must be a phone number in international form, e.g. "+14155550100" (got ${JSON.stringify(raw.slice(0, 80))})` });
          else if (seen.has(n)) out.push({ field: `${at}.phones[${i}]`, description: "appears twice" });
          else {
            seen.add(n);
            r.phones!.push(n);
          }
        });
        break;
      }
      case "job_title":
        r.job_title = text(out, at, f, p.jobTitle, LIMITS.jobTitle);
        break;
      case "companies": {
        if (p.companies.length > LIMITS.companyLinks) out.push({ field: `${at}.companies`, description: `may hold at most ${LIMITS.companyLinks} links (got ${p.companies.length})` });
        const seen = new Set<string>();
        r.companies = [];
        p.companies.slice(0, LIMITS.companyLinks).forEach((l, i) => {
          const id = normalId(l.companyId);
          const role = text(out, `${at}.companies[${i}]`, "role", l.role, LIMITS.linkRole);
          if (!isId(id)) out.push({ field: `${at}.companies[${i}].companyId`, description: id === "" ? "is required: the company's id" : `must be an id (UUID), got ${JSON.stringify(l.companyId.slice(0, 80))}` });
          else if (seen.has(id)) out.push({ field: `${at}.companies[${i}].companyId`, description: "links the same company twice" });
          else {
            seen.add(id);
            r.companies!.push({ company_id: id, role });
          }
        });
        break;
      }
      case "owner_id":
        r.owner_id = ref(out, `${at}.ownerId`, p.ownerId);
        break;
    }
  }
  if (paths.includes("first_name") && paths.includes("last_name") && r.first_name === "" && r.last_name === "") {
    out.push({ field: `${at}.firstName`, description: "is required: give a first name, a last name or both" });
  }
  return r;
}

export interface DealInput {
  name?: string;
  amount_minor?: string | null;
  currency_code?: string | null;
  expected_close_date?: string | null;
  lost_reason?: string;
  company_id?: string | null;
  person_ids?: string[];
  owner_id?: string | null;
  assignee_id?: string | null;
}

export function checkDeal(
  d: { name: string; amountMinor?: bigint | undefined; currencyCode: string; expectedCloseDate: string; lostReason: string; companyId: string; personIds: string[]; ownerId: string; assigneeId?: string },
  paths: readonly string[],
  out: Out,
  at = "deal",
): DealInput {
  const r: DealInput = {};
  for (const f of paths) {
    switch (f) {
      case "name":
        r.name = text(out, at, f, d.name, LIMITS.name, true);
        break;
      case "amount_minor":
        if (d.amountMinor !== undefined && d.amountMinor < 0n) out.push({ field: `${at}.amountMinor`, description: "must be 0 or more (in the currency's minor units, e.g. cents)" });
        r.amount_minor = d.amountMinor === undefined ? null : d.amountMinor.toString();
        break;
      case "currency_code": {
        if (d.currencyCode.trim() === "") r.currency_code = null;
        else {
          const c = normalizeCurrency(d.currencyCode);
          if (!c) out.push({ field: `${at}.currencyCode`, description: `must be an ISO 4217 currency code such as "EUR" or "USD" (got ${JSON.stringify(d.currencyCode.slice(0, 80))})` });
          r.currency_code = c ?? null;
        }
        break;
      }
      case "expected_close_date": {
        if (d.expectedCloseDate.trim() === "") r.expected_close_date = null;
        else {
          const v = normalizeDate(d.expectedCloseDate);
          if (!v) out.push({ field: `${at}.expectedCloseDate`, description: `must be a date YYYY-MM-DD (got ${JSON.stringify(d.expectedCloseDate.slice(0, 80))})` });
          r.expected_close_date = v ?? null;
        }
        break;
      }
      case "lost_reason":
        r.lost_reason = text(out, at, f, d.lostReason, LIMITS.lostReason);
        break;
      case "company_id":
        r.company_id = ref(out, `${at}.companyId`, d.companyId);
        break;
      case "person_ids":
        r.person_ids = idList(out, `${at}.personIds`, d.personIds, LIMITS.dealPeople);
        break;
      case "owner_id":
        r.owner_id = ref(out, `${at}.ownerId`, d.ownerId);
        break;
      case "assignee_id":
        r.assignee_id = ref(out, `${at}.assigneeId`, d.assigneeId ?? "");
        break;
    }
  }
  if (paths.includes("amount_minor") && paths.includes("currency_code") && (r.amount_minor === null) !== (r.currency_code === null) && !out.some((v) => v.field === `${at}.currencyCode`)) {
    out.push({ field: r.amount_minor === null ? `${at}.amountMinor` : `${at}.currencyCode`, description: "set amountMinor and currencyCode together, or neither" });
  }
  return r;
}

export interface StageInput {
  name?: string;
  probability?: number;
  kind?: StageKindName;
}

/** kind: the enum's number (StageKind; 0 = open). */
export function checkStage(s: { name: string; probability: number; kind: number }, paths: readonly string[], out: Out, at = "stage"): StageInput {
  const r: StageInput = {};
  for (const f of paths) {
    switch (f) {
      case "name":
        r.name = text(out, at, f, s.name, LIMITS.stageName, true);
        break;
      case "probability":
        if (!Number.isInteger(s.probability) || s.probability < 0 || s.probability > 100) out.push({ field: `${at}.probability`, description: "must be 0..100 (percent)" });
        r.probability = s.probability;
        break;
      case "kind": {
        const k = s.kind === 0 || s.kind === 1 ? "open" : s.kind === 2 ? "won" : s.kind === 3 ? "lost" : undefined;
        if (!k) out.push({ field: `${at}.kind`, description: "must be STAGE_KIND_OPEN, STAGE_KIND_WON or STAGE_KIND_LOST" });
        r.kind = k ?? "open";
        break;
      }
    }
  }
  return r;
}

export function checkPipelineName(name: string, out: Out, at = "pipeline"): string {
  return text(out, at, "name", name, LIMITS.pipelineName, true);
}

/** An id a request names: normalised, or a violation ("is required" when empty). */
export function requiredId(out: Out, field: string, value: string, what: string): string {
  const id = normalId(value);
  if (!isId(id)) out.push({ field, description: id === "" ? `is required: the ${what}'s id` : `must be the ${what}'s id (UUID), got ${JSON.stringify(value.slice(0, 80))}` });
  return id;
}

/** An optional id: "" stays "". */
export function optionalId(out: Out, field: string, value: string): string {
  return ref(out, field, value) ?? "";
}

/** Keys after `last` (null: an empty stage), n of them, in order. */
export function positionsAfter(last: string | null, n: number): string[] {
  return generateNKeysBetween(last, null, n);
}

// ---------------------------------------------------------------------------------------------
// Search (SearchService)

export const SEARCH = {
  query: 200,
  /** Letters or digits a query needs at least. */
  minChars: 2,
  defaultPageSize: 20,
  pageSize: 50,
  /** Digits a query of digits needs to be searched as a phone number. */
  phoneDigits: 4,
} as const;

/** The object types search covers. */
export type SearchKind = "company" | "person" | "deal";
const searchKinds: Record<number, SearchKind> = { 1: "company", 2: "person", 3: "deal" };

export interface SearchInput {
  query: string;
  kinds: SearchKind[];
  pageSize: number;
  /** The query's digits when it reads as a phone number ("(415) 555-0100"), else "". */
  digits: string;
}

/** A Search request checked (violations name its fields) and normalised. */
export function checkSearch(req: { query: string; objectTypes: readonly number[]; pageSize: number }, out: Violation[]): SearchInput {
  const query = req.query.trim().replace(/\s+/g, " ");
  const chars = (query.match(/[\p{L}\p{N}]/gu) ?? []).length;
  if (textLength(query) > SEARCH.query) out.push({ field: "query", description: `must be at most ${SEARCH.query} characters` });
  else if (chars < SEARCH.minChars) out.push({ field: "query", description: `must hold at least ${SEARCH.minChars} letters or digits` });
  const kinds: SearchKind[] = [];
  req.objectTypes.forEach((t, i) => {
    const k = searchKinds[t];
    if (!k) out.push({ field: `objectTypes[${i}]`, description: "must be OBJECT_TYPE_COMPANY, OBJECT_TYPE_PERSON or OBJECT_TYPE_DEAL" });
    else if (!kinds.includes(k)) kinds.push(k);
  });
  if (req.pageSize < 0 || req.pageSize > SEARCH.pageSize) out.push({ field: "pageSize", description: `must be 1..${SEARCH.pageSize} (0 means ${SEARCH.defaultPageSize})` });
  // A national number's trunk prefix ("020 7946 0958") is not part of the stored E.164 digits ("442079460958").
  const digits = /^[\d\s+().\-/]+$/.test(query) ? query.replace(/\D/g, "").replace(/^0+(?=\d{4})/, "") : "";
  return {
    query,
    kinds: kinds.length ? kinds : ["company", "person", "deal"],
    pageSize: Math.min(Math.max(req.pageSize || SEARCH.defaultPageSize, 1), SEARCH.pageSize),
    digits: digits.length >= SEARCH.phoneDigits ? digits : "",
  };
}

// ---------------------------------------------------------------------------------------------
// Saved views (ViewService)

export const VIEW = { name: 100, columns: 50, column: 100 } as const;
/** The fields UpdateView may change, by proto name. */
export const viewPaths = ["name", "filter", "order_by", "columns", "shared", "show_deleted"] as const;
export type ViewPath = (typeof viewPaths)[number];
const viewKinds: Record<number, SearchKind> = searchKinds;
/** A custom field's name in a view's columns: "custom.<key>". */
const customColumn = /^custom\.[a-z][a-z0-9_]{0,49}$/;

export interface ViewInput {
  name?: string;
  filter?: Filter | undefined;
  order_by?: string;
  columns?: string[];
  shared?: boolean;
  show_deleted?: boolean;
}

/** The object type of a view (OBJECT_TYPE_COMPANY, _PERSON, _DEAL), or a violation. */
export function viewKind(objectType: number, out: Violation[], field = "view.objectType"): SearchKind | undefined {
  const k = viewKinds[objectType];
  if (!k) out.push({ field, description: "must be OBJECT_TYPE_COMPANY, OBJECT_TYPE_PERSON or OBJECT_TYPE_DEAL" });
  return k;
}

/** UpdateView's mask checked ("*": every field). */
export function parseViewMask(paths: readonly string[], out: Violation[], field = "updateMask"): ViewPath[] {
  if (paths.length === 0) {
    out.push({ field, description: `is required: the fields to change, e.g. "name,filter" (or "*" for all of ${viewPaths.join(", ")})` });
    return [];
  }
  if (paths.length === 1 && paths[0] === "*") return [...viewPaths];
  const seen = new Set<string>();
  paths.forEach((p, i) => {
    if (!(viewPaths as readonly string[]).includes(p)) out.push({ field: `${field}.paths[${i}]`, description: `must be one of ${viewPaths.join(", ")} or "*" (got ${JSON.stringify(p.slice(0, 80))})` });
    else seen.add(p);
  });
  return viewPaths.filter((p) => seen.has(p));
}

/**
 * A view's fields in `paths`, checked against its object type: the filter and order_by as the
 * List RPCs take them, columns as fields of the type (or "custom.<key>"). `showDeleted` is the
 * view's setting after the change (the filter may name delete_time only with it). `custom`: the
 * type's active custom fields (the store reads them in its transaction): a filter, order or column
 * naming an unknown or archived one (or another type's) is refused, and filter values are checked
 * against its type; without it (the service, which does not read definitions) a well-formed
 * custom.<key> is left to the store.
 */
export function checkView(
  v: { name: string; filter?: Filter | undefined; orderBy: string; columns: readonly string[]; shared: boolean; showDeleted: boolean },
  kind: SearchKind,
  paths: readonly ViewPath[],
  showDeleted: boolean,
  out: Violation[],
  at = "view",
  custom?: CustomCatalog,
): ViewInput {
  const r: ViewInput = {};
  for (const p of paths) {
    switch (p) {
      case "name":
        r.name = text(out, at, p, v.name, VIEW.name, true);
        break;
      case "filter":
        parseFilter(kind, v.filter, showDeleted, out, `${at}.filter`, custom);
        r.filter = v.filter?.node.case === undefined ? undefined : v.filter;
        break;
      case "order_by":
        parseOrderBy(kind, v.orderBy, out, `${at}.orderBy`, custom);
        r.order_by = v.orderBy.trim();
        break;
      case "columns": {
        if (v.columns.length > VIEW.columns) out.push({ field: `${at}.columns`, description: `may hold at most ${VIEW.columns} fields (got ${v.columns.length})` });
        const seen = new Set<string>();
        r.columns = [];
        v.columns.slice(0, VIEW.columns).forEach((raw, i) => {
          const c = raw.trim();
          if (!fields[kind][c] && !customColumn.test(c)) out.push({ field: `${at}.columns[${i}]`, description: `must be a field of ${kind} (${Object.keys(fields[kind]).join(", ")}) or custom.<key> (got ${JSON.stringify(raw.slice(0, 80))})` });
          else if (seen.has(c)) out.push({ field: `${at}.columns[${i}]`, description: "appears twice" });
          else if (custom && !fields[kind][c] && !custom[c]) out.push({ field: `${at}.columns[${i}]`, description: `${c} is not a custom field of ${plurals[kind]} (or it is archived): see FieldService.ListFields` });
          else {
            seen.add(c);
            r.columns!.push(c);
          }
        });
        break;
      }
      case "shared":
        r.shared = v.shared;
        break;
      case "show_deleted":
        r.show_deleted = v.showDeleted;
        break;
    }
  }
  return r;
}

// ---------------------------------------------------------------------------------------------
// Reports (ReportService)

/** ISO 4217 minor-unit digits as the platform's ICU knows them (JPY 0, EUR 2, BHD 3). */
export function currencyDigits(code: string): number {
  return new Intl.NumberFormat("en", { style: "currency", currency: code }).resolvedOptions().maximumFractionDigits ?? 2;
}

/** A currency code in upper case, or a violation named `field`. */
export function checkCurrency(out: Violation[], field: string, raw: string): string {
  const c = normalizeCurrency(raw);
  if (!c) out.push({ field, description: raw.trim() === "" ? 'is required: an ISO 4217 currency code such as "EUR"' : `must be an ISO 4217 currency code such as "EUR" (got ${JSON.stringify(raw.slice(0, 20))})` });
  return c ?? "";
}

const RATE = /^(\d{1,12})(?:\.(\d{1,12}))?$/;

/** A rate as a canonical decimal ("0.92", "150"), or a violation: > 0, up to 12 digits each side of the point. */
export function checkRate(out: Violation[], field: string, raw: string): string {
  const m = RATE.exec(raw.trim());
  const canonical = m ? canonicalDecimal(raw.trim()) : "";
  if (!m || /^0(\.0*)?$/.test(canonical)) {
    out.push({ field, description: `must be a decimal greater than 0 with up to 12 digits before the point and 12 after, e.g. "0.92" (got ${JSON.stringify(raw.slice(0, 40))})` });
    return "";
  }
  return canonical;
}

/** "000.9200" → "0.92", "150.000000000000" → "150" (numeric's text form without trailing zeros). */
export function canonicalDecimal(s: string): string {
  const [int, frac = ""] = s.split(".");
  const i = int!.replace(/^0+(?=\d)/, "");
  const f = frac.replace(/0+$/, "");
  return f ? `${i}.${f}` : i;
}

/** At most ten years: long enough for any report, short enough to keep a mistake cheap. */
export const MAX_PERIOD_MS = 10 * 366 * 24 * 3600 * 1000;

/** A report's period [start, end), both required, start before end, at most ten years. */
export function checkPeriod(out: Violation[], start: Timestamp | undefined, end: Timestamp | undefined): { start: Date; end: Date } | undefined {
  const before = out.length;
  if (!start) out.push({ field: "startTime", description: "is required: the period's first instant (RFC 3339)" });
  if (!end) out.push({ field: "endTime", description: "is required: the instant after the period (RFC 3339)" });
  if (!start || !end) return undefined;
  const s = timestampDate(start);
  const e = timestampDate(end);
  if (Number.isNaN(s.getTime())) out.push({ field: "startTime", description: "is not a valid time" });
  if (Number.isNaN(e.getTime())) out.push({ field: "endTime", description: "is not a valid time" });
  if (out.length > before) return undefined;
  if (e.getTime() <= s.getTime()) out.push({ field: "endTime", description: "must be after startTime" });
  else if (e.getTime() - s.getTime() > MAX_PERIOD_MS) out.push({ field: "endTime", description: "the period may be at most 10 years long" });
  return out.length > before ? undefined : { start: s, end: e };
}

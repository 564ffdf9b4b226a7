/**
 * Lists as SQL: a checked filter tree (../src/rules.ts) compiled to a parameterised WHERE, an
 * order of up to three fields plus the id, a keyset cursor (never OFFSET: a page deep in the list
 * costs what the first one does) and a total that is the planner's estimate unless asked for.
 * Empty values sort last in both directions. Every value reaches PostgreSQL as a parameter.
 */
import { Operator } from "@crm/gen/crm/records/v1/common_pb";
import { invalid, type Violation } from "@crm/kit";
import type { Sql } from "@crm/dbservice/db";
import {
  type Cursor, type CustomCatalog, type FieldSpec, type FieldType, type FilterNode, type ListParams, type ListQuery, type ObjectKind, type OrderKey,
  ME, encodePageToken, hasCustom, mentionsCustom, pageSizeOf, parseListQuery,
} from "../src/rules.js";
import { loadCatalog } from "./custom.js";

/** How one field is reached in SQL. */
export interface ColumnSql {
  /** The value (scalars and text lists). */
  expr?: string;
  /** id lists: the link table, how it joins the record, and the element column. */
  links?: { from: string; join: string; elem: string };
  /** The sort expression, when not derived from expr. */
  sort?: string;
  /** How its values are cast, when not by its type (castOf). */
  cast?: string;
  /** A custom field: the record's alias and the key, for containment (custom @> {key: value}, the GIN index). */
  json?: { alias: string; key: string };
  /** The column is NOT NULL (ids, created and updated times): a page's keyset then needs no "or empty" branch. */
  notNull?: boolean;
}

export interface ListSpec {
  kind: ObjectKind;
  /** "rec_companies c" */
  from: string;
  /** The table alias. */
  alias: string;
  /** The columns the presenter needs (without the cursor). */
  select: string;
  columns: Record<string, ColumnSql>;
}

const castOf: Record<FieldType, string> = {
  text: "text", id: "uuid", enum: "text", int: "bigint", date: "date", time: "timestamptz", text_list: "text", id_list: "uuid",
  number: "numeric", bool: "boolean", select: "text", multi: "text",
};

class Params {
  values: unknown[] = [];
  add(v: unknown, cast: string): string {
    // "me" in a condition on a user's id: the acting user of the transaction.
    if (cast === "uuid" && v === ME) return "crm_user()";
    if (cast === "uuid[]" && Array.isArray(v) && v.includes(ME)) return `array_replace(${this.add(v, "text[]")}, '${ME}', crm_user()::text)::uuid[]`;
    this.values.push(v);
    return `$${this.values.length}::${cast}`;
  }
}

/**
 * How a custom field is reached: its value in the record's `custom` jsonb, typed. Dates and
 * times are stored as ISO text (YYYY-MM-DD, and toISOString's fixed form), which sorts as they
 * do, so they are compared as text in the "C" collation. The key passed the catalog (^[a-z][a-z0-9_]*$).
 */
function customColumn(alias: string, f: FieldSpec): ColumnSql {
  const key = f.custom!.key;
  if (!/^[a-z][a-z0-9_]{0,49}$/.test(key)) throw new Error(`custom key ${key}`); // the catalog let through what it must not
  const text = `(${alias}.custom->>'${key}')`;
  const json = { alias, key };
  switch (f.custom!.type) {
    case "number":
    case "money":
      return { expr: `${text}::numeric`, cast: "numeric", json };
    case "date":
    case "datetime":
      return { expr: `${text} COLLATE "C"`, cast: "text", json };
    case "boolean":
      return { expr: `${text}::boolean`, json };
    case "user":
      return { expr: `${text}::uuid`, json };
    case "multi_select":
      return { expr: `(${alias}.custom->'${key}')`, json };
    default:
      return { expr: text, json };
  }
}

/** The SQL of a field of the list: a column of the spec, or a custom field of the catalog. */
function columnOf(spec: ListSpec, field: string, custom: CustomCatalog | undefined): ColumnSql {
  const col = spec.columns[field];
  if (col) return col;
  const f = custom?.[field];
  if (!f?.custom) throw new Error(`field ${field} of ${spec.kind}`); // parseListQuery let through what it must not
  return customColumn(spec.alias, f);
}

const likeEscape = (s: string) => s.replace(/[\\%_]/g, (c) => `\\${c}`);

function condition(spec: ListSpec, n: Extract<FilterNode, { kind: "cond" }>, p: Params, custom: CustomCatalog | undefined): string {
  const col = columnOf(spec, n.field, custom);
  const cast = col.cast ?? castOf[n.type];
  const v0 = n.values[0]!;
  if (col.json) {
    // Equality by containment, which the GIN index on custom answers for any key.
    const contains = (v: unknown) => `${col.json!.alias}.custom @> ${p.add(JSON.stringify({ [col.json!.key]: v }), "jsonb")}`;
    if (n.type === "multi") {
      switch (n.op) {
        case Operator.EQUALS:
          return contains([v0]);
        case Operator.IN:
          return `coalesce(${col.expr} ?| ${p.add(n.values, "text[]")}, false)`;
        case Operator.IS_EMPTY:
          return `coalesce(jsonb_array_length(${col.expr}), 0) = 0`;
        case Operator.IS_NOT_EMPTY:
          return `coalesce(jsonb_array_length(${col.expr}), 0) > 0`;
      }
    }
    if (n.op === Operator.EQUALS && v0 !== ME && (n.type === "select" || n.type === "id" || n.type === "bool")) return contains(n.type === "bool" ? v0 === "true" : v0);
  }
  if (n.type === "id_list") {
    const l = col.links!;
    const ex = (cond: string) => `EXISTS (SELECT 1 FROM ${l.from} WHERE ${l.join} AND ${cond})`;
    switch (n.op) {
      case Operator.EQUALS:
        return ex(`${l.elem} = ${p.add(v0, "uuid")}`);
      case Operator.IN:
        return ex(`${l.elem} = ANY(${p.add(n.values, "uuid[]")})`);
      case Operator.IS_EMPTY:
        return `NOT ${ex("true")}`;
      case Operator.IS_NOT_EMPTY:
        return ex("true");
    }
  }
  if (n.type === "text_list") {
    const any = (cond: string) => `EXISTS (SELECT 1 FROM unnest(${col.expr}) AS x WHERE ${cond})`;
    switch (n.op) {
      case Operator.EQUALS:
        return any(`lower(x) = ${p.add(v0, "text")}`);
      case Operator.IN:
        return any(`lower(x) = ANY(${p.add(n.values, "text[]")})`);
      case Operator.CONTAINS:
        return any(`x ILIKE ${p.add(`%${likeEscape(v0)}%`, "text")}`);
      case Operator.STARTS_WITH:
        return any(`x ILIKE ${p.add(`${likeEscape(v0)}%`, "text")}`);
      case Operator.IS_EMPTY:
        return `cardinality(${col.expr}) = 0`;
      case Operator.IS_NOT_EMPTY:
        return `cardinality(${col.expr}) > 0`;
    }
  }
  if (n.type === "text") {
    const e = `coalesce(${col.expr}, '')`;
    switch (n.op) {
      case Operator.EQUALS:
        return `lower(${e}) = ${p.add(v0, "text")}`;
      case Operator.NOT_EQUALS:
        return `lower(${e}) <> ${p.add(v0, "text")}`;
      case Operator.IN:
        return `lower(${e}) = ANY(${p.add(n.values, "text[]")})`;
      case Operator.CONTAINS:
        return `${e} ILIKE ${p.add(`%${likeEscape(v0)}%`, "text")}`;
      case Operator.STARTS_WITH:
        return `${e} ILIKE ${p.add(`${likeEscape(v0)}%`, "text")}`;
      case Operator.IS_EMPTY:
        return `${e} = ''`;
      case Operator.IS_NOT_EMPTY:
        return `${e} <> ''`;
    }
  }
  const e = col.expr!;
  switch (n.op) {
    case Operator.EQUALS:
      return `${e} = ${p.add(v0, cast)}`;
    case Operator.NOT_EQUALS:
      return `${e} IS DISTINCT FROM ${p.add(v0, cast)}`;
    case Operator.IN:
      return `${e} = ANY(${p.add(n.values, `${cast}[]`)})`;
    case Operator.GREATER_THAN:
      return `${e} > ${p.add(v0, cast)}`;
    case Operator.GREATER_OR_EQUAL:
      return `${e} >= ${p.add(v0, cast)}`;
    case Operator.LESS_THAN:
      return `${e} < ${p.add(v0, cast)}`;
    case Operator.LESS_OR_EQUAL:
      return `${e} <= ${p.add(v0, cast)}`;
    case Operator.BETWEEN:
      return `${e} BETWEEN ${p.add(v0, cast)} AND ${p.add(n.values[1], cast)}`;
    case Operator.IS_EMPTY:
      return `${e} IS NULL`;
    case Operator.IS_NOT_EMPTY:
      return `${e} IS NOT NULL`;
  }
  throw new Error(`operator ${n.op} on ${n.type}`); // parseFilter let through what it must not
}

function compile(spec: ListSpec, node: FilterNode, p: Params, custom: CustomCatalog | undefined): string {
  if (node.kind === "cond") return condition(spec, node, p, custom);
  return `(${node.children.map((c) => compile(spec, c, p, custom)).join(node.kind === "and" ? " AND " : " OR ")})`;
}

function sortExpr(spec: ListSpec, key: OrderKey, custom: CustomCatalog | undefined): string {
  const col = columnOf(spec, key.field, custom);
  if (col.sort) return col.sort;
  if (key.type === "text") return `nullif(lower(${col.expr}), '')`;
  if (key.type === "text_list") return `nullif(lower((${col.expr})[1]), '')`;
  return col.expr!;
}

export interface ListRequest extends ListParams {
  exactTotal: boolean;
}

export interface ListResult<R> {
  rows: R[];
  nextPageToken: string;
  totalSize: bigint;
  totalIsExact: boolean;
}

/** The checked query: parse errors name the request's fields (invalid_argument). `custom`: the object's custom fields. */
export function planList(spec: ListSpec, req: ListRequest, custom?: CustomCatalog): ListQuery {
  const v: Violation[] = [];
  const q = parseListQuery(spec.kind, req, v, custom ?? {});
  if (v.length) throw invalid(v);
  return q;
}

/** `maxPageSize` lifts the API's page limit (exports); `total: false` skips the total (totalSize 0). */
export interface RunListOptions {
  maxPageSize?: number;
  total?: boolean;
}

export async function runList<R extends Record<string, unknown>>(sql: Sql, spec: ListSpec, req: ListRequest, o: RunListOptions = {}): Promise<ListResult<R>> {
  // The custom fields' definitions, read in this transaction when the filter or order names one.
  const custom = hasCustom(spec.kind) && mentionsCustom(req.filter, req.orderBy) ? await loadCatalog(sql, spec.kind) : undefined;
  const { filter, order, fingerprint, cursor } = planList(spec, o.maxPageSize ? { ...req, pageSize: 0 } : req, custom);
  const a = spec.alias;
  const p = new Params();
  const where: string[] = [];
  if (!req.showDeleted) where.push(`${a}.deleted_at IS NULL`);
  if (filter) where.push(compile(spec, filter, p, custom));
  const baseWhere = where.length ? where.join(" AND ") : "true";
  const baseParams = [...p.values];

  // The id breaks ties, in the direction of the last key (so "create_time desc" walks its index).
  const idDesc = order[order.length - 1]!.desc;
  const keys = [
    ...order.map((k) => {
      const col = columnOf(spec, k.field, custom);
      return { expr: sortExpr(spec, k, custom), desc: k.desc, cast: col.cast ?? castOf[k.type], notNull: col.notNull === true };
    }),
    { expr: `${a}.id`, desc: idDesc, cast: "uuid", notNull: true },
  ];
  if (cursor) where.push(keyset(keys, cursor, p));
  const size = o.maxPageSize ? Math.min(Math.max(req.pageSize, 1), o.maxPageSize) : pageSizeOf(req.pageSize);
  const orderSql = keys.map((k) => `${k.expr} ${k.desc ? "DESC" : "ASC"} NULLS LAST`).join(", ");
  const cursorCols = keys.map((k, i) => `(${k.expr})::text AS _k${i}`).join(", ");
  const { rows } = await sql.query<R>(
    `SELECT ${spec.select}, ${cursorCols} FROM ${spec.from} WHERE ${where.join(" AND ") || "true"} ORDER BY ${orderSql} LIMIT ${size + 1}`,
    p.values,
  );
  const page = rows.slice(0, size);
  const last = page[page.length - 1];
  const more = rows.length > size;
  const nextPageToken = more && last ? encodePageToken(fingerprint, { keys: keys.map((_, i) => (last[`_k${i}`] as string | null) ?? null) }) : "";

  let totalSize: bigint;
  let totalIsExact: boolean;
  if (o.total === false) {
    totalSize = 0n;
    totalIsExact = false;
  } else if (!cursor && !more) {
    totalSize = BigInt(page.length);
    totalIsExact = true;
  } else if (req.exactTotal) {
    const { rows: c } = await sql.query<{ n: string }>(`SELECT count(*) AS n FROM ${spec.from} WHERE ${baseWhere}`, baseParams);
    totalSize = BigInt(c[0]!.n);
    totalIsExact = true;
  } else {
    totalSize = await estimate(sql, `SELECT 1 FROM ${spec.from} WHERE ${baseWhere}`, baseParams);
    totalIsExact = false;
  }
  return { rows: page, nextPageToken, totalSize, totalIsExact };
}

type Key = { expr: string; desc: boolean; cast: string; notNull: boolean };

/**
 * Records after the cursor: OR over i of (keys before i equal, key i strictly after); empty values
 * are last. The trailing keys that are never empty and run in one direction (at least the id; all
 * of "create_time desc" and its id) are compared as one row, ROW(a, b) < ROW($1, $2), which
 * PostgreSQL uses as the index scan's start: without it a page deep in a list scanned and
 * discarded every row before it (page 45 of a million-row export read 900,000 index entries).
 */
function keyset(keys: Key[], cursor: Cursor, p: Params): string {
  const values = keys.map((_, i) => cursor.keys[i] ?? null);
  let tail = keys.length - 1;
  while (tail > 0 && keys[tail - 1]!.notNull && keys[tail - 1]!.desc === keys[tail]!.desc && values[tail - 1] !== null) tail--;
  if (values.slice(tail).some((v) => v === null)) tail = keys.length; // (an id is never empty: a foreign token)
  const ors: string[] = [];
  const eqs: string[] = [];
  for (let i = 0; i < tail; i++) {
    const k = keys[i]!;
    const v = values[i]!;
    if (v === null) {
      // Nothing but other empty values follows an empty value.
      eqs.push(`${k.expr} IS NULL`);
      continue;
    }
    const param = p.add(v, k.cast);
    const after = `${k.expr} ${k.desc ? "<" : ">"} ${param}`;
    ors.push(`(${[...eqs, k.notNull ? after : `(${after} OR ${k.expr} IS NULL)`].join(" AND ")})`);
    eqs.push(`${k.expr} = ${param}`);
  }
  if (tail < keys.length) {
    const rest = keys.slice(tail);
    const row = `ROW(${rest.map((k) => k.expr).join(", ")}) ${rest[0]!.desc ? "<" : ">"} ROW(${rest.map((k, j) => p.add(values[tail + j]!, k.cast)).join(", ")})`;
    ors.push(`(${[...eqs, row].join(" AND ")})`);
  }
  return ors.length ? `(${ors.join(" OR ")})` : "false";
}

/** The planner's row estimate for a query (EXPLAIN: no rows are read). */
export async function estimate(sql: Sql, query: string, params: unknown[]): Promise<bigint> {
  const { rows } = await sql.query<{ "QUERY PLAN": unknown }>(`EXPLAIN (FORMAT JSON) ${query}`, params);
  const raw = rows[0]?.["QUERY PLAN"];
  const plan = (typeof raw === "string" ? JSON.parse(raw) : raw) as { Plan?: { "Plan Rows"?: number } }[];
  return BigInt(Math.max(0, Math.round(plan[0]?.Plan?.["Plan Rows"] ?? 0)));
}

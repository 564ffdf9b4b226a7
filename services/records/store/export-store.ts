/**
 * Exports in the store (ExportPageDB): one keyset page of a list (the List RPCs' filter tree,
 * order_by and page tokens: lists.ts): its ids by the list's keyset query, then those records'
 * cells as CSV by COPY … TO STDOUT (FORMAT csv), quoting done in C: cells built and quoted by SQL
 * functions ran ~10× slower (20–40k rows/s against 200–300k). The records service streams the pages. The first page
 * writes the export to the audit log (action "records.exported").
 */
import type { JsonObject } from "@bufbuild/protobuf";
import { toJson } from "@bufbuild/protobuf";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { actorOf, invalid, principalOf, type Actor } from "@crm/kit";
import type { DbImportService } from "@crm/gen/crm/db/v1/db_records_import_pb";
import { FilterSchema, ObjectType } from "@crm/gen/crm/records/v1/common_pb";
import type { Sql } from "@crm/dbservice/db";
import type { Db } from "@crm/dbservice/db";
import { to as copyTo } from "pg-copy-streams";
import { isId } from "../src/rules.js";
import { createRequire } from "node:module";
import type { ObjectKind } from "../src/rules.js";
import type { Acting } from "./acting.js";
import { companyList } from "./companies.js";
import { loadDefs } from "./custom.js";
import { dealList } from "./deals.js";
import { runList, type ColumnSql, type ListSpec } from "./lists.js";
import { personList } from "./people.js";

/** What an export may ask: columns, rows per page. */
export const EXPORT_LIMITS = { columns: 200, page: 20_000 } as const;

/** The audit log as dbservice hands it in (the admin store's; a store imports no other store). */
export interface ExportAudit {
  record(sql: Sql, events: { action: string; actor: Actor; target?: { type: string; id: string }; details?: Record<string, string> }[]): Promise<void>;
  afterCommit(): void;
}

const specs: Partial<Record<number, ListSpec>> = { [ObjectType.COMPANY]: companyList, [ObjectType.PERSON]: personList, [ObjectType.DEAL]: dealList };

/** The standard columns of each type, in the order an export without columns writes them. */
export const exportColumns: Record<string, readonly string[]> = {
  company: ["id", "name", "domain", "address", "industry", "size", "tags", "owner_id", "create_time", "update_time"],
  person: ["id", "first_name", "last_name", "emails", "phones", "job_title", "company_ids", "owner_id", "create_time", "update_time"],
  deal: ["id", "name", "pipeline_id", "stage_id", "amount_minor", "currency_code", "status", "expected_close_date", "company_id", "person_ids", "owner_id", "create_time", "update_time", "close_time"],
};
const times = new Set(["create_time", "update_time", "delete_time", "close_time", "stage_enter_time"]);
const lists = new Set(["emails", "phones", "tags"]);

/** Standard columns typed as numbers: written as they are, never guarded against formulas. */
const numbers = new Set(["size", "amount_minor"]);

/**
 * A column's value as text in SQL ('' when empty). Text that a spreadsheet would run as a formula
 * (= + - @ tab CR first) gets a leading apostrophe (crm_csv_guard, migration 172); numbers typed
 * as numbers (size, amount_minor, a custom field's JSON number), ids and times are left alone.
 */
function cellSql(spec: ListSpec, name: string, col: ColumnSql | undefined): string | undefined {
  if (name.startsWith("custom.")) {
    const key = spec.alias + ".custom -> " + `'${name.slice(7).replace(/'/g, "''")}'`;
    return `CASE jsonb_typeof(${key}) WHEN 'array' THEN (SELECT string_agg(crm_csv_guard(v), '; ') FROM jsonb_array_elements_text(${key}) v) WHEN 'number' THEN ${key} #>> '{}' ELSE crm_csv_guard(${key} #>> '{}') END`;
  }
  if (!col) return undefined;
  if (col.links) return `(SELECT string_agg((${col.links.elem})::text, '; ') FROM ${col.links.from} WHERE ${col.links.join})`;
  if (!col.expr) return undefined;
  if (times.has(name)) return `to_char(${col.expr} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;
  if (lists.has(name)) return `crm_csv_guard(array_to_string(${col.expr}, '; '))`;
  if (numbers.has(name)) return `(${col.expr})::text`;
  return `crm_csv_guard((${col.expr})::text)`;
}

const quoteCsv = (s: string) => {
  const t = /^[=+\-@\t\r]/.test(s) ? `'${s}` : s;
  return /[",\r\n]|^\s|\s$/.test(t) ? `"${t.replace(/"/g, '""')}"` : t;
};

/** pg's own conversion of a parameter to its text (arrays, dates, JSON), for inlining it in COPY. */
const prepareValue = (createRequire(import.meta.url)("pg/lib/utils.js") as { prepareValue: (v: unknown) => unknown }).prepareValue;
/** Marks the list query a page's COPY wraps (runList's other queries run as they are). */
const MARK = "/* crm-export */";

/** What a COPY … TO STDOUT writes, whole (one page: at most a few MB). */
async function copyOut(sql: Sql, text: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of sql.query(copyTo(text)) as AsyncIterable<Buffer>) parts.push(c);
  return Buffer.concat(parts);
}

/** COPY's CSV ends records with LF; an export's end with CRLF (RFC 4180). Line breaks inside quoted cells stay as they are. */
export function crlf(csv: Buffer): Buffer {
  let n = 0;
  let quoted = false;
  for (const b of csv) {
    if (b === 0x22) quoted = !quoted;
    else if (b === 0x0a && !quoted) n++;
  }
  if (!n) return csv;
  const out = Buffer.allocUnsafe(csv.length + n);
  let j = 0;
  quoted = false;
  for (const b of csv) {
    if (b === 0x22) quoted = !quoted;
    else if (b === 0x0a && !quoted) out[j++] = 0x0d;
    out[j++] = b;
  }
  return out;
}

export function exportStore(
  db: Db,
  tx: <T>(ctx: HandlerContext, fn: (sql: Sql, a: Acting) => Promise<T>) => Promise<T>,
  audit?: ExportAudit,
): Partial<ServiceImpl<typeof DbImportService>> {
  void db;
  return {
    async exportPageDB(r, ctx) {
      const req = r.request;
      const spec = specs[req?.objectType ?? 0];
      if (!req || !spec) throw invalid([{ field: "request.objectType", description: "must be OBJECT_TYPE_COMPANY, OBJECT_TYPE_PERSON or OBJECT_TYPE_DEAL" }]);
      if (req.columns.length > EXPORT_LIMITS.columns) throw invalid([{ field: "request.columns", description: `at most ${EXPORT_LIMITS.columns} columns` }]);
      const size = Math.min(Math.max(r.pageSize || 5000, 1), EXPORT_LIMITS.page);
      const kind = spec.kind as ObjectKind;
      const out = await tx(ctx, async (sql) => {
        const defs = (await loadDefs(sql, kind as "company")).filter((d) => !d.archived);
        const columns = req.columns.length ? req.columns.map((c) => c.trim()) : [...exportColumns[kind]!, ...defs.map((d) => `custom.${d.key}`)];
        const cells = columns.map((c, i) => {
          const custom = c.startsWith("custom.") && defs.some((d) => `custom.${d.key}` === c);
          const e = c.startsWith("custom.") && !custom ? undefined : cellSql(spec, c, spec.columns[c]);
          if (!e) throw invalid([{ field: `request.columns[${i}]`, description: `${JSON.stringify(c.slice(0, 80))} is not a field of ${kind} (a standard field's proto name or custom.<key> of an active custom field)` }]);
          return `NULLIF(${e}, '') AS c${i}`;
        });
        // The page's ids and the next page token: the List RPCs' keyset query, ids only.
        const res = await runList<{ _id: string } & Record<string, unknown>>(
          sql,
          { ...spec, select: `${spec.alias}.id AS _id` },
          { filter: req.filter, orderBy: req.orderBy, pageSize: size, pageToken: r.pageToken, showDeleted: req.showDeleted, exactTotal: false },
          { maxPageSize: EXPORT_LIMITS.page, total: false },
        );
        if (r.withHeader && audit) {
          await audit.record(sql, [{
            action: "records.exported",
            actor: actorOf(principalOf(ctx)),
            target: { type: kind, id: "" },
            details: {
              object_type: kind,
              filter: req.filter ? JSON.stringify(toJson(FilterSchema, req.filter) as JsonObject) : "",
              order_by: req.orderBy,
              columns: columns.join(","),
              show_deleted: String(req.showDeleted),
            },
          }]);
        }
        const head = Buffer.from(r.withHeader ? columns.map(quoteCsv).join(",") + "\r\n" : "");
        // Those records' cells as CSV made by COPY (C code), in the page's order: the same list
        // query over just those ids (hashed = ANY), so a record written meanwhile neither slips in
        // nor pushes one out. COPY takes no parameters: the query's are inlined as literals.
        const ids = res.rows.map((x) => String(x._id));
        if (!ids.length) return { data: head, rows: 0n, nextPageToken: res.nextPageToken };
        if (!ids.every(isId)) throw new Error("export: a record id that is not a UUID");
        const [table, alias] = spec.from.split(" ");
        let page: { text: string; values: unknown[] } | undefined;
        const capture = new Proxy(sql, {
          get: (t, k) => (k === "query" ? (text: string, values: unknown[]) => (text.startsWith(`SELECT ${MARK}`) ? ((page = { text, values }), Promise.resolve({ rows: [] })) : t.query(text, values)) : Reflect.get(t, k)),
        });
        await runList(
          capture,
          { ...spec, from: `(SELECT * FROM ${table} WHERE id = ANY('{${ids.join(",")}}'::uuid[])) ${alias}`, select: `${MARK} ${cells.join(", ")}` },
          { filter: req.filter, orderBy: req.orderBy, pageSize: size, pageToken: r.pageToken, showDeleted: req.showDeleted, exactTotal: false },
          { maxPageSize: EXPORT_LIMITS.page, total: false },
        );
        if (!page) throw new Error("export: the list query was not made");
        const inlined = page.text.replace(/\$(\d+)/g, (_m, n: string) => {
          const v = prepareValue(page!.values[Number(n) - 1]);
          return v === null || v === undefined ? "NULL" : sql.escapeLiteral(String(v));
        });
        const body = await copyOut(sql, `COPY (SELECT ${cells.map((_, i) => `c${i}`).join(", ")} FROM (${inlined}) crm_page) TO STDOUT (FORMAT csv)`);
        return { data: Buffer.concat([head, crlf(body)]), rows: BigInt(ids.length), nextPageToken: res.nextPageToken };
      });
      if (r.withHeader) audit?.afterCommit();
      return out;
    },
  };
}

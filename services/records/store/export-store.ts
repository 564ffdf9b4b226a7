/**
 * Exports in the store (ExportPageDB): one keyset page of a list (the List RPCs' filter tree,
 * order_by and page tokens: lists.ts) as CSV by ONE statement, the list's own keyset query inside
 * COPY … TO STDOUT (FORMAT csv), quoting done in C: cells built and quoted by SQL functions ran
 * ~10× slower (20–40k rows/s against 200–300k). The next page's keys ride in a last column (pageCsv
 * cuts it). A million people export at ~220,000 rows/s on 2 cores (was 54,000 with a query for the
 * page's ids, then COPY over those ids). The records service streams the pages. The first page
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

/**
 * A page as COPY wrote it, made into the export's: each record's last field (the next page's keys
 * in hex, or empty; never a comma in it) cut off, records ended with CRLF (RFC 4180; line breaks
 * inside quoted cells stay as they are), at most `size` records (the list reads one more to know
 * whether another page follows). `keys`: the `size`-th record's last field, decoded. The scan
 * jumps from quote to quote and line break to line break (Buffer.indexOf), not byte by byte.
 */
export function pageCsv(csv: Buffer, size: number): { csv: Buffer; count: number; keys?: unknown[] } {
  const out = Buffer.allocUnsafe(csv.length);
  let o = 0;
  let count = 0;
  let keys: unknown[] | undefined;
  let pos = 0;
  let quote = csv.indexOf(0x22);
  while (pos < csv.length) {
    const start = pos;
    let end: number;
    for (;;) {
      const lf = csv.indexOf(0x0a, pos);
      if (lf === -1) throw new Error("export: COPY's CSV does not end with a line break");
      if (quote === -1 || lf < quote) {
        end = lf;
        break;
      }
      // A quoted cell: on past its closing quote (a doubled quote inside closes and opens again).
      const close = csv.indexOf(0x22, quote + 1);
      if (close === -1) throw new Error("export: a quoted cell in COPY's CSV does not end");
      pos = close + 1;
      quote = csv.indexOf(0x22, pos);
    }
    count++;
    const cut = csv.lastIndexOf(0x2c, end);
    if (cut < start) throw new Error("export: a CSV record without its keys column");
    if (count === size && cut + 1 < end) keys = JSON.parse(Buffer.from(csv.toString("latin1", cut + 1, end), "hex").toString("utf8")) as unknown[];
    if (count <= size) {
      o += csv.copy(out, o, start, cut);
      out[o++] = 0x0d;
      out[o++] = 0x0a;
    }
    pos = end + 1;
  }
  return { csv: out.subarray(0, o), count, ...(keys ? { keys } : {}) };
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
        // The page as CSV made by COPY (C code): the List RPCs' keyset query itself, its values
        // inlined (COPY takes no parameters), in one statement, so the page is one snapshot. The
        // next page's keys come back in an extra last column, filled only on the page's last row.
        let page: { csv: Buffer; count: number } | undefined;
        const capture = new Proxy(sql, {
          get: (t, k) =>
            k === "query"
              ? (text: string, values: unknown[]) => {
                  if (!text.startsWith(`SELECT ${MARK}`)) return t.query(text, values);
                  const keys = [...text.matchAll(/ AS _k(\d+)\b/g)].map((m) => `_k${m[1]}`);
                  const inlined = text.replace(/\$(\d+)/g, (_m, n: string) => {
                    const v = prepareValue(values[Number(n) - 1]);
                    return v === null || v === undefined ? "NULL" : sql.escapeLiteral(String(v));
                  });
                  const last = `CASE WHEN row_number() OVER () = ${size} THEN encode(convert_to(json_build_array(${keys.join(", ")})::text, 'UTF8'), 'hex') END`;
                  return copyOut(t, `COPY (SELECT ${cells.map((_, i) => `c${i}`).join(", ")}, ${last} FROM (${inlined}) crm_page) TO STDOUT (FORMAT csv)`).then((body) => {
                    const out = pageCsv(body, size);
                    page = { csv: out.csv, count: Math.min(out.count, size) };
                    // What runList reads of the rows: how many, and the keys of the page's last.
                    const rows: Record<string, unknown>[] = Array.from({ length: out.count }, () => ({}));
                    if (out.keys) keys.forEach((k, i) => (rows[size - 1]![k] = out.keys![i]));
                    return { rows };
                  });
                }
              : Reflect.get(t, k),
        });
        const res = await runList(
          capture,
          { ...spec, select: `${MARK} ${cells.join(", ")}` },
          { filter: req.filter, orderBy: req.orderBy, pageSize: size, pageToken: r.pageToken, showDeleted: req.showDeleted, exactTotal: false },
          { maxPageSize: EXPORT_LIMITS.page, total: false },
        );
        if (!page) throw new Error("export: the list query was not made");
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
        return { data: Buffer.concat([head, page.csv]), rows: BigInt(page.count), nextPageToken: res.nextPageToken };
      });
      if (r.withHeader) audit?.afterCommit();
      return out;
    },
  };
}

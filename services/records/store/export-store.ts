/**
 * Exports in the store (ExportPageDB): one keyset page of a list (the List RPCs' filter tree,
 * order_by and page tokens: lists.ts) as CSV lines made by PostgreSQL itself, so a page of
 * 20,000 rows is one query and one string; the records service streams the pages. The first page
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
          return `crm_csv_cell(${e})`;
        });
        const line = cells.join(" || ',' || ");
        const res = await runList<{ line: string } & Record<string, unknown>>(
          sql,
          { ...spec, select: `${line} AS line` },
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
        const head = r.withHeader ? columns.map(quoteCsv).join(",") + "\r\n" : "";
        const body = res.rows.length ? res.rows.map((x) => x.line).join("\r\n") + "\r\n" : "";
        return { data: Buffer.from(head + body), rows: BigInt(res.rows.length), nextPageToken: res.nextPageToken };
      });
      if (r.withHeader) audit?.afterCommit();
      return out;
    },
  };
}

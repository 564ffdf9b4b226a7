/** crm companies|people|deals list: a page (or all) of records, filtered and sorted, as a table. */
import { toJson, type DescMessage, type JsonObject } from "@bufbuild/protobuf";
import type { Command } from "commander";
import { CompanySchema, CompanyService } from "@crm/gen/crm/records/v1/company_pb";
import { DealSchema, DealService } from "@crm/gen/crm/records/v1/deal_pb";
import { PersonSchema, PersonService } from "@crm/gen/crm/records/v1/person_pb";
import { PipelineService } from "@crm/gen/crm/records/v1/pipeline_pb";
import type { Filter } from "@crm/gen/crm/records/v1/common_pb";
import type { Context, Wrap } from "../context.js";
import { Exit, usageError } from "../errors.js";
import { parseFilters } from "../filter.js";
import { cell, enumWord, list as names, money, table } from "../format.js";
import { defaultColumns, type ObjectName } from "../objects.js";
import type { Api } from "../session.js";

export const collect = (value: string, previous: string[]) => [...previous, value];

export interface ListOptions {
  filter: string[];
  columns?: string;
  orderBy?: string;
  limit: string;
  all?: boolean;
  deleted?: boolean;
}

interface Page {
  records: unknown[];
  schema: DescMessage;
  nextPageToken: string;
  totalSize: bigint;
  totalIsExact: boolean;
}

type Lister = (api: Api, req: { filter?: Filter; orderBy: string; pageSize: number; pageToken: string; showDeleted: boolean }) => Promise<Page>;

const listers: Record<ObjectName, Lister> = {
  companies: async (api, req) => {
    const r = await api.client(CompanyService).listCompanies(req);
    return { records: r.companies, schema: CompanySchema, nextPageToken: r.nextPageToken, totalSize: r.totalSize, totalIsExact: r.totalIsExact };
  },
  people: async (api, req) => {
    const r = await api.client(PersonService).listPeople(req);
    return { records: r.people, schema: PersonSchema, nextPageToken: r.nextPageToken, totalSize: r.totalSize, totalIsExact: r.totalIsExact };
  },
  deals: async (api, req) => {
    const r = await api.client(DealService).listDeals(req);
    return { records: r.deals, schema: DealSchema, nextPageToken: r.nextPageToken, totalSize: r.totalSize, totalIsExact: r.totalIsExact };
  },
};

export function registerRecords(program: Command, act: Wrap) {
  for (const object of ["companies", "people", "deals"] as const) {
    program
      .command(object)
      .description(`your ${object}`)
      .command("list")
      .description(`list ${object} (a table; --json for every field)`)
      .option("-f, --filter <expr>", 'a condition, e.g. "name~acme" (repeat: all must hold; crm filters)', collect, [])
      .option("-c, --columns <names>", `columns by API name (default ${defaultColumns[object].join(",")}; custom.<key> for custom fields${object === "deals" ? "; amount and stage: the amount in its currency, the stage's name" : ""})`)
      .option("--order-by <fields>", 'e.g. "name" or "create_time desc"')
      .option("-n, --limit <n>", "at most this many records", "50")
      .option("--all", "every matching record (pages through them)")
      .option("--deleted", "include records in the trash")
      .action(act((ctx: Context, opts: ListOptions) => listRecords(ctx, object, opts)));
  }
}

export async function listRecords(ctx: Context, object: ObjectName, opts: ListOptions): Promise<number> {
  const limit = opts.all ? Infinity : Number(opts.limit);
  if (!opts.all && (!Number.isInteger(limit) || limit < 1)) throw usageError(`--limit ${JSON.stringify(opts.limit)}: a whole number from 1 (or --all)`);
  const columns = opts.columns === undefined ? defaultColumns[object] : names(opts.columns);
  if (columns.length === 0) throw usageError("--columns names no column");
  const filter = parseFilters(opts.filter);
  const api = await ctx.connect();
  const rows: unknown[] = [];
  let schema: DescMessage | undefined;
  let total = { size: 0n, exact: true };
  let pageToken = "";
  do {
    const page = await listers[object](api, { ...(filter ? { filter } : {}), orderBy: opts.orderBy ?? "", pageSize: Math.min(500, limit), pageToken, showDeleted: Boolean(opts.deleted) });
    if (!schema) total = { size: page.totalSize, exact: page.totalIsExact };
    schema = page.schema;
    rows.push(...page.records.slice(0, limit - rows.length));
    pageToken = page.nextPageToken;
  } while (pageToken && rows.length < limit);
  if (ctx.json) {
    ctx.out(`${JSON.stringify(rows.map((r) => toJson(schema!, r as never)))}\n`);
    return Exit.ok;
  }
  const protoRows = rows.map((r) => readable(schema!, toJson(schema!, r as never, { useProtoFieldName: true }) as JsonObject));
  if (object === "deals") await addDealCells(api, protoRows, columns);
  ctx.out(table(columns.map((c) => c.toUpperCase()), protoRows.map((r) => columns.map((c) => cell(r, c)))));
  const more = rows.length < Number(total.size) ? ` of ${total.exact ? "" : "about "}${total.size}` : "";
  ctx.note(`${rows.length}${more} ${object}${more && !opts.all ? " (--all or --limit for more)" : ""}`);
  return Exit.ok;
}

/** A record as the table shows it: enum values as words ("DEAL_STATUS_WON" → "won"), as exports write them. */
function readable(schema: DescMessage, row: JsonObject): JsonObject {
  for (const f of schema.fields) {
    const v = row[f.name];
    if (f.fieldKind === "enum" && typeof v === "string") row[f.name] = enumWord(v, f.enum.sharedPrefix);
  }
  return row;
}

/** The deals' own columns for people: `amount` (in its currency) and, when shown, `stage` (its name: one ListPipelines). */
async function addDealCells(api: Api, rows: JsonObject[], columns: string[]) {
  const stages = new Map<string, string>();
  if (columns.includes("stage") && rows.length) {
    for (const p of (await api.client(PipelineService).listPipelines({})).pipelines) for (const s of p.stages) stages.set(s.id, s.name);
  }
  for (const r of rows) {
    r.amount = money(r.amount_minor as string | undefined, r.currency_code as string | undefined);
    r.stage = stages.get(r.stage_id as string) ?? (r.stage_id as string | undefined) ?? "";
  }
}

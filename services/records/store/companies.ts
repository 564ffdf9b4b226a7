/** Companies: rec_companies. */
import type { JsonObject, MessageInitShape } from "@bufbuild/protobuf";
import { AppError, invalid, type Violation } from "@crm/kit";
import type { CompanySchema, Company } from "@crm/gen/crm/records/v1/company_pb";
import type { Sql } from "@crm/dbservice/db";
import { applyCustom, customScope, customSnapshot } from "../src/rules.js";
import { checkCompany, diff, etagOf, updatable, type CompanyInput, type Snapshot } from "../src/rules.js";
import type { Acting, ConstraintInfo } from "./acting.js";
import { customPatch, patchParams, visibleCustom } from "./custom.js";
import type { ListSpec } from "./lists.js";
import { assigneeFor, iso, lockForChange, notFound, ownerFor, purgeTime, ts, writeTimeline } from "./shared.js";

export interface CompanyRow {
  id: string;
  name: string;
  domain: string;
  address: string;
  industry: string;
  size: number | null;
  owner_id: string;
  assignee_id: string | null;
  tags: string[];
  custom: JsonObject;
  version: string;
  created_at: Date;
  updated_at: Date;
  deleted_at: Date | null;
}

const COLS = `c.id, c.name, c.domain, c.address, c.industry, c.size, c.owner_id, c.assignee_id, c.tags, c.version, c.created_at, c.updated_at, c.deleted_at, ${visibleCustom("c", "company")}`;
const SELECT = `SELECT ${COLS} FROM rec_companies c`;

export const companyConstraints: Record<string, ConstraintInfo> = {
  rec_companies_domain_key: { field: "company.domain", reason: "already_exists", message: "another company of yours has this domain (look in the trash too)" },
  rec_companies_name_check: { field: "company.name", reason: "invalid_argument", message: "must be 1..200 characters" },
  rec_companies_domain_check: { field: "company.domain", reason: "invalid_argument", message: 'must be a web domain such as "example.com"' },
  rec_companies_address_check: { field: "company.address", reason: "invalid_argument", message: "must be at most 500 characters" },
  rec_companies_industry_check: { field: "company.industry", reason: "invalid_argument", message: "must be at most 100 characters" },
  rec_companies_size_check: { field: "company.size", reason: "invalid_argument", message: "must be 0..10000000" },
  rec_companies_tags_check: { field: "company.tags", reason: "invalid_argument", message: "at most 50 distinct tags of 1..50 characters" },
  rec_companies_company_id_owner_id_fkey: { field: "company.ownerId", reason: "not_found", message: "names no user of your company" },
  rec_companies_assignee_fkey: { field: "company.assigneeId", reason: "not_found", message: "names no user of your company" },
};

export function toCompany(r: CompanyRow): MessageInitShape<typeof CompanySchema> {
  return {
    id: r.id,
    name: r.name,
    domain: r.domain,
    address: r.address,
    industry: r.industry,
    size: r.size ?? undefined,
    ownerId: r.owner_id,
    assigneeId: r.assignee_id ?? "",
    tags: r.tags,
    custom: r.custom,
    etag: etagOf(r.version),
    createTime: ts(r.created_at),
    updateTime: ts(r.updated_at),
    deleteTime: ts(r.deleted_at),
    purgeTime: purgeTime(r.deleted_at),
  };
}

function snapshot(r: CompanyRow): Snapshot {
  return { name: r.name, domain: r.domain, address: r.address, industry: r.industry, size: r.size, owner_id: r.owner_id, assignee_id: r.assignee_id, tags: r.tags, ...customSnapshot(r.custom) };
}

export const companyList: ListSpec = {
  kind: "company",
  from: "rec_companies c",
  alias: "c",
  select: COLS,
  columns: {
    id: { expr: "c.id", notNull: true },
    owner_id: { expr: "c.owner_id" },
    assignee_id: { expr: "c.assignee_id" },
    create_time: { expr: "c.created_at", notNull: true },
    update_time: { expr: "c.updated_at", notNull: true },
    delete_time: { expr: "c.deleted_at" },
    name: { expr: "c.name" },
    domain: { expr: "c.domain" },
    address: { expr: "c.address" },
    industry: { expr: "c.industry" },
    size: { expr: "c.size" },
    tags: { expr: "c.tags" },
  },
};

/** The standard fields and the custom values, every bad one named at once. */
async function checked(sql: Sql, c: Company, paths: readonly string[], creating: boolean) {
  const v: Violation[] = [];
  const input: CompanyInput = checkCompany(c, paths, v);
  const patch = await customPatch(sql, "company", c.custom, creating ? "all" : customScope(paths), v, "company");
  return { input, patch };
}

async function domainFree(sql: Sql, domain: string | undefined, self: string | null): Promise<void> {
  if (!domain) return;
  const { rows } = await sql.query<{ id: string; deleted_at: Date | null }>("SELECT id, deleted_at FROM rec_companies WHERE domain = $1 AND id IS DISTINCT FROM $2", [domain, self]);
  const other = rows[0];
  if (other) {
    const where = other.deleted_at ? " (in the trash: undelete or purge it)" : "";
    throw new AppError("already_exists", `company ${other.id}${where} has the domain ${domain} already`, [{ field: "company.domain", description: `is the domain of company ${other.id}${where}` }]);
  }
}

export async function getCompany(sql: Sql, id: string): Promise<CompanyRow> {
  const { rows } = await sql.query<CompanyRow>(`${SELECT} WHERE c.id = $1`, [id]);
  if (!rows[0]) throw notFound("company", id);
  return rows[0];
}

export async function createCompany(sql: Sql, a: Acting, c: Company): Promise<CompanyRow> {
  const { input, patch } = await checked(sql, c, updatable.company, true);
  const owner = await ownerFor(sql, a, input.owner_id, "company.ownerId");
  const assignee = await assigneeFor(sql, a, input.assignee_id ?? null, null, "company.assigneeId");
  await domainFree(sql, input.domain, null);
  const { rows } = await sql.query<CompanyRow>(
    `INSERT INTO rec_companies AS c (company_id, name, domain, address, industry, size, owner_id, tags, custom, assignee_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING ${COLS}`,
    [a.companyId, input.name, input.domain, input.address, input.industry, input.size, owner, input.tags, JSON.stringify(patch.set), assignee],
  );
  const row = rows[0]!;
  await writeTimeline(sql, a, "company", row.id, "created", diff({}, snapshot(row)));
  return row;
}

export async function updateCompany(sql: Sql, a: Acting, id: string, c: Company, paths: string[], etag: bigint | undefined): Promise<CompanyRow> {
  const { input, patch } = await checked(sql, c, paths, false);
  const before = await lockForChange<CompanyRow>(sql, a, "company", SELECT, id, { etag });
  const next = { ...before, ...input, custom: applyCustom(before.custom, patch) } as CompanyRow;
  if (paths.includes("owner_id")) next.owner_id = await ownerFor(sql, a, input.owner_id ?? before.owner_id, "company.ownerId");
  if (paths.includes("assignee_id")) next.assignee_id = await assigneeFor(sql, a, input.assignee_id ?? null, before, "company.assigneeId");
  const changes = diff(snapshot(before), snapshot(next));
  if (changes.length === 0) return before;
  if (input.domain !== undefined && input.domain !== before.domain) await domainFree(sql, input.domain, id);
  const { rows } = await sql.query<CompanyRow>(
    `UPDATE rec_companies AS c SET name = $2, domain = $3, address = $4, industry = $5, size = $6, owner_id = $7, tags = $8,
            custom = (c.custom - $9::text[]) || $10::jsonb, assignee_id = $11, version = version + 1, updated_at = now()
     WHERE c.id = $1 RETURNING ${COLS}`,
    [id, next.name, next.domain, next.address, next.industry, next.size, next.owner_id, next.tags, ...patchParams(patch), next.assignee_id],
  );
  await writeTimeline(sql, a, "company", id, "updated", changes);
  return rows[0]!;
}

/** Moves to the trash (already there: unchanged) or back. */
export async function trashCompany(sql: Sql, a: Acting, id: string, trash: boolean, etag?: bigint): Promise<CompanyRow> {
  const before = await lockForChange<CompanyRow>(sql, a, "company", SELECT, id, { etag, trash: "allow" });
  if (Boolean(before.deleted_at) === trash) return before;
  const { rows } = await sql.query<CompanyRow>(
    `UPDATE rec_companies AS c SET deleted_at = ${trash ? "now()" : "NULL"}, version = version + 1, updated_at = now() WHERE c.id = $1 RETURNING ${COLS}`,
    [id],
  );
  const after = rows[0]!;
  await writeTimeline(sql, a, "company", id, trash ? "deleted" : "restored", [{ field: "delete_time", before: iso(before.deleted_at), after: iso(after.deleted_at) }]);
  return after;
}

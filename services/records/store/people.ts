/** People: rec_people, their e-mail addresses (rec_person_emails: one person per address) and company links. */
import type { JsonObject, MessageInitShape } from "@bufbuild/protobuf";
import { AppError, invalid, type Violation } from "@crm/kit";
import type { Person, PersonSchema } from "@crm/gen/crm/records/v1/person_pb";
import type { Sql } from "@crm/dbservice/db";
import { applyCustom, customScope, customSnapshot } from "../src/rules.js";
import { checkPerson, diff, emailKey, etagOf, updatable, type PersonInput, type Snapshot } from "../src/rules.js";
import type { Acting, ConstraintInfo } from "./acting.js";
import { customPatch, patchParams, visibleCustom } from "./custom.js";
import type { ListSpec } from "./lists.js";
import { iso, lockForChange, notFound, ownerFor, purgeTime, ts, writeTimeline } from "./shared.js";

interface Link {
  company_id: string;
  role: string;
}

export interface PersonRow {
  id: string;
  first_name: string;
  last_name: string;
  emails: string[];
  phones: string[];
  job_title: string;
  owner_id: string;
  companies: Link[];
  custom: JsonObject;
  version: string;
  created_at: Date;
  updated_at: Date;
  deleted_at: Date | null;
}

const LINKS = `coalesce((SELECT jsonb_agg(jsonb_build_object('company_id', l.rec_company_id, 'role', l.role) ORDER BY l.ord)
                        FROM rec_person_companies l WHERE l.person_id = p.id), '[]'::jsonb) AS companies`;
const COLS = `p.id, p.first_name, p.last_name, p.emails, p.phones, p.job_title, p.owner_id, p.version, p.created_at, p.updated_at, p.deleted_at, ${LINKS}, ${visibleCustom("p", "person")}`;
const SELECT = `SELECT ${COLS} FROM rec_people p`;

export const personConstraints: Record<string, ConstraintInfo> = {
  rec_person_emails_address_key: { field: "person.emails", reason: "already_exists", message: "an address belongs to another person of yours (look in the trash too)" },
  rec_people_name_check: { field: "person.firstName", reason: "invalid_argument", message: "give a first name, a last name or both" },
  rec_people_first_name_check: { field: "person.firstName", reason: "invalid_argument", message: "must be at most 100 characters" },
  rec_people_last_name_check: { field: "person.lastName", reason: "invalid_argument", message: "must be at most 100 characters" },
  rec_people_emails_check: { field: "person.emails", reason: "invalid_argument", message: "at most 20 distinct addresses" },
  rec_people_phones_check: { field: "person.phones", reason: "invalid_argument", message: "at most 20 distinct numbers in E.164, e.g. +14155550100" },
  rec_people_job_title_check: { field: "person.jobTitle", reason: "invalid_argument", message: "must be at most 200 characters" },
  rec_person_companies_role_check: { field: "person.companies", reason: "invalid_argument", message: "a role is at most 100 characters" },
  rec_people_company_id_owner_id_fkey: { field: "person.ownerId", reason: "not_found", message: "names no user of your company" },
  rec_person_companies_company_id_rec_company_id_fkey: { field: "person.companies", reason: "not_found", message: "names a company that is not in your company's records" },
  rec_person_emails_address_lower_check: { field: "person.emails", reason: "invalid_argument", message: "must be e-mail addresses" },
};

export function toPerson(r: PersonRow): MessageInitShape<typeof PersonSchema> {
  return {
    id: r.id,
    firstName: r.first_name,
    lastName: r.last_name,
    emails: r.emails,
    phones: r.phones,
    jobTitle: r.job_title,
    companies: r.companies.map((l) => ({ companyId: l.company_id, role: l.role })),
    ownerId: r.owner_id,
    custom: r.custom,
    etag: etagOf(r.version),
    createTime: ts(r.created_at),
    updateTime: ts(r.updated_at),
    deleteTime: ts(r.deleted_at),
    purgeTime: purgeTime(r.deleted_at),
  };
}

function snapshot(r: PersonRow): Snapshot {
  return {
    first_name: r.first_name,
    last_name: r.last_name,
    emails: r.emails,
    phones: r.phones,
    job_title: r.job_title,
    companies: r.companies.map((l) => ({ company_id: l.company_id, role: l.role })),
    owner_id: r.owner_id,
    ...customSnapshot(r.custom),
  };
}

export const personList: ListSpec = {
  kind: "person",
  from: "rec_people p",
  alias: "p",
  select: COLS,
  columns: {
    id: { expr: "p.id", notNull: true },
    owner_id: { expr: "p.owner_id" },
    create_time: { expr: "p.created_at", notNull: true },
    update_time: { expr: "p.updated_at", notNull: true },
    delete_time: { expr: "p.deleted_at" },
    first_name: { expr: "p.first_name" },
    last_name: { expr: "p.last_name" },
    emails: { expr: "p.emails" },
    phones: { expr: "p.phones" },
    job_title: { expr: "p.job_title" },
    company_ids: { links: { from: "rec_person_companies l", join: "l.person_id = p.id", elem: "l.rec_company_id" } },
  },
};

/** The standard fields and the custom values, every bad one named at once. */
async function checked(sql: Sql, p: Person, paths: readonly string[], creating: boolean) {
  const v: Violation[] = [];
  const input: PersonInput = checkPerson(p, paths, v);
  const patch = await customPatch(sql, "person", p.custom, creating ? "all" : customScope(paths), v, "person");
  return { input, patch };
}

/** already_exists naming the address and its person when another person has one of `emails`. */
async function emailsFree(sql: Sql, emails: string[] | undefined, self: string | null): Promise<void> {
  if (!emails?.length) return;
  const keys = emails.map(emailKey);
  const { rows } = await sql.query<{ address_lower: string; person_id: string }>(
    "SELECT address_lower, person_id FROM rec_person_emails WHERE address_lower = ANY($1) AND person_id IS DISTINCT FROM $2",
    [keys, self],
  );
  if (rows.length) {
    const violations = rows.map((r) => ({ field: `person.emails[${keys.indexOf(r.address_lower)}]`, description: `belongs to person ${r.person_id} already` }));
    throw new AppError("already_exists", `${rows.map((r) => `${r.address_lower} belongs to person ${r.person_id}`).join("; ")} (addresses are unique in your company; look in the trash too)`, violations);
  }
}

/** not_found naming each linked company that is not in the tenant or is in the trash. */
async function companiesExist(sql: Sql, links: Link[] | undefined): Promise<void> {
  if (!links?.length) return;
  const ids = links.map((l) => l.company_id);
  const { rows } = await sql.query<{ id: string }>("SELECT id FROM rec_companies WHERE id = ANY($1::uuid[]) AND deleted_at IS NULL", [ids]);
  const found = new Set(rows.map((r) => r.id));
  const missing = ids.map((id, i) => ({ id, i })).filter((x) => !found.has(x.id));
  if (missing.length) {
    throw new AppError("not_found", `no company ${missing.map((m) => m.id).join(", ")} in your company (or it is in the trash)`, missing.map((m) => ({ field: `person.companies[${m.i}].companyId`, description: "names no company of yours (or one in the trash)" })));
  }
}

async function writeParts(sql: Sql, a: Acting, id: string, input: PersonInput, creating: boolean): Promise<void> {
  if (input.emails !== undefined) {
    if (!creating) await sql.query("DELETE FROM rec_person_emails WHERE person_id = $1", [id]);
    if (input.emails.length) {
      await sql.query("INSERT INTO rec_person_emails (company_id, address_lower, person_id) SELECT $1, unnest($2::text[]), $3", [a.companyId, input.emails.map(emailKey), id]);
    }
  }
  if (input.companies !== undefined) {
    if (!creating) await sql.query("DELETE FROM rec_person_companies WHERE person_id = $1", [id]);
    if (input.companies.length) {
      await sql.query(
        `INSERT INTO rec_person_companies (company_id, person_id, rec_company_id, role, ord)
         SELECT $1, $2, l.company_id, l.role, l.ord - 1 FROM unnest($3::uuid[], $4::text[]) WITH ORDINALITY AS l (company_id, role, ord)`,
        [a.companyId, id, input.companies.map((l) => l.company_id), input.companies.map((l) => l.role)],
      );
    }
  }
}

export async function getPerson(sql: Sql, id: string): Promise<PersonRow> {
  const { rows } = await sql.query<PersonRow>(`${SELECT} WHERE p.id = $1`, [id]);
  if (!rows[0]) throw notFound("person", id);
  return rows[0];
}

export async function createPerson(sql: Sql, a: Acting, p: Person): Promise<PersonRow> {
  const { input, patch } = await checked(sql, p, updatable.person, true);
  const owner = await ownerFor(sql, a, input.owner_id, "person.ownerId");
  await emailsFree(sql, input.emails, null);
  await companiesExist(sql, input.companies);
  const { rows } = await sql.query<{ id: string }>(
    "INSERT INTO rec_people (company_id, first_name, last_name, emails, phones, job_title, owner_id, custom) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
    [a.companyId, input.first_name, input.last_name, input.emails, input.phones, input.job_title, owner, JSON.stringify(patch.set)],
  );
  const id = rows[0]!.id;
  await writeParts(sql, a, id, input, true);
  const row = await getPerson(sql, id);
  await writeTimeline(sql, a, "person", id, "created", diff({}, snapshot(row)));
  return row;
}

export async function updatePerson(sql: Sql, a: Acting, id: string, p: Person, paths: string[], etag: bigint | undefined): Promise<PersonRow> {
  const { input, patch } = await checked(sql, p, paths, false);
  const before = await lockForChange<PersonRow>(sql, a, "person", SELECT, id, { etag });
  const next = { ...before, ...input, custom: applyCustom(before.custom, patch) } as PersonRow;
  if (paths.includes("owner_id")) next.owner_id = await ownerFor(sql, a, input.owner_id ?? before.owner_id, "person.ownerId");
  const changes = diff(snapshot(before), snapshot(next));
  if (changes.length === 0) return before;
  const touched = new Set(changes.map((c) => c.field));
  if (touched.has("emails")) await emailsFree(sql, input.emails, id);
  if (touched.has("companies")) await companiesExist(sql, input.companies);
  await sql.query(
    `UPDATE rec_people SET first_name = $2, last_name = $3, emails = $4, phones = $5, job_title = $6, owner_id = $7,
            custom = (custom - $8::text[]) || $9::jsonb, version = version + 1, updated_at = now() WHERE id = $1`,
    [id, next.first_name, next.last_name, next.emails, next.phones, next.job_title, next.owner_id, ...patchParams(patch)],
  );
  await writeParts(sql, a, id, { emails: touched.has("emails") ? input.emails : undefined, companies: touched.has("companies") ? input.companies : undefined }, false);
  await writeTimeline(sql, a, "person", id, "updated", changes);
  return getPerson(sql, id);
}

export async function trashPerson(sql: Sql, a: Acting, id: string, trash: boolean, etag?: bigint): Promise<PersonRow> {
  const before = await lockForChange<PersonRow>(sql, a, "person", SELECT, id, { etag, trash: "allow" });
  if (Boolean(before.deleted_at) === trash) return before;
  await sql.query(`UPDATE rec_people SET deleted_at = ${trash ? "now()" : "NULL"}, version = version + 1, updated_at = now() WHERE id = $1`, [id]);
  const after = await getPerson(sql, id);
  await writeTimeline(sql, a, "person", id, trash ? "deleted" : "restored", [{ field: "delete_time", before: iso(before.deleted_at), after: iso(after.deleted_at) }]);
  return after;
}

/**
 * Custom field definitions: rec_fields. Configuration, as pipelines: everyone reads, owners and
 * admins change (the policies allow nobody else). Renaming keeps values (they are keyed by the
 * fixed key); archiving sets archived_at, and the records' SELECTs then leave the field's values
 * out (custom.ts visibleCustom); the values stay in the rows.
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import { AppError, invalid, type Violation } from "@crm/kit";
import type { Field, FieldSchema } from "@crm/gen/crm/records/v1/field_pb";
import type { Sql } from "@crm/dbservice/db";
import { FIELD_LIMITS, checkFieldChange, checkNewField, fieldTypeToProto, keptOptions, type CustomFieldType, type OptionDef } from "../src/rules.js";
import { etagOf, type CustomKind } from "../src/rules.js";
import { isAdmin, type Acting, type ConstraintInfo } from "./acting.js";
import { kindToProto } from "./timeline.js";
import { ts } from "./shared.js";

export interface FieldRow {
  id: string;
  object_type: CustomKind;
  key: string;
  label: string;
  type: CustomFieldType;
  required: boolean;
  options: OptionDef[];
  currency_code: string | null;
  description: string;
  version: string;
  created_at: Date;
  updated_at: Date;
  archived_at: Date | null;
}

const COLS = "id, object_type, key, label, type, required, options, currency_code, description, version, created_at, updated_at, archived_at";

export const fieldConstraints: Record<string, ConstraintInfo> = {
  rec_fields_key_key: { field: "field.key", reason: "already_exists", message: "another field of this object type has this key (archived ones included)" },
  rec_fields_key_check: { field: "field.key", reason: "invalid_argument", message: "must be a lower-case letter, then up to 49 lower-case letters, digits or underscores" },
  rec_fields_label_check: { field: "field.label", reason: "invalid_argument", message: "must be 1..100 characters" },
  rec_fields_options_check: { field: "field.options", reason: "invalid_argument", message: "at most 200 options, for select and multi-select fields only" },
  rec_fields_currency_check: { field: "field.currencyCode", reason: "invalid_argument", message: "a money field needs an ISO 4217 currency; other fields have none" },
  rec_fields_description_check: { field: "field.description", reason: "invalid_argument", message: "must be at most 500 characters" },
};

export function toField(r: FieldRow): MessageInitShape<typeof FieldSchema> {
  return {
    id: r.id,
    objectType: kindToProto[r.object_type],
    key: r.key,
    label: r.label,
    type: fieldTypeToProto[r.type],
    required: r.required,
    options: r.options,
    currencyCode: r.currency_code ?? "",
    description: r.description,
    etag: etagOf(r.version),
    createTime: ts(r.created_at),
    updateTime: ts(r.updated_at),
    archiveTime: ts(r.archived_at),
  };
}

function requireAdmin(a: Acting): void {
  if (!isAdmin(a)) throw new AppError("permission_denied", "only owners and admins define custom fields; everyone may read them");
}

const notFound = (id: string) => new AppError("not_found", `no custom field ${id} in your company`);

export async function getField(sql: Sql, id: string): Promise<FieldRow> {
  const { rows } = await sql.query<FieldRow>(`SELECT ${COLS} FROM rec_fields WHERE id = $1`, [id]);
  if (!rows[0]) throw notFound(id);
  return rows[0];
}

export async function listFields(sql: Sql, kind: CustomKind | undefined, showArchived: boolean): Promise<FieldRow[]> {
  const { rows } = await sql.query<FieldRow>(
    `SELECT ${COLS} FROM rec_fields WHERE ($1::text IS NULL OR object_type = $1) AND ($2 OR archived_at IS NULL) ORDER BY object_type, created_at, id`,
    [kind ?? null, showArchived],
  );
  return rows;
}

export async function createField(sql: Sql, a: Acting, kind: CustomKind, f: Field): Promise<FieldRow> {
  requireAdmin(a);
  const v: Violation[] = [];
  const input = checkNewField(f, v);
  if (v.length) throw invalid(v);
  // One definition at a time per object type, so the limit holds.
  await sql.query("SELECT pg_advisory_xact_lock(hashtextextended('rec_fields:' || $1 || ':' || $2, 0))", [a.companyId, kind]);
  const { rows: n } = await sql.query<{ n: string; taken: boolean }>(
    "SELECT count(*) AS n, bool_or(key = $2) AS taken FROM rec_fields WHERE object_type = $1",
    [kind, input.key],
  );
  if (n[0]?.taken) throw new AppError("already_exists", `a ${kind} field with the key ${input.key} exists already (perhaps archived: unarchive it)`, [{ field: "field.key", description: "is taken by another field of this object type (archived ones included)" }]);
  if (Number(n[0]?.n ?? 0) >= FIELD_LIMITS.perObject) throw new AppError("failed_precondition", `a ${kind} may have at most ${FIELD_LIMITS.perObject} custom fields (archived ones included)`);
  const { rows } = await sql.query<FieldRow>(
    `INSERT INTO rec_fields (company_id, object_type, key, label, type, required, options, currency_code, description)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING ${COLS}`,
    [a.companyId, kind, input.key, input.label, input.type, input.required, JSON.stringify(input.options), input.currency_code, input.description],
  );
  return rows[0]!;
}

async function lockField(sql: Sql, a: Acting, id: string, etag: bigint | undefined): Promise<FieldRow> {
  requireAdmin(a);
  const { rows } = await sql.query<FieldRow>(`SELECT ${COLS} FROM rec_fields WHERE id = $1 FOR UPDATE`, [id]);
  const f = rows[0];
  if (!f) throw notFound(id);
  if (etag !== undefined && BigInt(f.version) !== etag) throw new AppError("aborted", `custom field ${id} changed since you read it (etag ${etag}, now ${f.version}): read it again and retry`);
  return f;
}

export async function updateField(sql: Sql, a: Acting, id: string, f: Field, paths: string[], etag: bigint | undefined): Promise<FieldRow> {
  const before = await lockField(sql, a, id, etag);
  const v: Violation[] = [];
  const input = checkFieldChange(f, paths, before.type, v);
  if (input.options) keptOptions(before.options, input.options, v);
  if (v.length) throw invalid(v);
  const next = { ...before, ...input };
  if (JSON.stringify([next.label, next.description, next.required, next.options]) === JSON.stringify([before.label, before.description, before.required, before.options])) return before;
  const { rows } = await sql.query<FieldRow>(
    `UPDATE rec_fields SET label = $2, description = $3, required = $4, options = $5, version = version + 1, updated_at = now() WHERE id = $1 RETURNING ${COLS}`,
    [id, next.label, next.description, next.required, JSON.stringify(next.options)],
  );
  return rows[0]!;
}

/** Archives (already archived: unchanged) or brings back. */
export async function archiveField(sql: Sql, a: Acting, id: string, archive: boolean, etag?: bigint): Promise<FieldRow> {
  const before = await lockField(sql, a, id, etag);
  if (Boolean(before.archived_at) === archive) return before;
  const { rows } = await sql.query<FieldRow>(
    `UPDATE rec_fields SET archived_at = ${archive ? "now()" : "NULL"}, version = version + 1, updated_at = now() WHERE id = $1 RETURNING ${COLS}`,
    [id],
  );
  return rows[0]!;
}

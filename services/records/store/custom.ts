/**
 * Custom field values in the store: the definitions of an object type read in the request's
 * transaction, a write's values checked against them (../src/rules.ts) into a patch the
 * UPDATE applies in SQL, and the values of archived fields left out of what is answered.
 */
import type { JsonObject } from "@bufbuild/protobuf";
import { invalid, type Violation } from "@crm/kit";
import type { Sql } from "@crm/dbservice/db";
import { catalogOf, checkCustom, type CustomDef, type CustomFieldType, type CustomPatch, type OptionDef } from "../src/rules.js";
import type { CustomCatalog, CustomKind } from "../src/rules.js";

/**
 * The SQL of a record's visible custom values: its `custom` without the keys of archived fields
 * (one initplan per statement). `alias` is the record's table alias in the statement.
 */
export function visibleCustom(alias: string, kind: CustomKind): string {
  return `${alias}.custom - ARRAY(SELECT f.key FROM rec_fields f WHERE f.object_type = '${kind}' AND f.archived_at IS NOT NULL) AS custom`;
}

export interface DefRow {
  key: string;
  label: string;
  type: CustomFieldType;
  required: boolean;
  options: OptionDef[];
  currency_code: string | null;
  archived: boolean;
}

/** The statement loadDefs runs, with the object type as the SQL `kind` (a parameter or a literal): for a batch. */
export const defsSelect = (kind: string) =>
  `SELECT key, label, type, required, options, currency_code, archived_at IS NOT NULL AS archived FROM rec_fields WHERE object_type = ${kind} ORDER BY created_at, id`;

/** The definitions from the rows of `defsSelect`. */
export const defsOf = (rows: DefRow[]): CustomDef[] =>
  rows.map((r) => ({ key: r.key, label: r.label, type: r.type, required: r.required, options: r.options, currencyCode: r.currency_code, archived: r.archived }));

/** The tenant's definitions of one object type (row-level security: the tenant's only). */
export async function loadDefs(sql: Sql, kind: CustomKind): Promise<CustomDef[]> {
  const { rows } = await sql.query<DefRow>(defsSelect("$1"), [kind]);
  return defsOf(rows);
}

export async function loadCatalog(sql: Sql, kind: CustomKind): Promise<CustomCatalog> {
  return catalogOf(await loadDefs(sql, kind));
}

/**
 * A write's custom values checked against the definitions (with the rest of the record's
 * violations, so every bad field is named at once) and the users they name looked up.
 * `scope` undefined: the write does not touch custom values (an empty patch).
 */
export async function customPatch(
  sql: Sql,
  kind: CustomKind,
  given: JsonObject | undefined,
  scope: "all" | readonly string[] | undefined,
  violations: Violation[],
  at: string,
  defs?: CustomDef[],
): Promise<CustomPatch> {
  if (scope === undefined) {
    if (violations.length) throw invalid(violations);
    return { remove: [], set: {}, users: [] };
  }
  const patch = checkCustom(kind, defs ?? (await loadDefs(sql, kind)), given, scope, violations, at);
  if (patch.users.length) {
    const { rows } = await sql.query<{ id: string }>("SELECT id FROM users WHERE id = ANY($1::uuid[]) AND status = 'active'", [[...new Set(patch.users.map((u) => u.id))]]);
    const found = new Set(rows.map((r) => r.id));
    for (const u of patch.users) if (!found.has(u.id)) violations.push({ field: u.field, description: `names no active user of your company: ${u.id}` });
  }
  if (violations.length) throw invalid(violations);
  return patch;
}

/** The patch as the two parameters of `custom = (custom - $remove::text[]) || $set::jsonb`. */
export const patchParams = (p: CustomPatch): [string[], string] => [p.remove, JSON.stringify(p.set)];

/**
 * The --map options of `crm import`: "COLUMN=FIELD" where COLUMN is a header of the file (ignoring
 * case) or "#N" (the N-th column, from 1), FIELD a field's API name ("emails", "custom.tier") or
 * empty (leave the column out). They change the server's suggestion (from the header names)
 * unless --no-suggest starts from nothing. Pure.
 */
import { create } from "@bufbuild/protobuf";
import { ColumnMappingSchema, type ColumnMapping } from "@crm/gen/crm/records/v1/import_pb";
import { usageError } from "./errors.js";

export function buildMapping(columns: string[], suggested: ColumnMapping[], maps: string[], useSuggestion: boolean): ColumnMapping[] {
  const fields = columns.map(() => "");
  if (useSuggestion) for (const m of suggested) if (m.column >= 0 && m.column < columns.length) fields[m.column] = m.field;
  for (const spec of maps) {
    const eq = spec.lastIndexOf("=");
    if (eq <= 0) throw usageError(`--map ${JSON.stringify(spec)}: use COLUMN=FIELD, e.g. --map "E-mail=emails" or --map "#3=custom.tier"`);
    const col = spec.slice(0, eq).trim();
    const field = spec.slice(eq + 1).trim();
    let index: number;
    const numbered = /^#(\d+)$/.exec(col);
    if (numbered) index = Number(numbered[1]) - 1;
    else index = columns.findIndex((h) => h.trim().toLowerCase() === col.toLowerCase());
    if (index < 0 || index >= columns.length) throw usageError(`--map ${JSON.stringify(spec)}: the file has no column ${JSON.stringify(col)} (its columns: ${columns.map((c, i) => `#${i + 1} ${JSON.stringify(c)}`).join(", ")})`);
    if (field && !/^[a-z_]+$|^custom\.[A-Za-z0-9_-]+$/.test(field)) throw usageError(`--map ${JSON.stringify(spec)}: ${JSON.stringify(field)} is not a field name (e.g. emails, first_name, custom.tier)`);
    fields[index] = field;
  }
  return fields.flatMap((field, column) => (field ? [create(ColumnMappingSchema, { column, header: columns[column] ?? "", field })] : []));
}

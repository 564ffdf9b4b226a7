/**
 * Custom fields' rules (issue 16), shared by the service's request checks and the store. Pure.
 *
 * - a definition's input checked field by field (key, label, type, options, currency);
 * - a record's `custom` values checked and normalised against the definitions of its object type
 *   (violations name `<object>.custom.<key>`), as a patch the store applies in SQL
 *   (`custom = (custom - remove) || set`) so the values of archived fields are kept;
 * - the catalog lists filter and sort on ("custom.<key>" → its FieldSpec).
 */
import type { JsonObject, JsonValue } from "@bufbuild/protobuf";
import type { Violation } from "@crm/kit";
import { FieldType } from "@crm/gen/crm/records/v1/field_pb";
import {
  customFieldPattern, isId, plurals, normalId, normalizeCurrency, normalizeDate, normalizeEmail, normalizePhone, textLength, textViolation,
  type CustomCatalog, type CustomKind, type FieldSpec, type Snapshot,
} from "./rules.js";

export const FIELD_LIMITS = {
  perObject: 100,
  label: 100,
  description: 500,
  options: 200,
  option: 100,
  text: 1_000,
  longText: 10_000,
  url: 2_000,
  /** A record's custom values as JSON text. */
  customBytes: 64 * 1024,
} as const;

export const fieldKeyPattern = /^[a-z][a-z0-9_]{0,49}$/;

export type CustomFieldType =
  | "text" | "long_text" | "number" | "money" | "date" | "datetime" | "boolean" | "select" | "multi_select" | "url" | "email" | "phone" | "user";

export const fieldTypeNames: Partial<Record<FieldType, CustomFieldType>> = {
  [FieldType.TEXT]: "text",
  [FieldType.LONG_TEXT]: "long_text",
  [FieldType.NUMBER]: "number",
  [FieldType.MONEY]: "money",
  [FieldType.DATE]: "date",
  [FieldType.DATETIME]: "datetime",
  [FieldType.BOOLEAN]: "boolean",
  [FieldType.SELECT]: "select",
  [FieldType.MULTI_SELECT]: "multi_select",
  [FieldType.URL]: "url",
  [FieldType.EMAIL]: "email",
  [FieldType.PHONE]: "phone",
  [FieldType.USER]: "user",
};
export const fieldTypeToProto = Object.fromEntries(Object.entries(fieldTypeNames).map(([n, t]) => [t, Number(n)])) as Record<CustomFieldType, FieldType>;

export interface OptionDef {
  value: string;
  label: string;
  archived: boolean;
}

/** A definition as the rules need it. */
export interface CustomDef {
  key: string;
  label: string;
  type: CustomFieldType;
  required: boolean;
  options: OptionDef[];
  currencyCode: string | null;
  archived: boolean;
}

const hasOptions = (t: CustomFieldType) => t === "select" || t === "multi_select";

// ---------------------------------------------------------------------------------------------
// Definitions

export interface FieldDefInput {
  key?: string;
  type?: CustomFieldType;
  label?: string;
  description?: string;
  required?: boolean;
  options?: OptionDef[];
  currency_code?: string | null;
}

interface FieldLike {
  key: string;
  label: string;
  type: FieldType;
  required: boolean;
  options: { value: string; label: string; archived: boolean }[];
  currencyCode: string;
  description: string;
}

/** The options checked: values trimmed, 1..100 characters, unique without regard to case; 1..200 of them for a select. */
function checkOptions(out: Violation[], at: string, raw: FieldLike["options"], type: CustomFieldType | undefined): OptionDef[] {
  const opts: OptionDef[] = [];
  if (type && !hasOptions(type)) {
    if (raw.length) out.push({ field: `${at}.options`, description: "only select and multi-select fields have options" });
    return opts;
  }
  if (type && raw.length === 0) out.push({ field: `${at}.options`, description: `a ${type === "select" ? "select" : "multi-select"} field needs 1..${FIELD_LIMITS.options} options` });
  if (raw.length > FIELD_LIMITS.options) out.push({ field: `${at}.options`, description: `may hold at most ${FIELD_LIMITS.options} options (got ${raw.length})` });
  const seen = new Set<string>();
  raw.slice(0, FIELD_LIMITS.options).forEach((o, i) => {
    const value = o.value.trim();
    const label = o.label.trim();
    const bad = textViolation(value, `${at}.options[${i}].value`, FIELD_LIMITS.option, true);
    if (bad) out.push(bad);
    else if (seen.has(value.toLowerCase())) out.push({ field: `${at}.options[${i}].value`, description: "names another option of the field (values are compared without regard to case)" });
    const badLabel = textViolation(label, `${at}.options[${i}].label`, FIELD_LIMITS.option);
    if (badLabel) out.push(badLabel);
    seen.add(value.toLowerCase());
    opts.push({ value, label, archived: o.archived });
  });
  return opts;
}

/** CreateField: every part of a definition; violations name `${at}.<jsonName>`. */
export function checkNewField(f: FieldLike, out: Violation[], at = "field"): Required<FieldDefInput> {
  const key = f.key.trim();
  if (!fieldKeyPattern.test(key)) {
    out.push({ field: `${at}.key`, description: `must be a lower-case letter, then up to 49 lower-case letters, digits or underscores, e.g. "renewal_date" (got ${JSON.stringify(f.key.slice(0, 80))})` });
  }
  const type = fieldTypeNames[f.type];
  if (!type) out.push({ field: `${at}.type`, description: "must be one of FIELD_TYPE_TEXT, _LONG_TEXT, _NUMBER, _MONEY, _DATE, _DATETIME, _BOOLEAN, _SELECT, _MULTI_SELECT, _URL, _EMAIL, _PHONE, _USER" });
  const rest = checkFieldChange(f, ["label", "description", "required", "options"], type, out, at);
  let currency: string | null = null;
  if (type === "money") {
    currency = normalizeCurrency(f.currencyCode) ?? null;
    if (!currency) out.push({ field: `${at}.currencyCode`, description: `a money field needs its ISO 4217 currency, e.g. "EUR" (got ${JSON.stringify(f.currencyCode.slice(0, 80))})` });
  } else if (f.currencyCode.trim() !== "") out.push({ field: `${at}.currencyCode`, description: "only money fields have a currency" });
  return { key, type: type ?? "text", label: rest.label!, description: rest.description!, required: rest.required!, options: rest.options!, currency_code: currency };
}

/** UpdateField: the parts named by the mask (label, description, required, options). */
export function checkFieldChange(f: Pick<FieldLike, "label" | "description" | "required" | "options">, paths: readonly string[], type: CustomFieldType | undefined, out: Violation[], at = "field"): FieldDefInput {
  const r: FieldDefInput = {};
  for (const p of paths) {
    switch (p) {
      case "label": {
        r.label = f.label.trim();
        const bad = textViolation(r.label, `${at}.label`, FIELD_LIMITS.label, true);
        if (bad) out.push(bad);
        break;
      }
      case "description": {
        r.description = f.description.trim();
        const bad = textViolation(r.description, `${at}.description`, FIELD_LIMITS.description);
        if (bad) out.push(bad);
        break;
      }
      case "required":
        r.required = f.required;
        break;
      case "options":
        r.options = checkOptions(out, at, f.options, type);
        break;
    }
  }
  return r;
}

/** New options against the old: every old value stays (archive it instead of removing it). */
export function keptOptions(before: readonly OptionDef[], after: readonly OptionDef[], out: Violation[], at = "field"): void {
  const now = new Set(after.map((o) => o.value.toLowerCase()));
  for (const o of before) {
    if (!now.has(o.value.toLowerCase())) {
      out.push({ field: `${at}.options`, description: `drops the option ${JSON.stringify(o.value)}, which records may hold: keep it with archived set to true instead` });
    }
  }
  // The spelling of a kept value is the stored one.
  for (const o of after) {
    const old = before.find((b) => b.value.toLowerCase() === o.value.toLowerCase());
    if (old) o.value = old.value;
  }
}

// ---------------------------------------------------------------------------------------------
// Values

/** What a write does to a record's custom values: keys to drop, then values to set (the store: `(custom - remove) || set`). */
export interface CustomPatch {
  remove: string[];
  set: JsonObject;
  /** User ids the store checks are active users of the tenant, with the field that names each. */
  users: { field: string; id: string }[];
}

const isEmpty = (v: JsonValue | undefined) => v === undefined || v === null || v === "" || (Array.isArray(v) && v.length === 0);

/**
 * The service's check, without the definitions: names, count and size only (the store checks
 * the rest against the definitions).
 */
export function checkCustomShape(given: JsonObject | undefined, out: Violation[], at: string): void {
  if (!given) return;
  const keys = Object.keys(given);
  if (keys.length > FIELD_LIMITS.perObject) out.push({ field: `${at}.custom`, description: `may hold at most ${FIELD_LIMITS.perObject} values (got ${keys.length})` });
  for (const k of keys.slice(0, FIELD_LIMITS.perObject)) {
    if (!fieldKeyPattern.test(k)) out.push({ field: `${at}.custom`, description: `${JSON.stringify(k.slice(0, 80))} is not a custom field's key (a lower-case letter, then lower-case letters, digits or underscores)` });
  }
  if (JSON.stringify(given).length > FIELD_LIMITS.customBytes) out.push({ field: `${at}.custom`, description: `must be at most ${FIELD_LIMITS.customBytes} bytes as JSON` });
}

/** One value in its stored form; undefined (with a violation) when it does not fit the field. */
export function normalizeCustomValue(def: CustomDef, raw: JsonValue, field: string, out: Violation[], users: CustomPatch["users"]): JsonValue | undefined {
  const bad = (what: string) => {
    const shown = JSON.stringify(raw) ?? "";
    out.push({ field, description: `${what} (got ${shown.length > 80 ? `${shown.slice(0, 80)}…` : shown})` });
    return undefined;
  };
  const str = (max: number) => {
    if (typeof raw !== "string") return bad("must be text");
    const v = raw.trim();
    const n = textLength(v);
    return n > max ? bad(`must be at most ${max} characters (got ${n})`) : v;
  };
  switch (def.type) {
    case "text":
      return str(FIELD_LIMITS.text);
    case "long_text":
      return str(FIELD_LIMITS.longText);
    case "number": {
      const n = typeof raw === "number" ? raw : typeof raw === "string" && /^\s*-?\d+(\.\d+)?\s*$/.test(raw) ? Number(raw) : NaN;
      return Number.isFinite(n) && Math.abs(n) < 1e15 ? n : bad("must be a number between -1e15 and 1e15, e.g. 12.5");
    }
    case "money": {
      const n = typeof raw === "number" ? raw : typeof raw === "string" && /^\s*-?\d{1,16}\s*$/.test(raw) ? Number(raw) : NaN;
      return Number.isSafeInteger(n) ? n : bad(`must be a whole number of ${def.currencyCode ?? "the currency"}'s minor units (e.g. cents)`);
    }
    case "date":
      return (typeof raw === "string" && normalizeDate(raw)) || bad("must be a date YYYY-MM-DD");
    case "datetime": {
      const t = typeof raw === "string" && /^\d{4}-\d{2}-\d{2}T/.test(raw.trim()) ? Date.parse(raw.trim()) : NaN;
      const y = Number.isFinite(t) ? new Date(t).getUTCFullYear() : 0;
      return y >= 1900 && y <= 9999 ? new Date(t).toISOString() : bad('must be an RFC 3339 time such as "2026-05-01T09:30:00Z" (years 1900..9999)');
    }
    case "boolean":
      return typeof raw === "boolean" ? raw : bad("must be true or false");
    case "select": {
      if (typeof raw !== "string") return bad("must be one option's value");
      const o = def.options.find((x) => x.value.toLowerCase() === raw.trim().toLowerCase());
      if (!o || o.archived) return bad(`must be one of ${def.options.filter((x) => !x.archived).map((x) => JSON.stringify(x.value)).join(", ")}${o ? ` (${JSON.stringify(o.value)} is archived)` : ""}`);
      return o.value;
    }
    case "multi_select": {
      if (!Array.isArray(raw)) return bad("must be a list of option values");
      const picked: string[] = [];
      for (const [i, x] of raw.entries()) {
        const o = typeof x === "string" ? def.options.find((y) => y.value.toLowerCase() === x.trim().toLowerCase()) : undefined;
        if (!o || o.archived) {
          out.push({ field: `${field}[${i}]`, description: `must be one of ${def.options.filter((y) => !y.archived).map((y) => JSON.stringify(y.value)).join(", ")}` });
          return undefined;
        }
        if (picked.includes(o.value)) {
          out.push({ field: `${field}[${i}]`, description: "appears twice" });
          return undefined;
        }
        picked.push(o.value);
      }
      return picked;
    }
    case "url": {
      const u = str(FIELD_LIMITS.url);
      if (u === undefined) return undefined;
      const withScheme = /^[a-z][a-z0-9+.-]*:/i.test(u) ? u : `https://${u}`;
      try {
        const url = new URL(withScheme);
        if ((url.protocol === "http:" || url.protocol === "https:") && url.hostname.includes(".") && url.href.length <= FIELD_LIMITS.url) return url.href;
      } catch {
        // below
      }
      return bad('must be an http(s) URL such as "https://example.com/page"');
    }
    case "email":
      return (typeof raw === "string" && normalizeEmail(raw)) || bad("must be an e-mail address");
    case "phone":
      return (typeof raw === "string" && normalizePhone(raw)) || bad('must be a phone number in international form, e.g. "+14155550100"');
    case "user": {
      const id = typeof raw === "string" ? normalId(raw) : "";
      if (!isId(id)) return bad("must be a user's id (UUID)");
      users.push({ field, id });
      return id;
    }
  }
}

/**
 * A write's custom values checked against the definitions. `scope`: "all" (create, or the mask
 * path "custom": every active field is written, absent ones emptied) or the keys the mask names
 * ("custom.<key>"). Required fields in scope must end with a value. Violations name `${at}.custom.<key>`.
 */
export function checkCustom(
  kind: CustomKind,
  defs: readonly CustomDef[],
  given: JsonObject | undefined,
  scope: "all" | readonly string[],
  out: Violation[],
  at: string,
): CustomPatch {
  const patch: CustomPatch = { remove: [], set: {}, users: [] };
  const active = new Map(defs.filter((d) => !d.archived).map((d) => [d.key, d]));
  const byKey = new Map(defs.map((d) => [d.key, d]));
  const values = given ?? {};
  const plural = plurals[kind];
  const unknown = (key: string, path: string) => {
    const d = byKey.get(key);
    out.push({
      field: path,
      description: d
        ? `the custom field ${key} is archived: unarchive it (FieldService.UnarchiveField) to write it`
        : `is not a custom field of ${plural}: define it with FieldService.CreateField${active.size ? ` (fields: ${[...active.keys()].join(", ")})` : ""}`,
    });
  };
  let keys: string[];
  if (scope === "all") {
    const given = Object.keys(values);
    if (given.length > FIELD_LIMITS.perObject) out.push({ field: `${at}.custom`, description: `may hold at most ${FIELD_LIMITS.perObject} values` });
    for (const k of given.slice(0, FIELD_LIMITS.perObject)) if (!active.has(k) && !isEmpty(values[k])) unknown(k, `${at}.custom.${k.slice(0, 60)}`);
    keys = [...active.keys()];
  } else {
    keys = [];
    for (const k of scope) {
      if (active.has(k)) keys.push(k);
      else unknown(k, `${at}.custom.${k}`);
    }
  }
  for (const key of keys) {
    const def = active.get(key)!;
    const path = `${at}.custom.${key}`;
    patch.remove.push(key);
    const raw = values[key];
    if (isEmpty(raw)) {
      if (def.required) out.push({ field: path, description: `is required: ${def.label}` });
      continue;
    }
    const v = normalizeCustomValue(def, raw!, path, out, patch.users);
    if (v === undefined) continue;
    if (isEmpty(v)) {
      if (def.required) out.push({ field: path, description: `is required: ${def.label}` });
      continue;
    }
    patch.set[key] = v;
  }
  return patch;
}

/** The record's visible custom values after a patch. */
export function applyCustom(visible: JsonObject, patch: CustomPatch): JsonObject {
  const next: JsonObject = { ...visible };
  for (const k of patch.remove) delete next[k];
  return { ...next, ...patch.set };
}

/** For the timeline's diff: custom values as "custom.<key>" fields. */
export function customSnapshot(custom: JsonObject | null | undefined): Snapshot {
  const out: Snapshot = {};
  for (const k of Object.keys(custom ?? {}).sort()) out[`custom.${k}`] = custom![k] as Snapshot[string];
  return out;
}

/** The mask's custom paths as the keys they name; "custom" (or "*") means every field. */
export function customScope(paths: readonly string[]): "all" | string[] | undefined {
  if (paths.includes("custom")) return "all";
  const keys = paths.map((p) => customFieldPattern.exec(p)?.[1]).filter((k): k is string => Boolean(k));
  return keys.length ? keys : undefined;
}

// ---------------------------------------------------------------------------------------------
// Lists

function specOf(d: CustomDef): FieldSpec {
  const custom = { key: d.key, type: d.type };
  const values = () => Object.fromEntries(d.options.flatMap((o) => [[o.value, o.value], [o.value.toLowerCase(), o.value]]));
  switch (d.type) {
    case "number":
      return { type: "number", sortable: true, custom };
    case "money":
      return { type: "int", sortable: true, custom };
    case "date":
      return { type: "date", sortable: true, custom };
    case "datetime":
      return { type: "time", sortable: true, custom };
    case "boolean":
      return { type: "bool", sortable: true, custom };
    case "select":
      return { type: "select", sortable: true, values: values(), custom };
    case "multi_select":
      return { type: "multi", sortable: false, values: values(), custom };
    case "user":
      return { type: "id", sortable: true, user: true, custom };
    default:
      return { type: "text", sortable: true, custom };
  }
}

/** The active fields as lists see them: "custom.<key>" → spec. */
export function catalogOf(defs: readonly CustomDef[]): CustomCatalog {
  return Object.fromEntries(defs.filter((d) => !d.archived).map((d) => [`custom.${d.key}`, specOf(d)]));
}

/** A definition as FieldService answers it, for the rules. */
export function defFromField(f: { key: string; label: string; type: FieldType; required: boolean; options: OptionDef[]; currencyCode: string; archiveTime?: unknown }): CustomDef {
  return {
    key: f.key,
    label: f.label,
    type: fieldTypeNames[f.type] ?? "text",
    required: f.required,
    options: f.options.map((o) => ({ value: o.value, label: o.label, archived: o.archived })),
    currencyCode: f.currencyCode || null,
    archived: f.archiveTime !== undefined,
  };
}

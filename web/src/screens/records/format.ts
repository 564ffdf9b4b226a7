/**
 * The records screens' pure helpers (no React, no I/O; tested in test/web/records-format.test.ts):
 * money in minor units per ISO 4217 currency and locale, calendar dates, and the filter tree the
 * List RPCs take, built from a screen's simple filters.
 */
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { FilterSchema, Operator, type Filter } from "@crm/gen/crm/records/v1/common_pb";

/** How many minor units a currency has (EUR 2, JPY 0, KWD 3), as Intl knows it; 2 for a code it does not. */
export function minorDigits(currency: string): number {
  try {
    return new Intl.NumberFormat("en", { style: "currency", currency }).resolvedOptions().maximumFractionDigits ?? 2;
  } catch {
    return 2;
  }
}

/** "1250000" minor units of a 2-digit currency → "12500.00": exact for any int64, no float on the way. */
export function minorToDecimal(minor: bigint, digits: number): string {
  const negative = minor < 0n;
  const s = (negative ? -minor : minor).toString().padStart(digits + 1, "0");
  const whole = s.slice(0, s.length - digits);
  const frac = s.slice(s.length - digits);
  return `${negative ? "-" : ""}${whole}${digits ? `.${frac}` : ""}`;
}

/** 12 500,00 € / €12,500.00; the bare number when the code is not a currency Intl knows. */
export function formatMoney(minor: bigint, currency: string, locale: string): string {
  const digits = minorDigits(currency);
  const decimal = minorToDecimal(minor, digits) as `${number}`;
  try {
    return new Intl.NumberFormat(locale, { style: "currency", currency, minimumFractionDigits: digits, maximumFractionDigits: digits }).format(decimal);
  } catch {
    return `${new Intl.NumberFormat(locale, { minimumFractionDigits: digits }).format(decimal)} ${currency}`.trim();
  }
}

/** What a person types for an amount, shown back in an input: "12500.5" → "12,500.50" (en), "12 500,50" (ru). */
export function formatAmountInput(minor: bigint, currency: string, locale: string): string {
  const digits = minorDigits(currency);
  return new Intl.NumberFormat(locale, { minimumFractionDigits: digits, maximumFractionDigits: digits }).format(minorToDecimal(minor, digits) as `${number}`);
}

function separators(locale: string): { group: string; decimal: string } {
  const parts = new Intl.NumberFormat(locale).formatToParts(12345.6);
  return { group: parts.find((p) => p.type === "group")?.value ?? ",", decimal: parts.find((p) => p.type === "decimal")?.value ?? "." };
}

export type AmountParse = { ok: true; minor: bigint } | { ok: false; reason: "format" | "fraction" };

/**
 * An amount typed in the person's locale → minor units of `currency`. Group separators (and any
 * space) are ignored; the locale's decimal sign is the decimal point, and so is "." where the
 * locale's is "," and "." is not its group sign (ru: "12 500.50" and "12 500,50" both work). More
 * fraction digits than the currency has is refused, never rounded.
 */
export function parseAmount(text: string, currency: string, locale: string): AmountParse {
  const { group, decimal } = separators(locale);
  let s = text.replace(/[\s\u00a0\u202f]/g, "");
  if (group.trim()) s = s.split(group).join("");
  if (decimal !== ".") s = s.replace(decimal, ".");
  const m = /^(\d+)(?:\.(\d*))?$/.exec(s);
  if (!m) return { ok: false, reason: "format" };
  const digits = minorDigits(currency);
  const frac = (m[2] ?? "").replace(/0+$/, "");
  if (frac.length > digits) return { ok: false, reason: "fraction" };
  return { ok: true, minor: BigInt(m[1]! + frac.padEnd(digits, "0")) };
}

/** A calendar date "2026-09-30" for the locale ("30 Sept 2026"), never shifted by the time zone. */
export function formatDate(ymd: string, locale: string): string {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(ymd);
  if (!m) return ymd;
  const d = new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])));
  return new Intl.DateTimeFormat(locale, { dateStyle: "medium", timeZone: "UTC" }).format(d);
}

/** The currencies Intl knows (ISO 4217), for a picker; a short list where the browser cannot tell. */
export function currencies(): string[] {
  try {
    return Intl.supportedValuesOf("currency");
  } catch {
    return ["EUR", "GBP", "JPY", "RUB", "USD"];
  }
}

/** One condition of a screen's simple filters. */
export interface Cond {
  field: string;
  op: Operator;
  values?: string[];
}

type FilterInit = MessageInitShape<typeof FilterSchema>;

const leaf = (c: Cond): FilterInit => ({ node: { case: "condition", value: { field: c.field, operator: c.op, values: c.values ?? [] } } });

/** Any of several fields contains the text: an or node (one field: the condition itself). */
export function anyContains(fields: string[], text: string): FilterInit | undefined {
  const t = text.trim();
  if (!t) return undefined;
  const nodes = fields.map((field) => leaf({ field, op: Operator.CONTAINS, values: [t] }));
  return nodes.length === 1 ? nodes[0] : { node: { case: "or", value: { filters: nodes } } };
}

/** The and of the parts given (undefined ones dropped): undefined for no filter, the part itself for one. */
export function allOf(...parts: (FilterInit | Cond | undefined)[]): Filter | undefined {
  const nodes = parts.filter((p): p is FilterInit | Cond => p !== undefined).map((p) => ("field" in p ? leaf(p) : p));
  if (nodes.length === 0) return undefined;
  return create(FilterSchema, nodes.length === 1 ? nodes[0]! : { node: { case: "and", value: { filters: nodes } } });
}

/** "name asc" style order_by from a column and a direction. */
export function orderBy(field: string, desc: boolean): string {
  return `${field} ${desc ? "desc" : "asc"}`;
}

/** "a@x.example, b@y.example" or one per line → the list, trimmed, empties dropped. */
export function splitList(text: string): string[] {
  return text
    .split(/[,;\n]/)
    .map((s) => s.trim())
    .filter(Boolean);
}

/**
 * The form field a server violation belongs to: "person.emails[1]" → "emails", "deal.currencyCode"
 * → "currencyCode", "updateMask" → "updateMask"; `prefix` is the request's message field ("person").
 */
export function violationField(server: string, prefix: string): string {
  const rest = server.startsWith(`${prefix}.`) ? server.slice(prefix.length + 1) : server;
  return rest.split(/[.[]/)[0] ?? rest;
}

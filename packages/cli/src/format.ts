/** Output of `crm`: aligned tables for people, JSON for scripts (--json). Pure functions. */
import type { Duration } from "@bufbuild/protobuf/wkt";

/** Rows under a header, columns two spaces apart, the last column not padded. */
export function table(header: string[], rows: string[][]): string {
  const cells = [header, ...rows].map((r) => r.map((c) => oneLine(c)));
  const widths = header.map((_, i) => Math.max(...cells.map((r) => width(r[i] ?? ""))));
  return cells.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c + " ".repeat(widths[i]! - width(c)))).join("  ").trimEnd()).join("\n") + "\n";
}

/** "key   value" lines, the values aligned. */
export function pairs(rows: [string, string][]): string {
  const w = Math.max(0, ...rows.map(([k]) => width(k)));
  return rows.map(([k, v]) => `${k}${" ".repeat(w - width(k))}  ${oneLine(v)}`.trimEnd()).join("\n") + "\n";
}

/** A cell on one line: line breaks and tabs become spaces. */
function oneLine(s: string): string {
  return s.replace(/[\r\n\t]+/g, " ");
}

/** Display width: code points (no terminal can be asked from here; East Asian wide characters count one). */
function width(s: string): number {
  return [...s].length;
}

/** "7:05" (hours:minutes) for a duration; seconds are dropped, rounding down. */
export function hoursMinutes(d: Duration | undefined): string {
  const secs = Number(d?.seconds ?? 0n);
  const h = Math.floor(secs / 3600);
  const m = Math.floor((secs % 3600) / 60);
  return `${h}:${String(m).padStart(2, "0")}`;
}

/**
 * The value of column `path` ("name", "custom.tier", "companies.company_id") in a record as
 * protobuf JSON with proto field names: lists joined with "; ", objects as JSON, absent as "".
 */
export function cell(record: unknown, path: string): string {
  let values: unknown[] = [record];
  for (const key of path.split(".")) {
    values = values.flatMap((v) => {
      if (v === null || v === undefined) return [];
      if (Array.isArray(v)) return v.map((x) => (x && typeof x === "object" ? (x as Record<string, unknown>)[key] : undefined));
      return typeof v === "object" ? [(v as Record<string, unknown>)[key]] : [];
    });
  }
  return values
    .flatMap((v) => (Array.isArray(v) ? v : [v]))
    .filter((v) => v !== undefined && v !== null && v !== "")
    .map((v) => (typeof v === "object" ? JSON.stringify(v) : String(v)))
    .join("; ");
}

/** An enum value as people read it: "DEAL_STATUS_LOST" with prefix "deal_status_" (any case) → "lost". */
export function enumWord(name: string, prefix = ""): string {
  const lower = name.toLowerCase();
  return (lower.startsWith(prefix.toLowerCase()) ? lower.slice(prefix.length) : lower).replaceAll("_", " ");
}

/**
 * "USD 76,100.00": an amount in minor units (int64 as protobuf JSON gives it) in its currency's own
 * decimals (ISO 4217: JPY none, EUR two); "" without an amount; the raw figures for a currency Intl
 * does not know or an amount beyond what a double holds exactly.
 */
export function money(minor: string | undefined, currency: string | undefined): string {
  if (minor === undefined || minor === "" || !currency) return "";
  const n = Number(minor);
  let f: Intl.NumberFormat;
  try {
    f = new Intl.NumberFormat("en", { style: "currency", currency, currencyDisplay: "code" });
  } catch {
    return `${minor} ${currency} (minor units)`;
  }
  if (!Number.isSafeInteger(n)) return `${minor} ${currency} (minor units)`;
  return f.format(n / 10 ** (f.resolvedOptions().maximumFractionDigits ?? 2)).replace(/\u00a0/g, " ");
}

/** A comma-separated list option ("id,name, domain") as names, empty ones dropped. */
export function list(value: string): string[] {
  return value
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
}

/** One JSON document per line (NDJSON), as --json prints streams. */
export const jsonLine = (v: unknown) => `${JSON.stringify(v)}\n`;

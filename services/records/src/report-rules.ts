/**
 * ReportService's rules (pure, shared with the store): currency codes and their minor-unit digits,
 * exchange rates as decimals, report periods.
 */
import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import type { Violation } from "@crm/kit";
import { normalizeCurrency } from "./rules.js";

/** ISO 4217 minor-unit digits as the platform's ICU knows them (JPY 0, EUR 2, BHD 3). */
export function currencyDigits(code: string): number {
  return new Intl.NumberFormat("en", { style: "currency", currency: code }).resolvedOptions().maximumFractionDigits ?? 2;
}

/** A currency code in upper case, or a violation named `field`. */
export function checkCurrency(out: Violation[], field: string, raw: string): string {
  const c = normalizeCurrency(raw);
  if (!c) out.push({ field, description: raw.trim() === "" ? 'is required: an ISO 4217 currency code such as "EUR"' : `must be an ISO 4217 currency code such as "EUR" (got ${JSON.stringify(raw.slice(0, 20))})` });
  return c ?? "";
}

const RATE = /^(\d{1,12})(?:\.(\d{1,12}))?$/;

/** A rate as a canonical decimal ("0.92", "150"), or a violation: > 0, up to 12 digits each side of the point. */
export function checkRate(out: Violation[], field: string, raw: string): string {
  const m = RATE.exec(raw.trim());
  const canonical = m ? canonicalDecimal(raw.trim()) : "";
  if (!m || /^0(\.0*)?$/.test(canonical)) {
    out.push({ field, description: `must be a decimal greater than 0 with up to 12 digits before the point and 12 after, e.g. "0.92" (got ${JSON.stringify(raw.slice(0, 40))})` });
    return "";
  }
  return canonical;
}

/** "000.9200" → "0.92", "150.000000000000" → "150" (numeric's text form without trailing zeros). */
export function canonicalDecimal(s: string): string {
  const [int, frac = ""] = s.split(".");
  const i = int!.replace(/^0+(?=\d)/, "");
  const f = frac.replace(/0+$/, "");
  return f ? `${i}.${f}` : i;
}

/** At most ten years: long enough for any report, short enough to keep a mistake cheap. */
export const MAX_PERIOD_MS = 10 * 366 * 24 * 3600 * 1000;

/** A report's period [start, end), both required, start before end, at most ten years. */
export function checkPeriod(out: Violation[], start: Timestamp | undefined, end: Timestamp | undefined): { start: Date; end: Date } | undefined {
  const before = out.length;
  if (!start) out.push({ field: "startTime", description: "is required: the period's first instant (RFC 3339)" });
  if (!end) out.push({ field: "endTime", description: "is required: the instant after the period (RFC 3339)" });
  if (!start || !end) return undefined;
  const s = timestampDate(start);
  const e = timestampDate(end);
  if (Number.isNaN(s.getTime())) out.push({ field: "startTime", description: "is not a valid time" });
  if (Number.isNaN(e.getTime())) out.push({ field: "endTime", description: "is not a valid time" });
  if (out.length > before) return undefined;
  if (e.getTime() <= s.getTime()) out.push({ field: "endTime", description: "must be after startTime" });
  else if (e.getTime() - s.getTime() > MAX_PERIOD_MS) out.push({ field: "endTime", description: "the period may be at most 10 years long" });
  return out.length > before ? undefined : { start: s, end: e };
}

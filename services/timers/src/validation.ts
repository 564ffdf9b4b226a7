/**
 * Request checks of the timers service. Pure: the clock is passed in. Each function returns the
 * violations it found (field in the proto's JSON name), so one invalid_argument names every bad
 * field at once and nothing is changed.
 */
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import { isUuid, type Violation } from "@crm/kit";
import { HOUR, badPageToken, instant, limits } from "./rules.js";
import { canonicalZone } from "./zone.js";

/** GetReport's longest range: 366 days, plus an hour so a local year across a DST change fits. */
export const MAX_REPORT_MS = 366 * 24 * HOUR + HOUR;

export function descriptionViolations(value: string | undefined, field = "description"): Violation[] {
  if (value === undefined) return [];
  const length = [...value].length;
  if (length > limits.description) return [{ field, description: `must be at most ${limits.description} characters (got ${length})` }];
  if (value.includes("\u0000")) return [{ field, description: "must not contain NUL characters" }];
  return [];
}

export function idViolations(value: string, field: string, what: string, optional: boolean): Violation[] {
  if (optional && value === "") return [];
  if (!isUuid(value)) return [{ field, description: value === "" ? `is required: the ${what} id (UUID)` : `must be a ${what} id (UUID), got ${JSON.stringify(value.slice(0, 80))}` }];
  return [];
}

/** A time a user claims something happened at: not in the future beyond the tolerated clock skew. */
export function pastInstant(ts: Timestamp | undefined, field: string, now: number, skewMs: number, out: Violation[]): number | undefined {
  const ms = instant(ts, field, out);
  if (ms !== undefined && ms > now + skewMs) {
    out.push({ field, description: `must not be in the future (it is ${new Date(ms).toISOString()}, the server's time is ${new Date(now).toISOString()})` });
    return undefined;
  }
  return ms;
}

export function pageSizeViolations(pageSize: number): Violation[] {
  if (pageSize < 0 || pageSize > limits.pageSize) return [{ field: "pageSize", description: `must be 1..${limits.pageSize} (0 means ${limits.defaultPageSize})` }];
  return [];
}

export function pageTokenViolations(token: string): Violation[] {
  if (token.length > limits.pageToken) return [badPageToken];
  return [];
}

/** The canonical zone name, or a violation ("" means UTC). */
export function zoneOf(name: string, out: Violation[]): string {
  if (name === "") return "UTC";
  const zone = canonicalZone(name);
  if (!zone) out.push({ field: "timeZone", description: `must be an IANA time zone name such as "Europe/Berlin" or "America/New_York" (got ${JSON.stringify(name.slice(0, 80))})` });
  return zone ?? "UTC";
}

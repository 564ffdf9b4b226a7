/**
 * Civil dates and local midnights in an IANA time zone, with nothing but Intl.DateTimeFormat
 * (the ICU time-zone database that ships with Node, updated with Node). Pure: no I/O, no clock.
 *
 * The one hard question is "at which instant does local day D start?". Usually at local midnight,
 * but a DST change may skip midnight (America/Santiago, America/Havana: 00:00 → 01:00; then the
 * day starts at the jump), repeat it (a fall-back at midnight: the FIRST 00:00 counts), or a
 * whole day may be skipped (Pacific/Apia, 2011-12-30: the day has no instant at all).
 */

export interface CivilDate {
  y: number;
  /** 1..12 */
  m: number;
  /** 1..31 */
  d: number;
}

const DAY = 86_400_000;
const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(zone: string): Intl.DateTimeFormat {
  let f = formatters.get(zone);
  if (!f) {
    f = new Intl.DateTimeFormat("en-US", {
      timeZone: zone,
      hourCycle: "h23",
      era: "short",
      year: "numeric",
      month: "numeric",
      day: "numeric",
      hour: "numeric",
      minute: "numeric",
      second: "numeric",
    });
    if (formatters.size > 1000) formatters.clear();
    formatters.set(zone, f);
  }
  return f;
}

/**
 * The canonical name of an IANA zone ("europe/berlin" → "Europe/Berlin", "UTC" stays), or
 * undefined when it is not one. Fixed offsets such as "+02:00" are refused: they have no DST and
 * are not IANA names.
 */
export function canonicalZone(name: string): string | undefined {
  if (!/^[A-Za-z][A-Za-z0-9_+\-]*(\/[A-Za-z0-9_+\-]+)*$/.test(name) || name.length > 64) return undefined;
  try {
    return new Intl.DateTimeFormat("en-US", { timeZone: name }).resolvedOptions().timeZone;
  } catch {
    return undefined;
  }
}

interface Wall extends CivilDate {
  h: number;
  mi: number;
  s: number;
}

/** The wall-clock time in `zone` at instant `ms` (to the second). */
export function wallTime(ms: number, zone: string): Wall {
  const parts = formatter(zone).formatToParts(ms);
  const get = (type: string) => Number(parts.find((p) => p.type === type)!.value);
  const bc = parts.find((p) => p.type === "era")?.value === "BC";
  const y = get("year");
  return { y: bc ? 1 - y : y, m: get("month"), d: get("day"), h: get("hour"), mi: get("minute"), s: get("second") };
}

/** Local time minus UTC at instant `ms`, in ms (e.g. +3_600_000 for Berlin in winter). */
export function offsetAt(ms: number, zone: string): number {
  const w = wallTime(ms, zone);
  const second = Math.floor(ms / 1000) * 1000;
  return utcOf(w, w.h, w.mi, w.s) - second;
}

function utcOf(c: CivilDate, h = 0, mi = 0, s = 0): number {
  const t = new Date(0);
  t.setUTCFullYear(c.y, c.m - 1, c.d);
  t.setUTCHours(h, mi, s, 0);
  return t.getTime();
}

/** The local calendar date in `zone` at instant `ms`. */
export function localDate(ms: number, zone: string): CivilDate {
  const { y, m, d } = wallTime(ms, zone);
  return { y, m, d };
}

const key = (c: CivilDate) => c.y * 10_000 + c.m * 100 + c.d;

/** c + n days on the proleptic Gregorian calendar. */
export function addDays(c: CivilDate, n: number): CivilDate {
  const t = new Date(utcOf(c) + n * DAY);
  return { y: t.getUTCFullYear(), m: t.getUTCMonth() + 1, d: t.getUTCDate() };
}

/** ISO weekday: Monday 1 … Sunday 7. */
export function isoWeekday(c: CivilDate): number {
  return ((new Date(utcOf(c)).getUTCDay() + 6) % 7) + 1;
}

/** The Monday on or before c. */
export function mondayOf(c: CivilDate): CivilDate {
  return addDays(c, 1 - isoWeekday(c));
}

/** "YYYY-MM-DD". */
export function formatDate(c: CivilDate): string {
  const y = c.y >= 0 && c.y <= 9999 ? String(c.y).padStart(4, "0") : String(c.y);
  return `${y}-${String(c.m).padStart(2, "0")}-${String(c.d).padStart(2, "0")}`;
}

/**
 * The first instant whose local date in `zone` is `c` (or, when no instant has that date, the
 * first instant of the next date that exists — such a day lasts zero time).
 */
export function startOfLocalDay(c: CivilDate, zone: string): number {
  const k = `${zone} ${key(c)}`;
  let v = dayStarts.get(k);
  if (v === undefined) {
    if (dayStarts.size >= 20_000) dayStarts.clear();
    v = computeStartOfLocalDay(c, zone);
    dayStarts.set(k, v);
  }
  return v;
}

/** Day starts already computed (reports of many users ask for the same days): zone + date → instant. */
const dayStarts = new Map<string, number>();

function computeStartOfLocalDay(c: CivilDate, zone: string): number {
  const t = utcOf(c); // local midnight, read as if it were UTC
  // Fast path (almost every day): the offset in force at midnight is consistent, and no offset
  // change happened in the 3 hours before it (so midnight cannot have occurred earlier as well).
  const guess = t - offsetAt(t, zone);
  const off = offsetAt(guess, zone);
  if (off === t - guess && offsetAt(guess - 3 * 3_600_000, zone) === off) return guess;
  // Local midnight is t - offset for whichever offset is in force then; try the offsets in force
  // around that day and keep the earliest that is consistent.
  let best: number | undefined;
  for (const probe of [t - DAY, t, t + DAY]) {
    const candidate = t - offsetAt(probe, zone);
    if (offsetAt(candidate, zone) === t - candidate && (best === undefined || candidate < best)) best = candidate;
  }
  if (best !== undefined) return best;
  // Midnight does not exist (skipped by a DST jump): the day starts at the jump, found by
  // bisection — local dates only move forward across a jump forward.
  const target = key(c);
  let lo = t - 15 * 3_600_000 - DAY; // surely before: offsets lie within -12 h..+14 h
  let hi = t + 15 * 3_600_000 + DAY; // surely on or after
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (key(localDate(mid, zone)) >= target) hi = mid;
    else lo = mid;
  }
  return hi;
}

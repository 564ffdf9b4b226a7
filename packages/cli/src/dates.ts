/**
 * Calendar days in a time zone, for `crm timers report`: a day starts at local midnight, whatever
 * the offset (DST included). Pure: the clock is passed in.
 */
import { usageError } from "./errors.js";

export interface Day {
  y: number;
  m: number;
  d: number;
}

/** The time zone of this machine (IANA name). */
export const localZone = () => Intl.DateTimeFormat().resolvedOptions().timeZone;

export function checkZone(tz: string): string {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: tz });
    return tz;
  } catch {
    throw usageError(`--tz ${JSON.stringify(tz)} is not a time zone (an IANA name such as Europe/Moscow or UTC)`);
  }
}

/** The wall-clock fields of `instant` in `tz`. */
function wall(instant: number, tz: string) {
  const parts = new Intl.DateTimeFormat("en-US", { timeZone: tz, hourCycle: "h23", year: "numeric", month: "numeric", day: "numeric", hour: "numeric", minute: "numeric", second: "numeric" }).formatToParts(new Date(instant));
  const get = (t: string) => Number(parts.find((p) => p.type === t)?.value);
  return { y: get("year"), m: get("month"), d: get("day"), h: get("hour"), min: get("minute"), s: get("second") };
}

/** tz's offset from UTC at `instant`, in milliseconds. */
function offset(instant: number, tz: string): number {
  const w = wall(instant, tz);
  return Date.UTC(w.y, w.m - 1, w.d, w.h, w.min, w.s) - Math.floor(instant / 1000) * 1000;
}

/** The instant local midnight of `day` begins in `tz`. */
export function startOfDay(day: Day, tz: string): Date {
  const guess = Date.UTC(day.y, day.m - 1, day.d);
  const first = guess - offset(guess, tz);
  return new Date(guess - offset(first, tz));
}

/** The calendar day of `instant` in `tz`. */
export function dayOf(instant: number, tz: string): Day {
  const { y, m, d } = wall(instant, tz);
  return { y, m, d };
}

/** `day` moved by `n` days (the calendar's, not 24-hour steps). */
export function addDays(day: Day, n: number): Day {
  const t = new Date(Date.UTC(day.y, day.m - 1, day.d + n));
  return { y: t.getUTCFullYear(), m: t.getUTCMonth() + 1, d: t.getUTCDate() };
}

/** "YYYY-MM-DD" → Day, or a usage error naming the option. */
export function parseDay(text: string, option: string): Day {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(text);
  if (m) {
    const day = { y: Number(m[1]), m: Number(m[2]), d: Number(m[3]) };
    const back = addDays(day, 0);
    if (back.y === day.y && back.m === day.m && back.d === day.d) return day;
  }
  throw usageError(`${option} ${JSON.stringify(text)} is not a date: use YYYY-MM-DD`);
}

export const formatDay = (d: Day) => `${d.y}-${String(d.m).padStart(2, "0")}-${String(d.d).padStart(2, "0")}`;

/** Monday of the ISO week `weeksAgo` weeks before the one holding `today`. */
export function mondayOf(today: Day, weeksAgo = 0): Day {
  const dow = new Date(Date.UTC(today.y, today.m - 1, today.d)).getUTCDay(); // 0 = Sunday
  return addDays(today, -((dow + 6) % 7) - 7 * weeksAgo);
}

/**
 * The report's range: --week (this week, Monday to Sunday), --last-week, or --from/--to (days,
 * both inclusive; --to defaults to today). `to` is exclusive: the midnight after the last day.
 */
export function reportRange(opts: { week?: boolean; lastWeek?: boolean; from?: string; to?: string }, now: number, tz: string): { from: Date; to: Date; first: Day; last: Day } {
  const picked = [opts.week, opts.lastWeek, opts.from !== undefined || opts.to !== undefined].filter(Boolean).length;
  if (picked > 1) throw usageError("give one of --week, --last-week or --from/--to");
  const today = dayOf(now, tz);
  let first: Day;
  let last: Day;
  if (opts.from !== undefined || opts.to !== undefined) {
    if (opts.from === undefined) throw usageError("--to needs --from");
    first = parseDay(opts.from, "--from");
    last = opts.to === undefined ? today : parseDay(opts.to, "--to");
    if (startOfDay(last, tz) < startOfDay(first, tz)) throw usageError(`--to ${opts.to} is before --from ${opts.from}`);
  } else {
    first = mondayOf(today, opts.lastWeek ? 1 : 0);
    last = addDays(first, 6);
  }
  return { from: startOfDay(first, tz), to: startOfDay(addDays(last, 1), tz), first, last };
}

/**
 * GetReport's arithmetic: worked time per local day or ISO week of a time zone. Pure.
 * Periods follow the zone's calendar (a day across a DST change lasts 23 or 25 hours), entries
 * are split at period boundaries and clipped to [from, to), and a running timer counts up to now
 * (never past the forgotten-timer maximum, where the background job will stop it).
 */
import { addDays, formatDate, localDate, mondayOf, startOfLocalDay, type CivilDate } from "./zone.js";

export type GroupBy = "day" | "week";

export interface ReportEntry {
  /** ms since the epoch */
  start: number;
  /** ms since the epoch; undefined while running */
  end?: number | undefined;
  billable?: boolean | undefined;
  /** "deal:<id>" or "company:<id>" when booked on a record. */
  record?: string | undefined;
}

export interface ReportPeriodMs {
  /** The instant the period starts, clipped to [from, to). */
  start: number;
  /** The instant it ends (exclusive), clipped to [from, to). */
  end: number;
  /** Local date of the period's first day, YYYY-MM-DD. */
  label: string;
  totalMs: number;
  billableMs: number;
}

/** Time booked on one record over [from, to). */
export interface RecordTotalMs {
  record: string;
  totalMs: number;
  billableMs: number;
}

export interface ReportInput {
  entries: ReportEntry[];
  from: number;
  to: number;
  zone: string;
  groupBy: GroupBy;
  now: number;
  /** A running timer counts at most this long. */
  maxRunningMs: number;
}

/** The periods of [from, to) in `zone`, in time order, without totals. Zero-length days (a day a zone skipped) are left out. */
export function periods(from: number, to: number, zone: string, groupBy: GroupBy): ReportPeriodMs[] {
  const step = groupBy === "week" ? 7 : 1;
  let day: CivilDate = localDate(from, zone);
  if (groupBy === "week") day = mondayOf(day);
  let start = startOfLocalDay(day, zone);
  const out: ReportPeriodMs[] = [];
  while (start < to) {
    const next = addDays(day, step);
    const end = startOfLocalDay(next, zone);
    const clippedStart = Math.max(start, from);
    const clippedEnd = Math.min(end, to);
    if (clippedEnd > clippedStart) out.push({ start: clippedStart, end: clippedEnd, label: formatDate(day), totalMs: 0, billableMs: 0 });
    day = next;
    start = end;
  }
  return out;
}

/** Index of the last period whose start is <= t (periods are sorted and contiguous). */
function periodAt(ps: ReportPeriodMs[], t: number): number {
  let lo = 0;
  let hi = ps.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (ps[mid]!.start <= t) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

export interface Report {
  periods: ReportPeriodMs[];
  totalMs: number;
  billableMs: number;
  /** Per record booked on, the largest total first (ties: by record). */
  records: RecordTotalMs[];
}

export function buildReport(input: ReportInput): Report {
  const ps = periods(input.from, input.to, input.zone, input.groupBy);
  let totalMs = 0;
  let billableMs = 0;
  const byRecord = new Map<string, RecordTotalMs>();
  const report = (): Report => ({
    periods: ps,
    totalMs,
    billableMs,
    records: [...byRecord.values()].sort((a, b) => b.totalMs - a.totalMs || (a.record < b.record ? -1 : 1)),
  });
  if (ps.length === 0) return report();
  for (const e of input.entries) {
    const rawEnd = e.end ?? Math.min(input.now, e.start + input.maxRunningMs);
    const s = Math.max(e.start, input.from);
    const end = Math.min(rawEnd, input.to);
    if (end <= s) continue;
    const billed = e.billable ? end - s : 0;
    if (e.record) {
      const r = byRecord.get(e.record) ?? { record: e.record, totalMs: 0, billableMs: 0 };
      r.totalMs += end - s;
      r.billableMs += billed;
      byRecord.set(e.record, r);
    }
    billableMs += billed;
    for (let i = periodAt(ps, s); i < ps.length && ps[i]!.start < end; i++) {
      const p = ps[i]!;
      const part = Math.min(end, p.end) - Math.max(s, p.start);
      if (part > 0) {
        p.totalMs += part;
        if (e.billable) p.billableMs += part;
        totalMs += part;
      }
    }
  }
  return report();
}

/**
 * The timers domain's rules used on both sides: by the service's request checks (validation.ts,
 * present.ts) and by its store (services/timers/store), which applies them again against the
 * database clock. Pure: no I/O, the clock is passed in.
 */
import { create } from "@bufbuild/protobuf";
import { DurationSchema, timestampDate, type Duration, type Timestamp } from "@bufbuild/protobuf/wkt";
import { isUuid, type Violation } from "@crm/kit";

export const HOUR = 3_600_000;
/** An entry added or edited by hand may last at most this long. */
export const MAX_MANUAL_MS = 24 * HOUR;

export const limits = {
  description: 1000,
  /** ListTimers: 1..pageSize, 0 means defaultPageSize. */
  pageSize: 500,
  defaultPageSize: 100,
  /** Longer is no page token this service made. */
  pageToken: 200,
} as const;

/** A page token that is not one of ours (too long, or not what the store encoded). */
export const badPageToken: Violation = { field: "pageToken", description: "is not a token this service returned; start again with an empty pageToken" };

/** ListTimers' page size as the store applies it: 0 is the default, the rest clamped (the service rejects what lies outside). */
export const pageSizeOf = (n: number) => Math.min(Math.max(n || limits.defaultPageSize, 1), limits.pageSize);

const MIN_TIME = 0; // 1970-01-01
const MAX_TIME = 253402300799999; // 9999-12-31T23:59:59.999Z

/** A timestamp as ms, or a violation (into `out`) when it is out of range. `undefined` in, `undefined` out. */
export function instant(ts: Timestamp | undefined, field: string, out: Violation[]): number | undefined {
  if (!ts) return undefined;
  const ms = timestampDate(ts).getTime();
  if (!Number.isFinite(ms) || ms < MIN_TIME || ms > MAX_TIME) {
    out.push({ field, description: "must be between 1970-01-01T00:00:00Z and 9999-12-31T23:59:59Z" });
    return undefined;
  }
  return ms;
}

/** A non-negative duration, rounded to the millisecond. */
export function durationFromMs(ms: number): Duration {
  const whole = Math.max(0, Math.round(ms));
  return create(DurationSchema, { seconds: BigInt(Math.floor(whole / 1000)), nanos: (whole % 1000) * 1_000_000 });
}

const iso = (ms: number) => new Date(ms).toISOString();

/**
 * The rules for times entered by hand (AddTimer, ChangeTimer): end after start, at most 24 h.
 * `end` null is a running timer, which lasts until `now`; the violation names `field`.
 */
export function manualRangeViolations(start: number, end: number | null, { now, field = "endTime" }: { now?: number; field?: string } = {}): Violation[] {
  if (end !== null && end <= start) return [{ field, description: `must be after startTime (start ${iso(start)}, end ${iso(end)})` }];
  if ((end ?? now ?? start) - start > MAX_MANUAL_MS) return [{ field, description: "an entry may last at most 24 hours; split longer work into several entries" }];
  return [];
}

/** What a time entry may be booked on: a deal or a company of the records domain. */
export type TimerRecord = { deal: string | null; company: string | null };

/** RecordRef's object types as numbers (crm.records.v1.ObjectType), so this file stays free of generated code. */
const OBJECT_TYPE = { unspecified: 0, company: 1, deal: 3 } as const;

/**
 * A request's record reference as the store writes it: undefined when unset (unchanged / none),
 * both null for an empty reference ({}: remove it), else the deal or the company. A violation
 * naming `field` for anything else (a person, a bad id).
 */
export function timerRecordOf(ref: { objectType: number; id: string } | undefined, field: string, out: Violation[]): TimerRecord | undefined {
  if (!ref) return undefined;
  if (ref.objectType === OBJECT_TYPE.unspecified && ref.id === "") return { deal: null, company: null };
  const bad: Violation[] = [];
  if (ref.objectType !== OBJECT_TYPE.deal && ref.objectType !== OBJECT_TYPE.company) {
    bad.push({ field: `${field}.objectType`, description: "must be OBJECT_TYPE_DEAL or OBJECT_TYPE_COMPANY: time is booked on a deal or a customer company (send {} to remove the record)" });
  }
  if (!isUuid(ref.id)) bad.push({ field: `${field}.id`, description: `must be the record's id (UUID), got ${JSON.stringify(ref.id.slice(0, 80))}` });
  out.push(...bad);
  if (bad.length) return undefined;
  const id = ref.id.toLowerCase();
  return ref.objectType === OBJECT_TYPE.deal ? { deal: id, company: null } : { deal: null, company: id };
}

/**
 * The timers domain's rules used on both sides: by the service's request checks (validation.ts,
 * present.ts) and by its store (services/timers/store), which applies them again against the
 * database clock. Pure: no I/O, the clock is passed in.
 */
import { create } from "@bufbuild/protobuf";
import { DurationSchema, type Duration } from "@bufbuild/protobuf/wkt";
import type { Violation } from "@crm/kit";

export const HOUR = 3_600_000;
/** An entry added or edited by hand may last at most this long. */
export const MAX_MANUAL_MS = 24 * HOUR;

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

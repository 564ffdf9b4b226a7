/** How timers leave the service: durations computed at response time. Pure. */
import { create } from "@bufbuild/protobuf";
import { timestampMs, type Duration } from "@bufbuild/protobuf/wkt";
import { DurationSchema } from "@bufbuild/protobuf/wkt";
import { TimerSchema, type Timer } from "@crm/gen/crm/timer/v1/timer_pb";

export function durationFromMs(ms: number): Duration {
  const whole = Math.max(0, Math.round(ms));
  return create(DurationSchema, { seconds: BigInt(Math.floor(whole / 1000)), nanos: (whole % 1000) * 1_000_000 });
}

/** The timer with `duration` = end - start, or, while it runs, the time elapsed until `now`. */
export function present(t: Timer, now: number): Timer {
  const start = t.startTime ? timestampMs(t.startTime) : now;
  const end = t.endTime ? timestampMs(t.endTime) : now;
  return create(TimerSchema, { ...t, duration: durationFromMs(end - start) });
}

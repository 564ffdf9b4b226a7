/** How timers leave the service: durations computed at response time. Pure. */
import { create } from "@bufbuild/protobuf";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { TimerSchema, type Timer } from "@crm/gen/crm/timer/v1/timer_pb";
import { durationFromMs } from "./rules.js";

/** The timer with `duration` = end - start, or, while it runs, the time elapsed until `now`. */
export function present(t: Timer, now: number): Timer {
  const start = t.startTime ? timestampMs(t.startTime) : now;
  const end = t.endTime ? timestampMs(t.endTime) : now;
  return create(TimerSchema, { ...t, duration: durationFromMs(end - start) });
}

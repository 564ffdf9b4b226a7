import { z } from "zod";
import { env } from "@crm/kit";

export const timersEnv = z.object({
  /** A running timer older than this is stopped at this length by the forgotten-timer job. */
  TIMER_MAX_RUNNING_HOURS: env.int(12, 1, 168),
  /** How often each replica looks for forgotten timers (replicas never stop one twice). */
  TIMER_SWEEP_INTERVAL_SECONDS: env.int(60, 1, 3600),
  /** How long a cached running timer lives in Redis at most (writes invalidate it at once). */
  TIMER_CACHE_TTL_SECONDS: env.int(120, 1, 86_400),
  /** How far in the future a client's start/end time may lie (clock skew); such times count as now. */
  TIMER_CLOCK_SKEW_SECONDS: env.int(10, 0, 300),
});

export type TimersConfig = z.infer<typeof timersEnv>;

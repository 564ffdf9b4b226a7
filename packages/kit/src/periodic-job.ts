/**
 * A job each replica of a service runs every `intervalMs` (jittered ±20 %), asking dbservice to do
 * one bounded piece of housekeeping at a time (the timers' forgotten-timer stop, the records'
 * trash purge and change-log trimming). One pass at a time per process; `stop()` waits for a pass
 * under way. A refusal by dbservice (permission_denied) says how the service proves who it is.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import type { Logger } from "./logger.js";

export interface PeriodicJobOptions {
  /** What the job does, for the log ("trash purge"). */
  what: string;
  /** The calling service's certificate name (CN), named when dbservice refuses the job. */
  service: string;
  log: Logger;
  intervalMs: number;
  /** One full pass (calls again while a batch comes back full, until `stopped()`); resolves to the rows handled. */
  pass(stopped: () => boolean): Promise<number>;
  /** Logs a pass that handled `n` > 0 rows. */
  done(n: number): void;
  /** Delay of the first pass; default: a random moment between min(5 s, intervalMs) and twice that. */
  firstDelayMs?: () => number;
}

export interface PeriodicJob {
  /** One full pass; resolves to the rows handled (joins a pass under way). */
  runOnce(): Promise<number>;
  start(): void;
  stop(): Promise<void>;
}

export function createPeriodicJob(o: PeriodicJobOptions): PeriodicJob {
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<number> | undefined;
  let stopped = false;

  const runOnce = () => {
    running ??= o.pass(() => stopped).finally(() => (running = undefined));
    return running;
  };

  const schedule = (ms: number) => {
    if (stopped) return;
    timer = setTimeout(() => {
      runOnce()
        .then((n) => n > 0 && o.done(n))
        .catch((err) =>
          o.log.warn(
            { err: String(err) },
            ConnectError.from(err).code === Code.PermissionDenied
              ? `${o.what} refused by dbservice: the ${o.service} service proves who it is with its mTLS client certificate (CN=${o.service}); set TLS_CERT_FILE/TLS_KEY_FILE/TLS_CA_FILE`
              : `${o.what} failed; it runs again at the next interval`,
          ),
        )
        .finally(() => schedule(o.intervalMs * (0.8 + Math.random() * 0.4)));
    }, ms);
    timer.unref();
  };

  return {
    runOnce,
    // The first pass comes after the start-up (5-10 s, jittered), not during it: on PGlite's one
    // connection a pass would queue the start's own queries behind it.
    start: () => schedule(o.firstDelayMs?.() ?? Math.min(5_000, o.intervalMs) * (1 + Math.random())),
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running?.catch(() => {});
    },
  };
}

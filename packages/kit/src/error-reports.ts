/**
 * Every service reports its errors to the logs service (crm.logs.v1.LogsService/SaveLogs), as the
 * original design did, without slowing the request that failed:
 * - the logger hands every error/fatal record to the process's error sink (logger.ts) — this covers
 *   the error interceptor's "unhandled error" (an `internal` answer) and any log.error;
 * - the sink is a bounded in-memory queue flushed in batches from a timer, outside the request's
 *   call and trace context, under the service's own identity; when full, the oldest reports are
 *   dropped and counted; a failed send is logged as a warning (never as an error, which would loop).
 * All-in-one sends through the in-process LogsService; a cluster service through its logs peer.
 */
import type { Client } from "@connectrpc/connect";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { LogLevel, type LogsService } from "@crm/gen/crm/logs/v1/logs_pb";
import { callContext } from "./context.js";
import type { Logger } from "pino"; // not ./logger.js: logger.ts imports this module, directly or not
import { untraced } from "./tracing-interceptor.js";
import { scrubText } from "./text-rules.js";

export interface ErrorReport {
  service: string;
  /** error and fatal always; warn and info with LOGS_REPORT_LEVEL (logger.ts). */
  level: "info" | "warn" | "error" | "fatal";
  message: string;
  time: Date;
  traceId?: string | undefined;
  companyId?: string | undefined;
  userId?: string | undefined;
  attributes: Record<string, string>;
}

type Sink = (report: ErrorReport) => void;
let sink: Sink | undefined;

/** Installs (or removes) the process's error sink. */
export function setErrorSink(next: Sink | undefined) {
  sink = next;
}

export function errorSinkActive(): boolean {
  return sink !== undefined;
}

/** Hands a report to the sink; never throws, never waits. */
export function reportError(report: ErrorReport) {
  try {
    sink?.(report);
  } catch {
    // reporting must never break the caller
  }
}

export interface ErrorReporter {
  report(report: ErrorReport): void;
  /** Sends what is queued now. */
  flush(): Promise<void>;
  close(): Promise<void>;
  readonly stats: { queued: number; sent: number; dropped: number; failedSends: number };
}

export interface ErrorReporterOptions {
  send(reports: ErrorReport[]): Promise<void>;
  log: Logger;
  maxQueue?: number;
  maxBatch?: number;
  flushMs?: number;
}

export function createErrorReporter(opts: ErrorReporterOptions): ErrorReporter {
  const maxQueue = opts.maxQueue ?? 1000;
  const maxBatch = opts.maxBatch ?? 100;
  const flushMs = opts.flushMs ?? 1000;
  const queue: ErrorReport[] = [];
  const stats = { queued: 0, sent: 0, dropped: 0, failedSends: 0 };
  let timer: NodeJS.Timeout | undefined;
  let sending: Promise<void> | undefined;
  let lastWarn = 0;

  const warn = (msg: string, fields: Record<string, unknown>) => {
    if (Date.now() - lastWarn < 60_000) return;
    lastWarn = Date.now();
    opts.log.warn({ ...fields, ...stats }, msg);
  };

  async function drain() {
    while (queue.length > 0) {
      const batch = queue.splice(0, maxBatch);
      stats.queued = queue.length;
      try {
        await opts.send(batch);
        stats.sent += batch.length;
      } catch (err) {
        stats.failedSends++;
        stats.dropped += batch.length;
        warn("could not send error reports to the logs service; they were dropped (is the logs service running? LOGS_URL)", { err: String(err) });
        return;
      }
    }
  }

  const flush = (): Promise<void> => {
    clearTimeout(timer);
    timer = undefined;
    if (sending) return sending.then(() => (queue.length ? flush() : undefined));
    // Detached from the failing request: no forwarded user token, no parent span.
    sending = callContext.exit(() => untraced(() => drain())).finally(() => (sending = undefined));
    return sending;
  };

  return {
    stats,
    report(r) {
      queue.push(r);
      if (queue.length > maxQueue) {
        const n = queue.length - maxQueue;
        queue.splice(0, n);
        stats.dropped += n;
        warn("error report queue is full: oldest reports dropped", {});
      }
      stats.queued = queue.length;
      if (queue.length >= maxBatch) void flush();
      else if (!timer && !sending) timer = callContext.exit(() => setTimeout(() => void flush(), flushMs).unref());
    },
    flush,
    async close() {
      await flush();
    },
  };
}

/** Sends reports as SaveLogs entries through a LogsService client (in-process or network peer). */
export function logsServiceSender(client: Client<typeof LogsService>): (reports: ErrorReport[]) => Promise<void> {
  return async (reports) => {
    await client.saveLogs(
      {
        entries: reports.map((r) => ({
          name: r.service,
          level: { info: LogLevel.INFO, warn: LogLevel.WARN, error: LogLevel.ERROR, fatal: LogLevel.FATAL }[r.level],
          // Error text can hold anything (library messages, ANSI colours): scrubbed, so the text
          // rule (text-rules.ts) never refuses a batch of reports.
          message: scrubText(r.message).trim() || "(no message)", // the logs service refuses an empty one
          companyId: r.companyId ?? "",
          userId: r.userId ?? "",
          traceId: r.traceId ?? "",
          attributes: Object.fromEntries(Object.entries(r.attributes).map(([k, v]) => [scrubText(k, false), scrubText(v)])),
          time: timestampFromDate(r.time),
        })),
      },
      { timeoutMs: 5_000 },
    );
  };
}

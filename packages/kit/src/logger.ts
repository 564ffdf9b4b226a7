/**
 * pino JSON logs to stdout with the service name and the current request's ids (request_id,
 * trace_id, span_id, company_id, user_id). Error and fatal records also go to the process's error
 * sink (error-reports.ts: shipped to the logs service in the background, and on to Loki); with
 * `reportLevel` (LOGS_REPORT_LEVEL) warnings, or info lines and up, too.
 */
import { pino, type Logger } from "pino";
import { currentCall } from "./context.js";
import { errorSinkActive, reportError } from "./error-reports.js";
import { mapStack } from "./stack-maps.js";
import { traceIds } from "./tracing-interceptor.js";

export type { Logger };

/** The levels a logger may hand to the error sink from (LOGS_REPORT_LEVEL): error, or down to warn or info. */
export const reportLevels = ["info", "warn", "error"] as const;
export type ReportLevel = (typeof reportLevels)[number];
const reportFrom: Record<ReportLevel, number> = { info: 30, warn: 40, error: 50 };

/**
 * `reportErrors: false` for loggers that must not feed the error sink (the logs service's own
 * output); `reportLevel`: the lowest level handed to it (default error: error and fatal).
 */
export function createLogger(service: string, level = "info", opts: { reportErrors?: boolean; reportLevel?: ReportLevel } = {}): Logger {
  const report = opts.reportErrors ?? true;
  const from = reportFrom[opts.reportLevel ?? "error"];
  return pino({
    level,
    base: { service },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
    serializers: { err: serializeError },
    mixin() {
      const call = currentCall();
      const ids = traceIds(call?.traceparent);
      if (!call) return ids;
      return { request_id: call.requestId, ...ids, ...(call.companyId ? { company_id: call.companyId, user_id: call.userId } : {}) };
    },
    hooks: {
      logMethod(args, method, levelValue) {
        if (report && levelValue >= from && errorSinkActive()) reportError(errorReportOf(service, levelValue, args));
        return method.apply(this, args as Parameters<typeof method>);
      },
    },
  });
}

/** pino's error serializer, with the stack's bundle frames mapped to their sources (stack-maps.ts). */
function serializeError(err: unknown) {
  const out = pino.stdSerializers.err(err as Error);
  if (out && typeof out.stack === "string") out.stack = mapStack(out.stack);
  return out;
}

const clip = (s: string, n: number) => (s.length > n ? `${s.slice(0, n)}…` : s);

/** A report (an error's, or a line's at LOGS_REPORT_LEVEL) from a pino call's arguments: (obj, msg) or (msg) or (err, msg). */
function errorReportOf(service: string, levelValue: number, args: unknown[]) {
  const [first, second] = args;
  const obj = typeof first === "object" && first !== null ? (first as Record<string, unknown>) : {};
  const err = first instanceof Error ? first : obj.err;
  const message = typeof first === "string" ? first : typeof second === "string" ? second : err instanceof Error ? err.message : levelValue >= 50 ? "error" : "(no message)";
  const attributes: Record<string, string> = {};
  for (const [k, v] of Object.entries(obj)) {
    if (k === "err" || v === undefined || Object.keys(attributes).length >= 16) continue;
    attributes[k] = clip(typeof v === "string" ? v : JSON.stringify(v) ?? String(v), 1024);
  }
  if (err instanceof Error) {
    attributes.error = clip(err.message, 2048);
    attributes.error_type = err.name;
    if (err.stack) attributes.stack = clip(mapStack(err.stack), 4096);
  } else if (err !== undefined) {
    attributes.error = clip(String(err), 2048);
  }
  const call = currentCall();
  const ids = traceIds(call?.traceparent);
  if (call) attributes.request_id = call.requestId;
  return {
    service,
    level: levelValue >= 60 ? ("fatal" as const) : levelValue >= 50 ? ("error" as const) : levelValue >= 40 ? ("warn" as const) : ("info" as const),
    message: clip(message, 8192),
    time: new Date(),
    traceId: ids.trace_id,
    companyId: call?.companyId,
    userId: call?.userId,
    attributes,
  };
}

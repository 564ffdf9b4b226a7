/** pino JSON logs to stdout with the service name and the current request's ids. */
import { pino, type Logger } from "pino";
import { currentCall } from "./context.js";

export type { Logger };

export function createLogger(service: string, level = "info"): Logger {
  return pino({
    level,
    base: { service },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
    mixin() {
      const call = currentCall();
      return call ? { request_id: call.requestId } : {};
    },
  });
}

/** The logs service module: SaveLogs into a Loki shipper (LOKI_URL) or this process's log. */
import { createLogger, type Logger, type ServiceModule } from "@crm/kit";
import { LogsService } from "@crm/gen/crm/logs/v1/logs_pb";
import type { LogsConfig } from "./config.js";
import { logsService } from "./logs-service.js";
import { createLokiShipper, processLogSink, type Sink } from "./shipper.js";

export interface LogsModuleDeps {
  cfg: LogsConfig;
  log: Logger;
  /** Level of the process log that receives entries when LOKI_URL is unset. */
  logLevel?: string;
  fetch?: typeof fetch;
}

export function createSink(d: LogsModuleDeps): Sink {
  const c = d.cfg;
  if (!c.LOKI_URL) {
    d.log.info("logs: LOKI_URL is not set, saved log entries are written to this process's log");
    // Its own logger: shipped error entries must not feed the error sink again.
    return processLogSink(createLogger("logs", d.logLevel ?? "info", { reportErrors: false }));
  }
  return createLokiShipper({
    url: c.LOKI_URL,
    tenant: c.LOKI_TENANT,
    batchEntries: c.LOKI_BATCH_ENTRIES,
    batchBytes: c.LOKI_BATCH_BYTES,
    flushMs: c.LOKI_FLUSH_MS,
    bufferEntries: c.LOKI_BUFFER_ENTRIES,
    bufferBytes: c.LOKI_BUFFER_BYTES,
    timeoutMs: c.LOKI_TIMEOUT_MS,
    retryFirstMs: c.LOKI_RETRY_FIRST_MS,
    retryMaxMs: c.LOKI_RETRY_MAX_MS,
    companyLabel: c.LOKI_COMPANY_LABEL,
    structuredMetadata: c.LOKI_STRUCTURED_METADATA,
    log: d.log,
    ...(d.fetch ? { fetch: d.fetch } : {}),
  });
}

export function createLogsModule(d: LogsModuleDeps): ServiceModule & { sink: Sink } {
  const sink = createSink(d);
  const impl = logsService({ sink });
  return {
    name: "logs",
    services: [LogsService],
    sink,
    routes: (router) => void router.service(LogsService, impl),
    close: () => sink.close(5_000),
  };
}

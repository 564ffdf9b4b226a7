/**
 * logs' one wiring, used by its own process (main.ts) and by the all-in-one. LOKI_URL, else this
 * process's log, is a setting (module.ts). Where the process's own error reports go is the
 * caller's choice: main.ts pushes them into this module's sink, the all-in-one sends them here
 * through the in-memory client like every other module's.
 */
import type { Logger, ServiceModule } from "@crm/kit";
import type { LogsConfig } from "./config.js";
import { createLogsModule } from "./module.js";
import type { Sink } from "./shipper.js";

export interface LogsBuildDeps {
  cfg: LogsConfig;
  log: Logger;
  /** LOG_LEVEL of the process log that receives entries when LOKI_URL is unset. */
  logLevel: string;
}

export async function build(d: LogsBuildDeps): Promise<ServiceModule & { sink: Sink }> {
  return createLogsModule(d);
}

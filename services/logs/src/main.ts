/** logs as its own process. Its own errors go straight into its sink (no network hop to itself). */
import { loadConfig, runService, setErrorSink } from "@crm/kit";
import { build } from "./build.js";
import { logsEnv } from "./config.js";
import { recordOfReport } from "./reports.js";

export function start() {
  return runService("logs", async ({ log }) => {
    const cfg = loadConfig(logsEnv);
    const module = await build({ cfg, log, logLevel: process.env.LOG_LEVEL ?? "info" });
    setErrorSink((report) => module.sink.push([recordOfReport(report)]));
    return module;
  });
}

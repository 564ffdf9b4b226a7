/** records as its own process. */
import { loadConfig, runService } from "@crm/kit";
import { build } from "./build.js";
import { recordsEnv } from "./config.js";

export function start() {
  return runService("records", async ({ log, peer }) => build({ cfg: loadConfig(recordsEnv), peer, log }));
}

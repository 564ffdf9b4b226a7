/** admin as its own process. */
import { loadConfig, requirePublicUrl, runService } from "@crm/kit";
import { build } from "./build.js";
import { adminEnv } from "./config.js";

export function start() {
  return runService("admin", async ({ log, peer, revocations }) => {
    const cfg = loadConfig(adminEnv);
    const url = requirePublicUrl();
    return build({ cfg, peer, revocations, log, publicUrl: () => url });
  });
}

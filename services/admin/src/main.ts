/** admin as its own process. */
import { loadConfig, runService } from "@crm/kit";
import { DbAdminService } from "@crm/gen/crm/db/v1/db_admin_pb";
import { adminEnv } from "./config.js";
import { createAdminModule } from "./module.js";

export function start() {
  return runService("admin", async ({ log, peer, revocations }) => {
    const cfg = loadConfig(adminEnv);
    if (!cfg.APP_URL) log.warn(`APP_URL is not set: invitation links point to http://localhost:8080`);
    return createAdminModule({ cfg, db: peer("dbservice", DbAdminService), revocations, log });
  });
}

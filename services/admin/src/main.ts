/** admin as its own process. */
import { loadConfig, requirePublicUrl, runService } from "@crm/kit";
import { DbAdminService } from "@crm/gen/crm/db/v1/db_admin_pb";
import { adminEnv } from "./config.js";
import { createAdminModule } from "./module.js";

export function start() {
  return runService("admin", async ({ log, peer, revocations }) => {
    const cfg = loadConfig(adminEnv);
    const url = requirePublicUrl();
    return createAdminModule({ cfg, db: peer("dbservice", DbAdminService), revocations, log, publicUrl: () => url });
  });
}

/** The admin service module: AdminService (every RPC needs role owner or admin). */
import type { Client } from "@connectrpc/connect";
import type { Logger, Revocations, ServiceModule } from "@crm/kit";
import { AdminService } from "@crm/gen/crm/admin/v1/admin_pb";
import type { DbAdminService } from "@crm/gen/crm/db/v1/db_admin_pb";
import { adminService } from "./admin-service.js";
import type { AdminConfig } from "./config.js";

export interface AdminModuleDeps {
  cfg: AdminConfig;
  db: Client<typeof DbAdminService>;
  revocations: Revocations;
  log: Logger;
  /** PUBLIC_URL: invitation links are <it>/accept-invite#token=… (a function: the all-in-one knows its port only once listening). */
  publicUrl: () => string;
}

/** Access tokens live at most 1 h (ACCESS_TOKEN_TTL_SECONDS ≤ 3600): a revoked session stays listed that long. */
const REVOCATION_TTL_SECONDS = 3600 + 60;

export function createAdminModule(d: AdminModuleDeps): ServiceModule {
  const impl = adminService({
    db: d.db,
    revocations: d.revocations,
    log: d.log,
    appUrl: d.publicUrl,
    inviteTtlHours: d.cfg.INVITE_TTL_HOURS,
    revocationTtlSeconds: REVOCATION_TTL_SECONDS,
  });
  return {
    name: "admin",
    services: [AdminService],
    routes(router) {
      router.service(AdminService, impl);
    },
  };
}

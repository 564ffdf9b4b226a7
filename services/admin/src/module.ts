/** The admin service module: AdminService and AuditService (every RPC needs role owner or admin), and the audit log's shipping to Loki. */
import type { Client } from "@connectrpc/connect";
import type { Consumer, EventBus, Logger, Revocations, ServiceModule } from "@crm/kit";
import { AdminService } from "@crm/gen/crm/admin/v1/admin_pb";
import { AuditService } from "@crm/gen/crm/admin/v1/audit_pb";
import type { DbAdminService } from "@crm/gen/crm/db/v1/db_admin_pb";
import type { DbAuditService } from "@crm/gen/crm/db/v1/db_audit_pb";
import type { LogsService } from "@crm/gen/crm/logs/v1/logs_pb";
import { adminService } from "./admin-service.js";
import { auditService } from "./audit-service.js";
import { shipAuditEvents } from "./audit-shipping.js";
import type { AdminConfig } from "./config.js";

export interface AdminModuleDeps {
  cfg: AdminConfig;
  db: Client<typeof DbAdminService>;
  dbAudit: Client<typeof DbAuditService>;
  revocations: Revocations;
  log: Logger;
  /** PUBLIC_URL: invitation links are <it>/accept-invite#token=… (a function: the all-in-one knows its port only once listening). */
  publicUrl: () => string;
  /** The audit queue's bus and the logs service: audit events go to Loki. Unset: not shipped (tests of the handlers). */
  shipping?: { bus: EventBus; logs: Client<typeof LogsService>; queue?: string | undefined } | undefined;
}

/** Access tokens live at most 1 h (ACCESS_TOKEN_TTL_SECONDS ≤ 3600): a revoked session stays listed that long. */
const REVOCATION_TTL_SECONDS = 3600 + 60;

export async function createAdminModule(d: AdminModuleDeps): Promise<ServiceModule> {
  const impl = adminService({
    db: d.db,
    revocations: d.revocations,
    log: d.log,
    appUrl: d.publicUrl,
    inviteTtlHours: d.cfg.INVITE_TTL_HOURS,
    revocationTtlSeconds: REVOCATION_TTL_SECONDS,
  });
  const audit = auditService({ db: d.dbAudit });
  const consumer: Consumer | undefined = d.shipping ? await shipAuditEvents({ ...d.shipping, log: d.log }) : undefined;
  return {
    name: "admin",
    services: [AdminService, AuditService],
    routes(router) {
      router.service(AdminService, impl);
      router.service(AuditService, audit);
    },
    close: async () => consumer?.close(),
  };
}

/**
 * admin's one wiring, used by its own process (main.ts) and by the all-in-one; the caller only
 * chooses the providers (how dbservice and logs are reached, the revocation list, the event bus
 * the audit queue is on: RabbitMQ or memory, the links' base address).
 */
import type { Basics, EventBus, ServiceModule } from "@crm/kit";
import { DbAdminService } from "@crm/gen/crm/db/v1/db_admin_pb";
import { DbAuditService } from "@crm/gen/crm/db/v1/db_audit_pb";
import { LogsService } from "@crm/gen/crm/logs/v1/logs_pb";
import type { AdminConfig } from "./config.js";
import { createAdminModule } from "./module.js";

export interface AdminBuildDeps extends Pick<Basics, "log" | "peer" | "revocations"> {
  cfg: AdminConfig;
  /** PUBLIC_URL: invitation links are <it>/accept-invite#token=… (a function: the all-in-one knows its port only once listening). */
  publicUrl: () => string;
  /** Where the audit queue is (dbservice's relay publishes to it): its events are shipped to Loki through logs. */
  bus: EventBus;
}

export async function build(d: AdminBuildDeps): Promise<ServiceModule> {
  return createAdminModule({
    cfg: d.cfg,
    db: d.peer("dbservice", DbAdminService),
    dbAudit: d.peer("dbservice", DbAuditService),
    revocations: d.revocations,
    log: d.log,
    publicUrl: d.publicUrl,
    shipping: { bus: d.bus, logs: d.peer("logs", LogsService), queue: d.cfg.AUDIT_QUEUE },
  });
}

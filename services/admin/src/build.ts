/**
 * admin's one wiring, used by its own process (main.ts) and by the all-in-one; the caller only
 * chooses the providers (how dbservice is reached, the revocation list, the links' base address).
 */
import type { Basics, ServiceModule } from "@crm/kit";
import { DbAdminService } from "@crm/gen/crm/db/v1/db_admin_pb";
import type { AdminConfig } from "./config.js";
import { createAdminModule } from "./module.js";

export interface AdminBuildDeps extends Pick<Basics, "log" | "peer" | "revocations"> {
  cfg: AdminConfig;
  /** PUBLIC_URL: invitation links are <it>/accept-invite#token=… (a function: the all-in-one knows its port only once listening). */
  publicUrl: () => string;
}

export async function build(d: AdminBuildDeps): Promise<ServiceModule> {
  return createAdminModule({ cfg: d.cfg, db: d.peer("dbservice", DbAdminService), revocations: d.revocations, log: d.log, publicUrl: d.publicUrl });
}

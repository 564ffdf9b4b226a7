/**
 * The admin store as dbservice mounts it: the DbAdminService implementation (SQL on users,
 * invitation and password-reset tokens), the audit log (DbAuditService, the `auditLog` other
 * stores write with, and the retention job's purge) and the folder of its migrations, run by
 * dbservice's migration runner with every other domain's. 1700000000030_admin_email.sql also
 * creates the e-mail domain's `emails` table: one recorded migration name, so the file was not
 * split.
 */
import { fileURLToPath } from "node:url";

export { adminStore, type AdminStoreDeps } from "./admin-store.js";
export { auditLog, auditStore, purgeAuditEvents, type AuditInput, type AuditLog } from "./audit-store.js";

/** In the production bundle this resolves beside dist/crm.mjs (dist/migrations, where the build copies every domain's). */
export const migrationsDir = fileURLToPath(new URL("./migrations", import.meta.url));

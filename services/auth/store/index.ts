/**
 * The auth store as dbservice mounts it: the DbAuthService implementation (SQL on companies,
 * users, sessions and refresh tokens), the role and status mappings admin's store shares, and the
 * folder of its migrations, run by dbservice's migration runner with every other domain's.
 */
import { fileURLToPath } from "node:url";

export { authStore, roleToProto, statusToProto, type AuthAudit, type AuthStoreDeps } from "./auth-store.js";

/** In the production bundle this resolves beside dist/crm.mjs (dist/migrations, where the build copies every domain's). */
export const migrationsDir = fileURLToPath(new URL("./migrations", import.meta.url));

/**
 * The webhooks store as dbservice mounts it: the DbWebhooksService implementation (endpoints, the
 * delivery queue and its log) and the folder of its migrations, run by dbservice's migration
 * runner with every other domain's.
 */
import { fileURLToPath } from "node:url";

export { webhooksStore, type WebhooksStoreDeps } from "./webhooks-store.js";

/** In the production bundle this resolves beside dist/crm.mjs (dist/migrations, where the build copies every domain's). */
export const migrationsDir = fileURLToPath(new URL("./migrations", import.meta.url));

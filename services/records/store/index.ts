/**
 * The records store as dbservice mounts it: the DbRecordsService implementation (SQL on the rec_*
 * tables) and the folder of its migrations, run by dbservice's migration runner with every other
 * domain's.
 */
import { fileURLToPath } from "node:url";

export { recordsStore } from "./records-store.js";
export { importStore } from "./import-store.js";
export { privacyStore } from "./privacy.js";

/** In the production bundle this resolves beside dist/crm.mjs (dist/migrations, where the build copies every domain's). */
export const migrationsDir = fileURLToPath(new URL("./migrations", import.meta.url));

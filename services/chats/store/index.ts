/**
 * The chats store as dbservice mounts it: the DbChatService implementation (SQL on chats,
 * chat_members and messages; SendMessage's group commit, batches.ts; the ChatEvents it writes to
 * dbservice's outbox in the same transaction) and the folder of its migrations, run by dbservice's
 * migration runner with every other domain's.
 */
import { fileURLToPath } from "node:url";

export { chatStore, type ChatStoreDeps } from "./chat-store.js";

/** In the production bundle this resolves beside dist/crm.mjs (dist/migrations, where the build copies every domain's). */
export const migrationsDir = fileURLToPath(new URL("./migrations", import.meta.url));

/**
 * Plain-SQL migrations run by node-pg-migrate at start, under its advisory lock in "wait" mode,
 * so two replicas starting at once run them exactly once. Each domain keeps its own migrations
 * beside its store (services/<domain>/store/migrations); dbservice's own (the outbox, the
 * revocation list's function) are in ./migrations. They run as ONE sequence, ordered by file
 * name across the folders (the numeric prefix), and checkOrder refuses a database whose applied
 * names are out of that order. In the production bundle every folder resolves to dist/migrations,
 * where the build copies all of them.
 */
import { fileURLToPath } from "node:url";
import { runner } from "node-pg-migrate";
import type pg from "pg";
import type { Logger } from "@crm/kit";
import { mounts } from "./mounts.js";

export const migrationsDir = fileURLToPath(new URL("./migrations", import.meta.url));

/** Every folder of migrations: dbservice's own and each mounted domain store's (mounts.ts). */
export const migrationDirs: readonly string[] = [...new Set([migrationsDir, ...mounts.flatMap((m) => (m.migrations ? [m.migrations] : []))])];

export async function migrate(pool: pg.Pool, log: Logger, dirs: readonly string[] = migrationDirs): Promise<string[]> {
  const client = await pool.connect();
  try {
    const done = await runner({
      dbClient: client,
      // Several folders need glob mode; the files are then sorted by name across all of them.
      dir: dirs.map((d) => `${globEscape(d)}/*.sql`),
      useGlob: true,
      direction: "up",
      migrationsTable: "crm_migrations",
      singleTransaction: true,
      advisoryLockMode: "wait",
      checkOrder: true,
      log: () => {},
      logger: { debug: () => {}, info: () => {}, warn: (m: string) => log.warn(m), error: (m: string) => log.error(m) },
    });
    const names = done.map((m) => m.name);
    if (names.length) log.info({ migrations: names }, "migrated");
    return names;
  } finally {
    client.release();
  }
}

/** A folder path as a literal glob prefix (a checkout under "/tmp/a[1]" must not be a pattern). */
function globEscape(path: string): string {
  return path.replace(/[*?[\]{}()!\\]/g, "\\$&");
}


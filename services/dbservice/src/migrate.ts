/**
 * Plain-SQL migrations run by node-pg-migrate at start, under its advisory lock in "wait" mode,
 * so two replicas starting at once run them exactly once. Each domain keeps its own migrations
 * beside its store (services/<domain>/store/migrations); dbservice's own (the outbox, the
 * revocation list's function) are in ./migrations. They run as ONE sequence, ordered by file
 * name across the folders (the numeric prefix), and checkOrder refuses a database whose applied
 * names are out of that order. In the production bundle every folder resolves to dist/migrations,
 * where the build copies all of them.
 */
import { readdirSync } from "node:fs";
import { basename } from "node:path";
import { fileURLToPath } from "node:url";
import type pg from "pg";
import type { Logger } from "@crm/kit";
import { mounts } from "./mounts.js";

export const migrationsDir = fileURLToPath(new URL("./migrations", import.meta.url));

/** Every folder of migrations: dbservice's own and each mounted domain store's (mounts.ts). */
export const migrationDirs: readonly string[] = [...new Set([migrationsDir, ...mounts.flatMap((m) => (m.migrations ? [m.migrations] : []))])];

export async function migrate(pool: pg.Pool, log: Logger, dirs: readonly string[] = migrationDirs): Promise<string[]> {
  const client = await pool.connect();
  try {
    // Most starts have nothing to apply: one query says so, and node-pg-migrate (its lock, its
    // table checks, its module graph) is loaded only when there is something to apply.
    if (await upToDate(client, dirs)) return [];
    const { runner } = await import("node-pg-migrate");
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

/** The migrations' names (file names without ".sql") across `dirs`, in the order they run (each starts with a 13-digit timestamp). */
export function migrationNames(dirs: readonly string[]): string[] {
  return dirs.flatMap((d) => readdirSync(d).filter((f) => f.endsWith(".sql")).map((f) => basename(f, ".sql"))).sort();
}

/**
 * True when the database has run exactly these migrations, in this order (what node-pg-migrate
 * would find with nothing to do). Anything else (no table yet, one missing, an unknown or
 * reordered name) is for node-pg-migrate to apply or refuse, under its lock.
 */
async function upToDate(client: pg.PoolClient, dirs: readonly string[]): Promise<boolean> {
  const names = migrationNames(dirs);
  let applied: string[];
  try {
    // node-pg-migrate's own query for what has run (its table in the default schema).
    applied = (await client.query<{ name: string }>('SELECT name FROM "public"."crm_migrations" ORDER BY run_on, id')).rows.map((r) => r.name);
  } catch {
    return false; // no table yet (a new database): the runner creates it
  }
  return applied.length === names.length && applied.every((n, i) => n === names[i]);
}

/** A folder path as a literal glob prefix (a checkout under "/tmp/a[1]" must not be a pattern). */
function globEscape(path: string): string {
  return path.replace(/[*?[\]{}()!\\]/g, "\\$&");
}


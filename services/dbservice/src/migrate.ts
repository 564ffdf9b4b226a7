/**
 * Plain-SQL migrations run by node-pg-migrate at start, under its advisory lock in "wait" mode,
 * so two replicas starting at once run them exactly once.
 */
import { fileURLToPath } from "node:url";
import { runner } from "node-pg-migrate";
import type pg from "pg";
import type { Logger } from "@crm/kit";

export const migrationsDir = fileURLToPath(new URL("./migrations", import.meta.url));

export async function migrate(pool: pg.Pool, log: Logger, dir = migrationsDir): Promise<string[]> {
  const client = await pool.connect();
  try {
    const done = await runner({
      dbClient: client,
      dir,
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

/** A fresh database with dbservice's migrations applied, for tests below the service. */
import pg from "pg";
import { createLogger } from "@crm/kit";
import { freshDatabase, type TestDatabase } from "@crm/testkit";
import { createDb, type Db } from "../src/db.js";
import { migrate } from "../src/migrate.js";

export interface MigratedDatabase {
  tdb: TestDatabase;
  pool: pg.Pool;
  db: Db;
  /** Closes the pool and drops the database. */
  drop(): Promise<void>;
}

export async function migratedDatabase(poolMax = 4): Promise<MigratedDatabase> {
  const tdb = await freshDatabase();
  const pool = new pg.Pool({ connectionString: tdb.url, max: poolMax });
  await migrate(pool, createLogger("test", "silent"));
  return {
    tdb,
    pool,
    db: createDb(pool),
    async drop() {
      await pool.end();
      await tdb.drop();
    },
  };
}

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
  let dropping = false;
  // pool.end() resolves once it has told its connections to close, not once they are closed; the
  // forced DROP DATABASE can then terminate one, whose error the pool re-emits (uncaught without this).
  pool.on("error", (err) => {
    if (!dropping) throw err;
  });
  return {
    tdb,
    pool,
    db: createDb(pool),
    async drop() {
      dropping = true;
      await pool.end();
      await tdb.drop();
    },
  };
}

/** dbservice as its own process: connect, migrate, serve. */
import pg from "pg";
import { ConfigError, loadConfig, runService } from "@crm/kit";
import { dbEnv } from "./config.js";
import { createDb } from "./db.js";
import { migrate } from "./migrate.js";
import { createDbModule } from "./module.js";

export function start() {
  return runService("dbservice", async ({ log }) => {
    const cfg = loadConfig(dbEnv);
    if (!cfg.DATABASE_URL) throw new ConfigError("config: DATABASE_URL must be a URL starting with postgres:// (it is not set)");
    const pool = new pg.Pool({ connectionString: cfg.DATABASE_URL, max: cfg.DB_POOL_MAX, connectionTimeoutMillis: 5_000 });
    pool.on("error", (err) => log.warn({ err: err.message }, "idle database connection failed"));
    await migrate(pool, log);
    return createDbModule({ db: createDb(pool) });
  });
}

/**
 * dbservice's one wiring, used by its own process (main.ts: cluster, Kubernetes) and by the
 * all-in-one: migrate, open the pool, declare the e-mail queue, start the outbox relay and (with
 * Redis) the revocation keeper, and serve every mounted store (module.ts, mounts.ts). The caller
 * only chooses the providers: which database (a PostgreSQL server, or the embedded PGlite that
 * embedded.ts starts), which event bus (RabbitMQ or memory), Redis or none. It closes
 * what it chose after the module closed; the module closes what build opened.
 */
import pg from "pg";
import type { Redis } from "ioredis";
import { databaseTodo, dependsOn, type EventBus, type Logger, type ServiceModule } from "@crm/kit";
import { deadLetterQueueOf } from "@crm/contracts";
import type { DbConfig } from "./config.js";
import { createDb, createPool } from "./db.js";
import { migrate } from "./migrate.js";
import { createDbModule } from "./module.js";
import { startRelay } from "./relay.js";
import { startRevocationKeeper } from "./revocation-keeper.js";
import { startAuditRetention } from "./audit-retention.js";

export interface DbBuildDeps {
  cfg: DbConfig;
  /**
   * The database. A server (DATABASE_URL): DB_POOL_MAX connections with dbservice's deadlines
   * (DB_CONNECT_TIMEOUT_MS, DB_QUERY_TIMEOUT_MS), and a start-up failure named by DATABASE_URL.
   * `embedded` (PGlite, in this process): ONE connection, as PGlite is one backend (more would
   * interleave transactions) and its socket accepts one at a time, and no deadlines.
   */
  database: { url: string; embedded?: boolean };
  /** Where the outbox relay publishes (chat events, e-mail tasks). */
  bus: EventBus;
  /** The revocation list's server: when given, the keeper rebuilds the list there from PostgreSQL. */
  redis?: Redis | undefined;
  log: Logger;
}

export async function build({ cfg, database, bus, redis, log }: DbBuildDeps): Promise<ServiceModule> {
  const { url, embedded = false } = database;
  let pool: pg.Pool;
  if (embedded) {
    // PGlite's socket accepts ONE connection at a time: the migrations use the pool's own.
    pool = new pg.Pool({ connectionString: url, max: 1, connectionTimeoutMillis: 10_000 });
    await migrate(pool, log);
  } else {
    // Migrations run on their own connection, without the request deadlines (an index build may take longer).
    const migrations = new pg.Pool({ connectionString: url, max: 1, connectionTimeoutMillis: cfg.DB_CONNECT_TIMEOUT_MS });
    try {
      await dependsOn("DATABASE_URL", url, (err) => databaseTodo(err, url), () => migrate(migrations, log));
    } finally {
      await migrations.end();
    }
    pool = createPool({ url, max: cfg.DB_POOL_MAX, connectTimeoutMs: cfg.DB_CONNECT_TIMEOUT_MS, queryTimeoutMs: cfg.DB_QUERY_TIMEOUT_MS });
  }
  pool.on("error", (err) => log.warn({ err: err.message }, "idle database connection failed"));
  const db = createDb(pool);
  // E-mail tasks go to this queue; declared here too (as the email service does, same arguments) so
  // they wait in the broker, not in the outbox, until the email service first starts.
  await bus.declareQueue(cfg.EMAIL_QUEUE, { deadLetterQueue: deadLetterQueueOf(cfg.EMAIL_QUEUE) });
  // Audit events likewise wait in their queue until admin ships them to Loki.
  await bus.declareQueue(cfg.AUDIT_QUEUE, { deadLetterQueue: deadLetterQueueOf(cfg.AUDIT_QUEUE) });
  // The outbox relay: publishes what requests wrote to the outbox, woken by the stores after each commit.
  const relay = await startRelay({ pool, bus, log });
  // The revocation list in Redis is a mirror of PostgreSQL: rebuilt from it when Redis lost its data.
  const keeper = redis ? startRevocationKeeper({ db, redis, log, accessTokenTtlSeconds: cfg.ACCESS_TOKEN_TTL_SECONDS }) : undefined;
  await keeper?.sync().catch(() => {}); // an empty Redis is complete before dbservice is ready (or checks fail closed until it is)
  // Audit events older than AUDIT_RETENTION_DAYS go, as crm_retention (never as the app role).
  const retention = startAuditRetention({ pool, days: cfg.AUDIT_RETENTION_DAYS, log });
  const module = createDbModule({ db, emailQueue: cfg.EMAIL_QUEUE, auditQueue: cfg.AUDIT_QUEUE, relay });
  return {
    ...module,
    async close() {
      await retention.close();
      await keeper?.close();
      await module.close?.();
    },
  };
}

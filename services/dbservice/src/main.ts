/** dbservice as its own process: connect, migrate, serve. */
import pg from "pg";
import { ConfigError, commonEnv, createEventBus, databaseTodo, dependsOn, loadConfig, runService } from "@crm/kit";
import { deadLetterQueueOf } from "@crm/contracts";
import { dbEnv } from "./config.js";
import { createDb, createPool } from "./db.js";
import { migrate } from "./migrate.js";
import { createDbModule } from "./module.js";
import { startRelay } from "./relay.js";
import { startRevocationKeeper } from "./revocation-keeper.js";

export function start() {
  return runService("dbservice", async ({ log, onClose, redis }) => {
    const cfg = loadConfig(dbEnv.extend({ AMQP_URL: commonEnv.AMQP_URL }));
    if (!cfg.DATABASE_URL) throw new ConfigError("config: DATABASE_URL must be a URL starting with postgres:// (it is not set)");
    if (!cfg.AMQP_URL) throw new ConfigError("config: AMQP_URL must be a URL starting with amqp:// or amqps:// (the outbox relay publishes events to RabbitMQ) (it is not set)");
    // Migrations run on their own connection, without the request deadlines (an index build may take longer).
    const migrations = new pg.Pool({ connectionString: cfg.DATABASE_URL, max: 1, connectionTimeoutMillis: cfg.DB_CONNECT_TIMEOUT_MS });
    try {
      await dependsOn("DATABASE_URL", cfg.DATABASE_URL, (err) => databaseTodo(err, cfg.DATABASE_URL!), () => migrate(migrations, log));
    } finally {
      await migrations.end();
    }
    const pool = createPool({ url: cfg.DATABASE_URL, max: cfg.DB_POOL_MAX, connectTimeoutMs: cfg.DB_CONNECT_TIMEOUT_MS, queryTimeoutMs: cfg.DB_QUERY_TIMEOUT_MS });
    pool.on("error", (err) => log.warn({ err: err.message }, "idle database connection failed"));
    const db = createDb(pool);
    // The outbox relay: publishes what requests wrote to the outbox (chat events, e-mail tasks).
    const bus = createEventBus({ url: cfg.AMQP_URL, log, name: "dbservice" });
    onClose(() => bus.close());
    // E-mail tasks go to this queue; declared here too (as the email service does, same arguments) so
    // they wait in RabbitMQ, not in the outbox, until the email service first starts.
    await bus.declareQueue(cfg.EMAIL_QUEUE, { deadLetterQueue: deadLetterQueueOf(cfg.EMAIL_QUEUE) });
    const relay = await startRelay({ pool, bus, log });
    // The revocation list in Redis is a mirror of PostgreSQL: rebuilt here when Redis lost it.
    if (redis) {
      const keeper = startRevocationKeeper({ db, redis, log, accessTokenTtlSeconds: cfg.ACCESS_TOKEN_TTL_SECONDS });
      onClose(() => keeper.close());
      await keeper.sync().catch(() => {}); // an empty Redis is complete before dbservice is ready (or checks fail closed until it is)
    } else log.warn("REDIS_URL is not set: nothing rebuilds the revocation list if Redis loses it (set it as for auth)");
    return createDbModule({ db, emailQueue: cfg.EMAIL_QUEUE, relay });
  });
}

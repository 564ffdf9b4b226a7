/** dbservice as its own process: connect, migrate, serve. */
import pg from "pg";
import { ConfigError, commonEnv, createEventBus, loadConfig, runService } from "@crm/kit";
import { dbEnv } from "./config.js";
import { createDb } from "./db.js";
import { migrate } from "./migrate.js";
import { createDbModule } from "./module.js";
import { startRelay } from "./relay.js";

export function start() {
  return runService("dbservice", async ({ log, onClose }) => {
    const cfg = loadConfig(dbEnv.extend({ AMQP_URL: commonEnv.AMQP_URL }));
    if (!cfg.DATABASE_URL) throw new ConfigError("config: DATABASE_URL must be a URL starting with postgres:// (it is not set)");
    if (!cfg.AMQP_URL) throw new ConfigError("config: AMQP_URL must be a URL starting with amqp:// or amqps:// (the outbox relay publishes events to RabbitMQ) (it is not set)");
    const pool = new pg.Pool({ connectionString: cfg.DATABASE_URL, max: cfg.DB_POOL_MAX, connectionTimeoutMillis: 5_000 });
    pool.on("error", (err) => log.warn({ err: err.message }, "idle database connection failed"));
    await migrate(pool, log);
    // The outbox relay: publishes what requests wrote to the outbox (chat events, e-mail tasks).
    const bus = createEventBus({ url: cfg.AMQP_URL, log, name: "dbservice" });
    onClose(() => bus.close());
    // E-mail tasks go to this queue; declared here too (as the email service does, same arguments) so
    // they wait in RabbitMQ, not in the outbox, until the email service first starts.
    await bus.declareQueue(cfg.EMAIL_QUEUE, { deadLetterQueue: `${cfg.EMAIL_QUEUE}.dead` });
    const relay = await startRelay({ pool, bus, log });
    return createDbModule({ db: createDb(pool), emailQueue: cfg.EMAIL_QUEUE, relay });
  });
}

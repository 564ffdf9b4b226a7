/** dbservice as its own process: a PostgreSQL server, RabbitMQ and Redis as providers of build.ts. */
import { ConfigError, commonEnv, createEventBus, loadConfig, runService } from "@crm/kit";
import { build } from "./build.js";
import { dbEnv } from "./config.js";

export function start() {
  return runService("dbservice", async ({ log, onClose, redis }) => {
    const cfg = loadConfig(dbEnv.extend({ AMQP_URL: commonEnv.AMQP_URL }));
    if (!cfg.DATABASE_URL) throw new ConfigError("config: DATABASE_URL must be a URL starting with postgres:// (it is not set)");
    if (!cfg.AMQP_URL) throw new ConfigError("config: AMQP_URL must be a URL starting with amqp:// or amqps:// (the outbox relay publishes events to RabbitMQ) (it is not set)");
    if (!redis) log.warn("REDIS_URL is not set: nothing rebuilds the revocation list if Redis loses it (set it as for auth)");
    const bus = createEventBus({ url: cfg.AMQP_URL, log, name: "dbservice" });
    onClose(() => bus.close());
    return build({ cfg, database: { url: cfg.DATABASE_URL }, bus, redis, log });
  });
}

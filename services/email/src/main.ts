/** email as its own process: EmailService and the e-mail workers (RabbitMQ is required here). */
import { ConfigError, commonEnv, createEventBus, loadConfig, memoryCounter, redisCounter, runService } from "@crm/kit";
import { build } from "./build.js";
import { emailEnv } from "./config.js";

export function start() {
  return runService("email", async ({ log, peer, redis, verifier, onClose }) => {
    const cfg = loadConfig(emailEnv.extend({ AMQP_URL: commonEnv.AMQP_URL }));
    if (!cfg.AMQP_URL) throw new ConfigError("config: AMQP_URL must be a URL starting with amqp:// or amqps:// (the e-mail tasks come from RabbitMQ) (it is not set)");
    if (!redis) log.warn("REDIS_URL is not set: the per-company sending rate is counted in this process only");
    const bus = createEventBus({ url: cfg.AMQP_URL, log, name: "email" });
    onClose(() => bus.close());
    return build({ cfg, peer, bus, counter: redis ? redisCounter(redis) : memoryCounter(), verifier, log });
  });
}

/** webhooks as its own process: dbservice as its peer, RabbitMQ for the record changes it delivers. */
import { ConfigError, commonEnv, createEventBus, loadConfig, runService } from "@crm/kit";
import { build } from "./build.js";
import { webhooksEnv } from "./config.js";

export function start() {
  return runService("webhooks", async ({ log, peer, onClose }) => {
    const cfg = loadConfig(webhooksEnv.extend({ AMQP_URL: commonEnv.AMQP_URL }));
    if (!cfg.AMQP_URL) throw new ConfigError("config: AMQP_URL must be a URL starting with amqp:// or amqps:// (record changes come from RabbitMQ) (it is not set)");
    const bus = createEventBus({ url: cfg.AMQP_URL, log, name: "webhooks" });
    onClose(() => bus.close());
    if (!(await bus.waitConnected(5_000))) log.warn("RabbitMQ is not reachable yet: record changes wait in the broker and the outbox until it is");
    return build({ cfg, peer, log, bus });
  });
}

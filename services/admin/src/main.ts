/** admin as its own process: dbservice and logs as its peers, RabbitMQ for the audit queue. */
import { ConfigError, commonEnv, createEventBus, loadConfig, requirePublicUrl, runService } from "@crm/kit";
import { build } from "./build.js";
import { adminEnv } from "./config.js";

export function start() {
  return runService("admin", async ({ log, peer, revocations, onClose }) => {
    const cfg = loadConfig(adminEnv.extend({ AMQP_URL: commonEnv.AMQP_URL }));
    if (!cfg.AMQP_URL) throw new ConfigError("config: AMQP_URL must be a URL starting with amqp:// or amqps:// (the audit log's events come from RabbitMQ) (it is not set)");
    const url = requirePublicUrl();
    const bus = createEventBus({ url: cfg.AMQP_URL, log, name: "admin" });
    onClose(() => bus.close());
    if (!(await bus.waitConnected(5_000))) log.warn("RabbitMQ is not reachable yet: audit events wait in the broker and the outbox until it is");
    return build({ cfg, peer, revocations, log, publicUrl: () => url, bus });
  });
}

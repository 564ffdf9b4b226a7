/** records as its own process: its services, dbservice as its peer, RabbitMQ for live record changes (WatchRecords). */
import { ConfigError, commonEnv, createEventBus, loadConfig, runService } from "@crm/kit";
import { build } from "./build.js";
import { recordsEnv } from "./config.js";

export function start() {
  return runService("records", async ({ log, peer, onClose, verifier }) => {
    const cfg = loadConfig(recordsEnv.extend({ AMQP_URL: commonEnv.AMQP_URL }));
    if (!cfg.AMQP_URL) throw new ConfigError("config: AMQP_URL must be a URL starting with amqp:// or amqps:// (WatchRecords' live changes come from RabbitMQ) (it is not set)");
    const bus = createEventBus({ url: cfg.AMQP_URL, log, name: "records" });
    onClose(() => bus.close());
    if (!(await bus.waitConnected(5_000))) log.warn("RabbitMQ is not reachable yet: WatchRecords replays from the database and goes live once it is");
    return build({ cfg, peer, log, bus, verifier });
  });
}

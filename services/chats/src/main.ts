/** chats as its own process: ChatService, dbservice as its peer, RabbitMQ for live events. */
import { ConfigError, commonEnv, createEventBus, loadConfig, runService } from "@crm/kit";
import { build } from "./build.js";
import { chatsEnv } from "./config.js";

export function start() {
  return runService("chats", async ({ log, peer, onClose }) => {
    const cfg = loadConfig(chatsEnv.extend({ AMQP_URL: commonEnv.AMQP_URL }));
    if (!cfg.AMQP_URL) throw new ConfigError("config: AMQP_URL must be a URL starting with amqp:// or amqps:// (live chat events come from RabbitMQ) (it is not set)");
    const bus = createEventBus({ url: cfg.AMQP_URL, log, name: "chats" });
    onClose(() => bus.close());
    if (!(await bus.waitConnected(5_000))) log.warn("RabbitMQ is not reachable yet: streams replay from the database and go live once it is");
    return build({ cfg, peer, bus, log });
  });
}

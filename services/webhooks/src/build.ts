/**
 * webhooks' one wiring, used by its own process (main.ts) and by the all-in-one; the caller only
 * chooses the providers (how dbservice is reached, the event bus records.events is on: RabbitMQ
 * or memory) and passes the settings.
 */
import type { Basics, EventBus, ServiceModule } from "@crm/kit";
import { DbWebhooksService } from "@crm/gen/crm/db/v1/db_webhooks_pb";
import type { WebhooksConfig } from "./config.js";
import { createWebhooksModule } from "./module.js";

export interface WebhooksBuildDeps extends Pick<Basics, "peer" | "log"> {
  cfg: WebhooksConfig;
  /** Where record changes come from (records.events, which the outbox relay publishes to). */
  bus: EventBus;
}

export async function build(d: WebhooksBuildDeps): Promise<ServiceModule> {
  return createWebhooksModule({ cfg: d.cfg, db: d.peer("dbservice", DbWebhooksService), log: d.log, bus: d.bus });
}

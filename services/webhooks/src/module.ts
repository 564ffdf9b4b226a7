/**
 * The webhooks service module: WebhookService (owners and admins), the intake of events (record
 * changes and finished imports from records.events, users from users.events, chat messages from
 * chat.events), the delivery workers and the delivery log's 30-day purge.
 */
import type { Client } from "@connectrpc/connect";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { EventBus, Logger, ServiceModule } from "@crm/kit";
import type { DbWebhooksService } from "@crm/gen/crm/db/v1/db_webhooks_pb";
import { WebhookService } from "@crm/gen/crm/webhooks/v1/webhooks_pb";
import { createDeliverer } from "./deliverer.js";
import { consumeEvents, type EventIntake } from "./events.js";
import { createGuard } from "./guard.js";
import { limits } from "./rules.js";
import { createSender, type Sender } from "./sender.js";
import type { WebhooksConfig } from "./config.js";
import { webhookService } from "./webhook-service.js";

export interface WebhooksModuleDeps {
  cfg: WebhooksConfig;
  db: Client<typeof DbWebhooksService>;
  log: Logger;
  /** The bus records.events, users.events and chat.events are on; unset: no intake (handler tests). */
  bus?: EventBus | undefined;
  /** Milliseconds since the epoch; Date.now unless a test moves time. */
  clock?: (() => number) | undefined;
  /** How deliveries are sent; the guarded HTTP sender unless a test replaces it. */
  send?: Sender | undefined;
  /** Run the workers (default true). */
  workers?: boolean | undefined;
  /** How often the log's purge runs (default hourly). */
  purgeIntervalMs?: number | undefined;
}

export async function createWebhooksModule(d: WebhooksModuleDeps): Promise<ServiceModule & { wake(): void; startWorkers(): void }> {
  const clock = d.clock ?? Date.now;
  const guard = createGuard({ allowPrivate: d.cfg.WEBHOOKS_ALLOW_PRIVATE, allowCidrs: d.cfg.WEBHOOKS_ALLOW_CIDRS.split(",").filter((s) => s.trim()) });
  const send = d.send ?? createSender({ guard, timeoutMs: d.cfg.WEBHOOKS_TIMEOUT_MS, maxBytes: limits.responsePrefixBytes });
  const deliverer = createDeliverer({
    db: d.db,
    send,
    log: d.log,
    clock,
    concurrency: d.cfg.WEBHOOKS_CONCURRENCY,
    perEndpoint: d.cfg.WEBHOOKS_PER_ENDPOINT,
    timeoutMs: d.cfg.WEBHOOKS_TIMEOUT_MS,
    pollMs: d.cfg.WEBHOOKS_POLL_MS,
    settleMs: d.cfg.WEBHOOKS_SETTLE_MS,
  });
  const intake: EventIntake | undefined = d.bus
    ? await consumeEvents({ bus: d.bus, db: d.db, log: d.log, queues: { records: d.cfg.WEBHOOKS_QUEUE, users: d.cfg.WEBHOOKS_USERS_QUEUE, chat: d.cfg.WEBHOOKS_CHAT_EVENTS ? d.cfg.WEBHOOKS_CHAT_QUEUE : undefined }, clock, queued: () => deliverer.wake() })
    : undefined;
  const impl = webhookService({ db: d.db, guard, clock, chatEvents: d.cfg.WEBHOOKS_CHAT_EVENTS, queued: () => deliverer.wake(), endpointsChanged: (companyId) => intake?.endpointsChanged(companyId) });
  if (d.workers !== false) deliverer.start();
  const purge = setInterval(() => {
    d.db
      .purgeDeliveriesDB({ olderThan: timestampFromDate(new Date(clock() - limits.logRetentionMs)) })
      .catch((err: unknown) => d.log.warn({ err: String(err) }, "webhooks: the delivery log's purge failed; tried again later"));
  }, d.purgeIntervalMs ?? 3600_000);
  purge.unref();
  return {
    name: "webhooks",
    services: [WebhookService],
    routes(router) {
      router.service(WebhookService, impl);
    },
    wake: () => deliverer.wake(),
    /** Starts the workers of a module made with `workers: false`. */
    startWorkers: () => deliverer.start(),
    close: async () => {
      clearInterval(purge);
      await intake?.close();
      await deliverer.close();
    },
  };
}

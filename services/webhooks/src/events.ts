/**
 * Record changes into the delivery queue: a durable (quorum) queue bound to records.events for
 * every tenant, so nothing is missed while no webhooks process runs. Each change is handed to
 * EnqueueEventDB (one delivery per endpoint that asked for it, idempotent by event id) and acked
 * only after that committed; a failure retries it with backoff and, after the last attempt, parks
 * it in `<queue>.dead`.
 */
import type { Client } from "@connectrpc/connect";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { Consumer, EventBus, Logger } from "@crm/kit";
import { RECORD_EVENTS_EXCHANGE, RECORD_EVENTS_EXCHANGE_TYPE, deadLetterQueueOf } from "@crm/contracts";
import type { DbWebhooksService } from "@crm/gen/crm/db/v1/db_webhooks_pb";

export interface EventIntakeDeps {
  bus: EventBus;
  db: Client<typeof DbWebhooksService>;
  log: Logger;
  queue: string;
  clock: () => number;
  /** Called after deliveries were queued. */
  queued: () => void;
}

export async function consumeRecordChanges(d: EventIntakeDeps): Promise<Consumer> {
  await d.bus.declareExchange(RECORD_EVENTS_EXCHANGE, RECORD_EVENTS_EXCHANGE_TYPE);
  await d.bus.declareQueue(d.queue, { deadLetterQueue: deadLetterQueueOf(d.queue), bind: { exchange: RECORD_EVENTS_EXCHANGE, routingKeys: ["records.*"] } });
  return d.bus.consume(
    d.queue,
    async (msg) => {
      const res = await d.db.enqueueEventDB({ recordChange: msg.body, now: timestampFromDate(new Date(d.clock())) });
      if (res.queued > 0) d.queued();
    },
    // Up to about 12 hours of retries (a database outage), then the dead-letter queue.
    { prefetch: 32, maxAttempts: 20 + 12 * 60, retryDelayMs: (n) => Math.min(1000 * 2 ** (n - 1), 60_000) },
  );
}

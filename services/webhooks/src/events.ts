/**
 * Events into the delivery queue. Durable (quorum) queues bound for every tenant, so nothing is
 * missed while no webhooks process runs:
 *
 * - WEBHOOKS_QUEUE on `records.events`: record changes (`records.*`) and finished imports (`imports.*`);
 * - WEBHOOKS_USERS_QUEUE on `users.events` (`users.*`): users added or deactivated;
 * - WEBHOOKS_CHAT_QUEUE on `chat.events` (`chat.*`), only when WEBHOOKS_CHAT_EVENTS is on: the
 *   chats' own events, whose messages go to endpoints that asked for chat.message by name.
 *
 * Events are queued in batches: what the consumers hand over while the previous EnqueueEventsDB
 * call runs goes in the next one (one transaction per tenant), and each message is acked only
 * after its batch committed; an event the store refuses, or a batch that failed, is retried with
 * backoff and, after the last attempt, parked in `<queue>.dead`.
 *
 * Skipping: every answer says which event types the tenant's active endpoints name. Until
 * `limits.skipRecheckMs` after the call that read them, an event of a type none of them names is
 * acked without a database call (its tenant and type read from its wire form). An endpoint created
 * or changed through this process clears its company's entry at once (`endpointsChanged`); one
 * changed through another process gets every event this intake takes `skipRecheckMs` after it.
 */
import type { Client } from "@connectrpc/connect";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { ConsumeOptions, Consumer, Delivery, EventBus, ExchangeType, Logger } from "@crm/kit";
import {
  CHAT_EVENTS_EXCHANGE,
  CHAT_EVENTS_EXCHANGE_TYPE,
  RECORD_EVENTS_EXCHANGE,
  RECORD_EVENTS_EXCHANGE_TYPE,
  USER_EVENTS_EXCHANGE,
  USER_EVENTS_EXCHANGE_TYPE,
  deadLetterQueueOf,
} from "@crm/contracts";
import { EVENT_TYPE_HEADER, decodeChatEvent } from "@crm/contracts/events";
import { toBinary, type MessageInitShape } from "@bufbuild/protobuf";
import { ChatEventSchema } from "@crm/gen/crm/chat/v1/chat_pb";
import { ImportFinishedSchema } from "@crm/gen/crm/records/v1/import_pb";
import type { DbWebhooksService, EnqueueEventDBRequestSchema } from "@crm/gen/crm/db/v1/db_webhooks_pb";
import { CHAT_MESSAGE, limits, patternsFor, peekEvent } from "./rules.js";

export interface EventIntakeDeps {
  bus: EventBus;
  db: Client<typeof DbWebhooksService>;
  log: Logger;
  /** `chat` undefined: chat messages are not carried (no queue on chat.events). */
  queues: { records: string; users: string; chat?: string | undefined };
  clock: () => number;
  /** Called after deliveries were queued. */
  queued: () => void;
}

export interface EventIntake {
  /** An endpoint of the company changed: its events are looked at again at once. */
  endpointsChanged(companyId: string): void;
  close(): Promise<void>;
}

/** Messages handed to the handlers at once per queue: the most one batch can hold from it. */
const PREFETCH = 256;

// Up to about 12 hours of retries (a database outage), then the dead-letter queue.
const consumeOptions: ConsumeOptions = { prefetch: PREFETCH, maxAttempts: 20 + 12 * 60, retryDelayMs: (n) => Math.min(1000 * 2 ** (n - 1), 60_000) };

/** The one event field of an EnqueueEventDB request. */
type Event = Pick<MessageInitShape<typeof EnqueueEventDBRequestSchema>, "recordChange" | "importFinished" | "userEvent" | "chatEvent">;

/** An event the store refused (it is retried, then dead-lettered). */
export class RefusedEvent extends Error {}

export async function consumeEvents(d: EventIntakeDeps): Promise<EventIntake> {
  /** Per company: the event types its active endpoints named, believed until `until`. */
  const asked = new Map<string, { until: number; types: Set<string> }>();
  /** Per company: the count of endpoint changes (`endpointsChanged`) when its endpoints last changed here. */
  const changedAt = new Map<string, number>();
  let changes = 0;
  /** Whether no endpoint of the company asks for the type, as far as the intake knows now. */
  const unwanted = (tenantId: string, type: string) => {
    const a = asked.get(tenantId);
    if (!a || a.until <= d.clock()) return false;
    return !patternsFor(type).some((p) => a.types.has(p));
  };

  type Waiting = { event: Event; done: (err?: Error) => void };
  let waiting: Waiting[] = [];
  let running = false;

  /** Sends what waits, one call at a time: what arrives meanwhile goes in the next. */
  async function drain() {
    if (running) return;
    running = true;
    try {
      while (waiting.length) {
        const batch = waiting.slice(0, limits.enqueueBatch);
        waiting = waiting.slice(batch.length);
        const started = d.clock();
        const before = changes;
        try {
          const res = await d.db.enqueueEventsDB({ events: batch.map((w) => w.event), now: timestampFromDate(new Date(started)) });
          if (asked.size >= 100_000) asked.clear();
          if (changedAt.size >= 100_000) changedAt.clear();
          // Not what was read before an endpoint of the company changed here.
          for (const t of res.tenants) if ((changedAt.get(t.tenantId) ?? 0) <= before) asked.set(t.tenantId, { until: started + limits.skipRecheckMs, types: new Set(t.eventTypes) });
          if (res.results.some((r) => r.queued > 0)) d.queued();
          batch.forEach((w, i) => {
            const r = res.results[i];
            w.done(r?.error ? new RefusedEvent(r.error) : undefined);
          });
        } catch (err) {
          for (const w of batch) w.done(err instanceof Error ? err : new Error(String(err)));
        }
      }
    } finally {
      running = false;
    }
  }

  /** Resolves once the event's batch committed; rejects (the message is retried) otherwise. */
  function enqueue(event: Event): Promise<void> {
    return new Promise<void>((ok, fail) => {
      waiting.push({ event, done: (err) => (err ? fail(err) : ok()) });
      // The handlers of the messages delivered in this turn join the same batch.
      if (!running) setImmediate(() => void drain());
    });
  }

  async function queue(name: string, exchange: string, type: ExchangeType, routingKeys: string[], handle: (msg: Delivery) => Promise<unknown>): Promise<Consumer> {
    await d.bus.declareExchange(exchange, type);
    await d.bus.declareQueue(name, { deadLetterQueue: deadLetterQueueOf(name), bind: { exchange, routingKeys } });
    return d.bus.consume(name, async (msg) => void (await handle(msg)), consumeOptions);
  }

  /** Queues the event unless no endpoint of its tenant asks for its type. */
  async function take(kind: "record" | "import" | "user", body: Uint8Array, event: Event) {
    const peek = peekEvent(kind, body);
    if (peek && unwanted(peek.tenantId, peek.type)) return;
    await enqueue(event);
  }

  const consumers = [
    await queue(d.queues.records, RECORD_EVENTS_EXCHANGE, RECORD_EVENTS_EXCHANGE_TYPE, ["records.*", "imports.*"], (msg) =>
      msg.headers[EVENT_TYPE_HEADER] === ImportFinishedSchema.typeName ? take("import", msg.body, { importFinished: msg.body }) : take("record", msg.body, { recordChange: msg.body }),
    ),
    await queue(d.queues.users, USER_EVENTS_EXCHANGE, USER_EVENTS_EXCHANGE_TYPE, ["users.*"], (msg) => take("user", msg.body, { userEvent: msg.body })),
  ];
  if (d.queues.chat)
    consumers.push(
      await queue(d.queues.chat, CHAT_EVENTS_EXCHANGE, CHAT_EVENTS_EXCHANGE_TYPE, ["chat.*"], async (msg) => {
        let companyId: string;
        let body = msg.body;
        try {
          const e = decodeChatEvent(msg.body, msg.contentType);
          if (e.event.case !== "message") return;
          companyId = e.companyId;
          // The old JSON form (decodeChatEvent reads it for one release): the store takes binary.
          if (msg.contentType === "application/json") body = toBinary(ChatEventSchema, e);
        } catch (err) {
          d.log.warn({ err: String(err) }, "webhooks: a chat event that is not a ChatEvent was dropped");
          return;
        }
        if (unwanted(companyId, CHAT_MESSAGE)) return;
        await enqueue({ chatEvent: body });
      }),
    );
  return {
    endpointsChanged(companyId) {
      asked.delete(companyId);
      changedAt.set(companyId, ++changes);
    },
    close: async () => {
      for (const c of consumers) await c.close();
    },
  };
}

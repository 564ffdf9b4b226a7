/**
 * Events into the delivery queue. Durable (quorum) queues bound for every tenant, so nothing is
 * missed while no webhooks process runs:
 *
 * - WEBHOOKS_QUEUE on `records.events`: record changes (`records.*`) and finished imports (`imports.*`);
 * - WEBHOOKS_USERS_QUEUE on `users.events` (`users.*`): users added or deactivated;
 * - WEBHOOKS_CHAT_QUEUE on `chat.events` (`chat.*`), only when WEBHOOKS_CHAT_EVENTS is on: the
 *   chats' own events, whose messages go to endpoints that asked for chat.message by name. A company none of whose endpoints asked is
 *   skipped without a database call for `limits.chatRecheckMs` (chat is the busiest event).
 *
 * Each event is handed to EnqueueEventDB (one delivery per endpoint that asked for it, idempotent
 * by event id) and acked only after that committed; a failure retries it with backoff and, after
 * the last attempt, parks it in `<queue>.dead`.
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
import { limits } from "./rules.js";

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
  /** An endpoint of the company changed: its chat messages are looked at again at once. */
  endpointsChanged(companyId: string): void;
  close(): Promise<void>;
}

// Up to about 12 hours of retries (a database outage), then the dead-letter queue.
const consumeOptions: ConsumeOptions = { prefetch: 32, maxAttempts: 20 + 12 * 60, retryDelayMs: (n) => Math.min(1000 * 2 ** (n - 1), 60_000) };

/** The one event field of an EnqueueEventDB request. */
type Event = Pick<MessageInitShape<typeof EnqueueEventDBRequestSchema>, "recordChange" | "importFinished" | "userEvent" | "chatEvent">;

/** Which field of EnqueueEventDB a message off records.events is: a finished import by its type header, else a record change. */
const recordsEvent = (msg: Delivery): Event => (msg.headers[EVENT_TYPE_HEADER] === ImportFinishedSchema.typeName ? { importFinished: msg.body } : { recordChange: msg.body });

export async function consumeEvents(d: EventIntakeDeps): Promise<EventIntake> {
  /** Companies whose chat messages nobody asked for, until when. */
  const chatUnwanted = new Map<string, number>();

  /** Whether an endpoint of the company asked for the event's type. */
  async function enqueue(event: Event): Promise<boolean> {
    const res = await d.db.enqueueEventDB({ ...event, now: timestampFromDate(new Date(d.clock())) });
    if (res.queued > 0) d.queued();
    return res.wanted;
  }

  async function queue(name: string, exchange: string, type: ExchangeType, routingKeys: string[], handle: (msg: Delivery) => Promise<unknown>): Promise<Consumer> {
    await d.bus.declareExchange(exchange, type);
    await d.bus.declareQueue(name, { deadLetterQueue: deadLetterQueueOf(name), bind: { exchange, routingKeys } });
    return d.bus.consume(name, async (msg) => void (await handle(msg)), consumeOptions);
  }

  const consumers = [
    await queue(d.queues.records, RECORD_EVENTS_EXCHANGE, RECORD_EVENTS_EXCHANGE_TYPE, ["records.*", "imports.*"], (msg) => enqueue(recordsEvent(msg))),
    await queue(d.queues.users, USER_EVENTS_EXCHANGE, USER_EVENTS_EXCHANGE_TYPE, ["users.*"], (msg) => enqueue({ userEvent: msg.body })),
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
        const now = d.clock();
        if ((chatUnwanted.get(companyId) ?? 0) > now) return;
        const wanted = await enqueue({ chatEvent: body });
        if (wanted) chatUnwanted.delete(companyId);
        else {
          if (chatUnwanted.size >= 100_000) chatUnwanted.clear();
          chatUnwanted.set(companyId, now + limits.chatRecheckMs);
        }
      }),
    );
  return {
    endpointsChanged: (companyId) => void chatUnwanted.delete(companyId),
    close: async () => {
      for (const c of consumers) await c.close();
    },
  };
}

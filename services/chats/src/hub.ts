/**
 * Live fan-out inside one chats replica. The replica has ONE subscription on `chat.events` (an
 * exclusive queue of its own) bound to `chat.<id>` for every chat one of its streams watches, so
 * a message stored through any replica reaches every replica that has a watcher. Bindings are
 * reference-counted and released after a grace period (the kit's createKeyedBindings).
 *
 * Events are at-least-once and may come out of order (several relays); the stream (chat-service.ts)
 * orders them by seq and fills gaps from the database. After a broker reconnect every watcher
 * gets `resync`, since events may have been missed meanwhile.
 */
import { createKeyedBindings, watchQueueDepth, type EventBus, type Logger, type TopicSubscription } from "@crm/kit";
import type { Message } from "@crm/gen/crm/chat/v1/chat_pb";
import { CHAT_EVENTS_EXCHANGE, CHAT_EVENTS_EXCHANGE_TYPE, chatRoutingKey } from "@crm/contracts";
import { decodeChatEvent } from "@crm/contracts/events";

/** The `queue` label of this replica's own queue on chat.events in crm_queue_depth. */
export const REPLICA_QUEUE_METRIC = `${CHAT_EVENTS_EXCHANGE}.replica`;

export type LiveEvent = { kind: "message"; message: Message } | { kind: "removed"; userIds: string[] } | { kind: "resync" };

export interface Hub {
  /** Resolves once events of `chatId` reach this replica; the returned function stops watching. */
  watch(chatId: string, companyId: string, onEvent: (e: LiveEvent) => void): Promise<() => void>;
  /** Number of chats with a binding (for tests and metrics). */
  boundChats(): number;
  close(): Promise<void>;
}

interface Watcher {
  companyId: string;
  onEvent: (e: LiveEvent) => void;
}

export async function createHub(deps: { bus: EventBus; log: Logger; unbindGraceMs?: number }): Promise<Hub> {
  const { bus, log } = deps;

  await bus.declareExchange(CHAT_EVENTS_EXCHANGE, CHAT_EVENTS_EXCHANGE_TYPE);
  const sub: TopicSubscription = await bus.subscribe(CHAT_EVENTS_EXCHANGE, (d) => {
    let ev;
    try {
      // Binary protobuf (and, for one release, the JSON that older dbservices wrote: see decodeChatEvent).
      ev = decodeChatEvent(d.body, d.contentType);
    } catch (err) {
      log.warn({ routingKey: d.routingKey, err: String(err) }, "undecodable chat event dropped");
      return;
    }
    const live: LiveEvent | undefined =
      ev.event.case === "message" ? { kind: "message", message: ev.event.value } : ev.event.case === "membersRemoved" ? { kind: "removed", userIds: ev.event.value.userIds } : undefined;
    if (!live) return;
    for (const w of chats.watchers(ev.chatId)) if (w.companyId === ev.companyId) w.onEvent(live);
  });
  const chats = createKeyedBindings<Watcher>({ sub, routingKey: chatRoutingKey, log, keyName: "chatId", graceMs: deps.unbindGraceMs ?? 30_000 });
  const unwatch = watchQueueDepth(REPLICA_QUEUE_METRIC, () => sub.depth());
  sub.onResubscribed(() => {
    log.info({ chats: chats.size() }, "chat events resubscribed; streams catch up from the database");
    for (const w of chats.all()) w.onEvent({ kind: "resync" });
  });

  return {
    watch: (chatId, companyId, onEvent) => chats.watch(chatId, { companyId, onEvent }),
    boundChats: () => chats.size(),
    async close() {
      chats.clear();
      unwatch();
      await sub.close();
    },
  };
}

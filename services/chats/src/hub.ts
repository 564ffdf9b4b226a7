/**
 * Live fan-out inside one chats replica. The replica has ONE subscription on `chat.events` (an
 * exclusive queue of its own) bound to `chat.<id>` for every chat one of its streams watches, so
 * a message stored through any replica reaches every replica that has a watcher. Bindings are
 * reference-counted and released after a grace period (a reconnecting client rebinds nothing).
 *
 * Events are at-least-once and may come out of order (several relays); the stream (chat-service.ts)
 * orders them by seq and fills gaps from the database. After a broker reconnect every watcher
 * gets `resync`, since events may have been missed meanwhile.
 */
import { watchQueueDepth, type EventBus, type Logger, type TopicSubscription } from "@crm/kit";
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

interface Binding {
  watchers: Set<Watcher>;
  /** Serialises bind/unbind of this key. */
  chain: Promise<void>;
  bound: boolean;
  releaseTimer?: NodeJS.Timeout | undefined;
}

export async function createHub(deps: { bus: EventBus; log: Logger; unbindGraceMs?: number }): Promise<Hub> {
  const { bus, log } = deps;
  const grace = deps.unbindGraceMs ?? 30_000;
  const chats = new Map<string, Binding>();

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
    const b = chats.get(ev.chatId);
    if (!b) return;
    const live: LiveEvent | undefined =
      ev.event.case === "message" ? { kind: "message", message: ev.event.value } : ev.event.case === "membersRemoved" ? { kind: "removed", userIds: ev.event.value.userIds } : undefined;
    if (!live) return;
    for (const w of b.watchers) if (w.companyId === ev.companyId) w.onEvent(live);
  });
  const unwatch = watchQueueDepth(REPLICA_QUEUE_METRIC, () => sub.depth());
  sub.onResubscribed(() => {
    log.info({ chats: chats.size }, "chat events resubscribed; streams catch up from the database");
    for (const b of chats.values()) for (const w of b.watchers) w.onEvent({ kind: "resync" });
  });

  function release(chatId: string, b: Binding) {
    b.releaseTimer = setTimeout(() => {
      b.releaseTimer = undefined;
      if (b.watchers.size > 0) return;
      b.bound = false;
      b.chain = b.chain
        .then(() => sub.unbind(chatRoutingKey(chatId)))
        .catch((err) => log.warn({ chatId, err: String(err) }, "unbind failed"))
        .then(() => {
          if (b.watchers.size === 0 && !b.bound && chats.get(chatId) === b) chats.delete(chatId);
        });
    }, grace);
    b.releaseTimer.unref();
  }

  return {
    async watch(chatId, companyId, onEvent) {
      let b = chats.get(chatId);
      if (!b) {
        b = { watchers: new Set(), chain: Promise.resolve(), bound: false };
        chats.set(chatId, b);
      }
      clearTimeout(b.releaseTimer);
      b.releaseTimer = undefined;
      const w: Watcher = { companyId, onEvent };
      b.watchers.add(w);
      const binding = b;
      if (!binding.bound) {
        binding.bound = true; // from now on, even while the bind is in flight (release() resets it)
        binding.chain = binding.chain
          .then(() => sub.bind(chatRoutingKey(chatId)))
          // Not bound now: the stream still catches up at its heartbeat and after a resubscribe.
          .catch((err) => log.warn({ chatId, err: String(err) }, "bind failed"));
      }
      await binding.chain;
      let done = false;
      return () => {
        if (done) return;
        done = true;
        binding.watchers.delete(w);
        if (binding.watchers.size === 0) release(chatId, binding);
      };
    },
    boundChats: () => chats.size,
    async close() {
      for (const b of chats.values()) clearTimeout(b.releaseTimer);
      chats.clear();
      unwatch();
      await sub.close();
    },
  };
}

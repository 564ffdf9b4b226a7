/**
 * An in-memory Hub for fast handler tests: the chat events a store would put on the outbox reach
 * the watchers of their chat and company at once (no broker). Test code only.
 */
import type { Hub, LiveEvent } from "../src/hub.js";

export interface FakeHub extends Hub {
  /** Delivers `e` to the watchers of `chatId` in `companyId`, as the relay and the broker would. */
  emit(chatId: string, companyId: string, e: LiveEvent): void;
  /** Streams watching now (all chats). */
  watching(): number;
}

export function fakeHub(): FakeHub {
  const chats = new Map<string, Set<{ companyId: string; onEvent: (e: LiveEvent) => void }>>();
  return {
    async watch(chatId, companyId, onEvent) {
      let set = chats.get(chatId);
      if (!set) chats.set(chatId, (set = new Set()));
      const w = { companyId, onEvent };
      set.add(w);
      return () => {
        set.delete(w);
        if (set.size === 0) chats.delete(chatId);
      };
    },
    boundChats: () => chats.size,
    async close() {
      chats.clear();
    },
    emit(chatId, companyId, e) {
      for (const w of [...(chats.get(chatId) ?? [])]) if (w.companyId === companyId) w.onEvent(e);
    },
    watching: () => [...chats.values()].reduce((n, s) => n + s.size, 0),
  };
}

/**
 * Reference-counted routing-key bindings of one live subscription, the part every hub shares (the
 * chats hub keyed by chat, the records hub by tenant). The first watcher of a key binds its routing
 * key; when the last one leaves, the binding is released after a grace period, so a reconnecting
 * client rebinds nothing. Bind and unbind of one key are serialised; a bind that fails is logged and
 * not retried: the streams catch up from the database at their heartbeat and after a resubscribe.
 */
import type { TopicSubscription } from "./bus.js";
import type { Logger } from "./logger.js";

export interface KeyedBindingsOptions {
  sub: TopicSubscription;
  /** The routing key that carries the events of `key`. */
  routingKey: (key: string) => string;
  log: Logger;
  /** The key's name in log lines ("chatId", "tenantId"). */
  keyName: string;
  /** How long a key stays bound after its last watcher left. */
  graceMs: number;
}

export interface KeyedBindings<W> {
  /** Resolves once events of `key` reach this subscription; the returned function stops watching. */
  watch(key: string, watcher: W): Promise<() => void>;
  /** The watchers of `key` now (none when it has no binding). */
  watchers(key: string): Iterable<W>;
  /** Every watcher of every key (for a resync after a resubscribe). */
  all(): Iterable<W>;
  /** Number of keys with a binding (for tests and metrics). */
  size(): number;
  /** Forgets every key and its release timer (the subscription is closed by its owner). */
  clear(): void;
}

interface Binding<W> {
  watchers: Set<W>;
  /** Serialises bind/unbind of this key. */
  chain: Promise<void>;
  bound: boolean;
  releaseTimer?: NodeJS.Timeout | undefined;
}

export function createKeyedBindings<W>(opts: KeyedBindingsOptions): KeyedBindings<W> {
  const { sub, routingKey, log, keyName, graceMs } = opts;
  const keys = new Map<string, Binding<W>>();
  const none: readonly W[] = [];

  function release(key: string, b: Binding<W>) {
    b.releaseTimer = setTimeout(() => {
      b.releaseTimer = undefined;
      if (b.watchers.size > 0) return;
      b.bound = false;
      b.chain = b.chain
        .then(() => sub.unbind(routingKey(key)))
        .catch((err) => log.warn({ [keyName]: key, err: String(err) }, "unbind failed"))
        .then(() => {
          if (b.watchers.size === 0 && !b.bound && keys.get(key) === b) keys.delete(key);
        });
    }, graceMs);
    b.releaseTimer.unref();
  }

  return {
    async watch(key, watcher) {
      let b = keys.get(key);
      if (!b) {
        b = { watchers: new Set(), chain: Promise.resolve(), bound: false };
        keys.set(key, b);
      }
      clearTimeout(b.releaseTimer);
      b.releaseTimer = undefined;
      b.watchers.add(watcher);
      const binding = b;
      if (!binding.bound) {
        binding.bound = true; // from now on, even while the bind is in flight (release() resets it)
        binding.chain = binding.chain
          .then(() => sub.bind(routingKey(key)))
          // Not bound now: the stream still catches up at its heartbeat and after a resubscribe.
          .catch((err) => log.warn({ [keyName]: key, err: String(err) }, "bind failed"));
      }
      await binding.chain;
      let done = false;
      return () => {
        if (done) return;
        done = true;
        binding.watchers.delete(watcher);
        if (binding.watchers.size === 0) release(key, binding);
      };
    },
    watchers: (key) => keys.get(key)?.watchers ?? none,
    *all() {
      for (const b of keys.values()) yield* b.watchers;
    },
    size: () => keys.size,
    clear() {
      for (const b of keys.values()) clearTimeout(b.releaseTimer);
      keys.clear();
    },
  };
}

/**
 * Live record changes inside one records replica. The replica has ONE subscription on
 * `records.events` (an exclusive queue of its own) bound to `records.<tenant>` for every tenant one
 * of its streams watches, so a change committed through any dbservice reaches every replica that
 * has a watcher of that tenant. Bindings are reference-counted and released after a grace period
 * (a reconnecting client rebinds nothing). The chats hub's design (services/chats/src/hub.ts),
 * keyed by tenant: versions are per tenant, so a stream sees every change of its tenant and can
 * tell a gap from a change of another object type.
 *
 * Events are at-least-once and may come out of order (several relays); the stream (watch.ts)
 * orders them by version and fills gaps from the database. After a broker reconnect every watcher
 * gets `resync`, since events may have been missed meanwhile.
 */
import { watchQueueDepth, type EventBus, type Logger, type TopicSubscription } from "@crm/kit";
import type { RecordChange } from "@crm/gen/crm/records/v1/stream_pb";
import { RECORD_EVENTS_EXCHANGE, RECORD_EVENTS_EXCHANGE_TYPE, recordRoutingKey } from "@crm/contracts";
import { decodeRecordChange } from "@crm/contracts/events";

/** The `queue` label of this replica's own queue on records.events in crm_queue_depth. */
export const REPLICA_QUEUE_METRIC = `${RECORD_EVENTS_EXCHANGE}.replica`;

export type LiveEvent = { kind: "change"; change: RecordChange } | { kind: "resync" };

export interface Hub {
  /** Resolves once changes of `tenantId` reach this replica; the returned function stops watching. */
  watch(tenantId: string, onEvent: (e: LiveEvent) => void): Promise<() => void>;
  /** Number of tenants with a binding (for tests and metrics). */
  boundTenants(): number;
  close(): Promise<void>;
}

interface Binding {
  watchers: Set<(e: LiveEvent) => void>;
  /** Serialises bind/unbind of this key. */
  chain: Promise<void>;
  bound: boolean;
  releaseTimer?: NodeJS.Timeout | undefined;
}

export async function createHub(deps: { bus: EventBus; log: Logger; unbindGraceMs?: number }): Promise<Hub> {
  const { bus, log } = deps;
  const grace = deps.unbindGraceMs ?? 30_000;
  const tenants = new Map<string, Binding>();

  await bus.declareExchange(RECORD_EVENTS_EXCHANGE, RECORD_EVENTS_EXCHANGE_TYPE);
  const sub: TopicSubscription = await bus.subscribe(RECORD_EVENTS_EXCHANGE, (d) => {
    let change: RecordChange;
    try {
      change = decodeRecordChange(d.body);
    } catch (err) {
      log.warn({ routingKey: d.routingKey, err: String(err) }, "undecodable record change dropped");
      return;
    }
    // The routing key and the payload must agree on the tenant: a change is only ever shown to its own.
    if (d.routingKey !== recordRoutingKey(change.tenantId)) return;
    const b = tenants.get(change.tenantId);
    if (!b) return;
    const e: LiveEvent = { kind: "change", change };
    for (const w of b.watchers) w(e);
  });
  const unwatch = watchQueueDepth(REPLICA_QUEUE_METRIC, () => sub.depth());
  sub.onResubscribed(() => {
    log.info({ tenants: tenants.size }, "record changes resubscribed; streams catch up from the database");
    for (const b of tenants.values()) for (const w of b.watchers) w({ kind: "resync" });
  });

  function release(tenantId: string, b: Binding) {
    b.releaseTimer = setTimeout(() => {
      b.releaseTimer = undefined;
      if (b.watchers.size > 0) return;
      b.bound = false;
      b.chain = b.chain
        .then(() => sub.unbind(recordRoutingKey(tenantId)))
        .catch((err) => log.warn({ tenantId, err: String(err) }, "unbind failed"))
        .then(() => {
          if (b.watchers.size === 0 && !b.bound && tenants.get(tenantId) === b) tenants.delete(tenantId);
        });
    }, grace);
    b.releaseTimer.unref();
  }

  return {
    async watch(tenantId, onEvent) {
      let b = tenants.get(tenantId);
      if (!b) {
        b = { watchers: new Set(), chain: Promise.resolve(), bound: false };
        tenants.set(tenantId, b);
      }
      clearTimeout(b.releaseTimer);
      b.releaseTimer = undefined;
      const w = (e: LiveEvent) => onEvent(e);
      b.watchers.add(w);
      const binding = b;
      if (!binding.bound) {
        binding.bound = true; // from now on, even while the bind is in flight (release() resets it)
        binding.chain = binding.chain
          .then(() => sub.bind(recordRoutingKey(tenantId)))
          // Not bound now: the stream still catches up at its heartbeat and after a resubscribe.
          .catch((err) => log.warn({ tenantId, err: String(err) }, "bind failed"));
      }
      await binding.chain;
      let done = false;
      return () => {
        if (done) return;
        done = true;
        binding.watchers.delete(w);
        if (binding.watchers.size === 0) release(tenantId, binding);
      };
    },
    boundTenants: () => tenants.size,
    async close() {
      for (const b of tenants.values()) clearTimeout(b.releaseTimer);
      tenants.clear();
      unwatch();
      await sub.close();
    },
  };
}

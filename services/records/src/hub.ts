/**
 * Live record changes inside one records replica. The replica has ONE subscription on
 * `records.events` (an exclusive queue of its own) bound to `records.<tenant>` for every tenant one
 * of its streams watches, so a change committed through any dbservice reaches every replica that
 * has a watcher of that tenant. Bindings are reference-counted and released after a grace period
 * (the kit's createKeyedBindings). The chats hub's design (services/chats/src/hub.ts),
 * keyed by tenant: versions are per tenant, so a stream sees every change of its tenant and can
 * tell a gap from a change of another object type.
 *
 * Events are at-least-once and may come out of order (several relays); the stream (watch.ts)
 * orders them by version and fills gaps from the database. After a broker reconnect every watcher
 * gets `resync`, since events may have been missed meanwhile.
 */
import { createKeyedBindings, watchQueueDepth, type EventBus, type Logger, type TopicSubscription } from "@crm/kit";
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

type Watcher = (e: LiveEvent) => void;

export async function createHub(deps: { bus: EventBus; log: Logger; unbindGraceMs?: number }): Promise<Hub> {
  const { bus, log } = deps;

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
    const e: LiveEvent = { kind: "change", change };
    for (const w of tenants.watchers(change.tenantId)) w(e);
  });
  const tenants = createKeyedBindings<Watcher>({ sub, routingKey: recordRoutingKey, log, keyName: "tenantId", graceMs: deps.unbindGraceMs ?? 30_000 });
  const unwatch = watchQueueDepth(REPLICA_QUEUE_METRIC, () => sub.depth());
  sub.onResubscribed(() => {
    log.info({ tenants: tenants.size() }, "record changes resubscribed; streams catch up from the database");
    for (const w of tenants.all()) w({ kind: "resync" });
  });

  return {
    // Each watch gets its own function, so one stream watching twice counts twice.
    watch: (tenantId, onEvent) => tenants.watch(tenantId, (e: LiveEvent) => onEvent(e)),
    boundTenants: () => tenants.size(),
    async close() {
      tenants.clear();
      unwatch();
      await sub.close();
    },
  };
}

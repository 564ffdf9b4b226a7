/**
 * The delivery workers of one process: a pool of `concurrency` slots. Whenever slots are free it
 * leases that many due deliveries (ClaimDeliveriesDB: at most `perEndpoint` in flight per endpoint
 * across every process, so a slow or dead endpoint holds a few slots and never the pool), sends
 * each, and settles it with the next attempt's time from the retry rules, or gives it up after 24
 * hours. Settling is batched: what finishes within `settleMs` (or at once, when every delivery in
 * flight has finished) goes in one CompleteDeliveriesDB call, one transaction; a delivery's slot is
 * free once its batch is settled, and then the workers lease again. A process killed mid-delivery
 * (or a batch that could not be settled) leaves leases that run out: another worker sends those
 * deliveries again with the same webhook-id (at least once). Woken by the event consumer after new
 * deliveries were queued, else it polls every `pollMs`. Times come from `clock` (tests move it
 * instead of waiting 24 hours).
 */
import type { Client } from "@connectrpc/connect";
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { Logger } from "@crm/kit";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { ClaimedDelivery, CompleteDeliveryDBRequestSchema, DbWebhooksService } from "@crm/gen/crm/db/v1/db_webhooks_pb";
import { delivered, limits, nextAttemptAt } from "./rules.js";
import type { Sender } from "./sender.js";

export interface DelivererDeps {
  db: Client<typeof DbWebhooksService>;
  send: Sender;
  log: Logger;
  clock: () => number;
  random?: () => number;
  concurrency: number;
  perEndpoint: number;
  timeoutMs: number;
  pollMs: number;
  /** How long a finished delivery waits for others to be settled with it. */
  settleMs: number;
}

export interface Deliverer {
  start(): void;
  /** New deliveries may be due: look now. */
  wake(): void;
  /** Deliveries in flight in this process. */
  inFlight(): number;
  /** Stops leasing; resolves when what is in flight has settled. */
  close(): Promise<void>;
}

export function createDeliverer(d: DelivererDeps): Deliverer {
  const random = d.random ?? Math.random;
  const inflight = new Set<Promise<void>>();
  let running = false;
  let looping = false;
  let again = false;
  let timer: NodeJS.Timeout | undefined;
  // A lease outlives the delivery's deadline, so only a dead worker's lease runs out.
  const leaseMs = d.timeoutMs * 2 + 5_000;
  let settling: { req: MessageInitShape<typeof CompleteDeliveryDBRequestSchema>; done: () => void }[] = [];
  let settleTimer: NodeJS.Timeout | undefined;

  /** Settles the finished deliveries waiting, in one call. A failed call leaves their leases to run out: they are sent again. */
  function flush() {
    clearTimeout(settleTimer);
    settleTimer = undefined;
    const batch = settling;
    settling = [];
    if (batch.length === 0) return;
    d.db
      .completeDeliveriesDB({ deliveries: batch.map((b) => b.req) })
      .catch((err: unknown) => d.log.warn({ err: String(err), deliveries: batch.length }, "webhooks: could not settle deliveries; their leases run out and they are sent again"))
      .finally(() => {
        for (const b of batch) b.done();
      });
  }

  /** Resolves when the delivery's batch was settled (or failed to be). */
  function settle(req: MessageInitShape<typeof CompleteDeliveryDBRequestSchema>): Promise<void> {
    return new Promise((done) => {
      settling.push({ req, done });
      // Nothing else in flight to wait for, or a full batch: now.
      if (settling.length >= inflight.size || settling.length >= limits.settleBatch) flush();
      else settleTimer ??= setTimeout(flush, d.settleMs);
    });
  }

  async function deliver(c: ClaimedDelivery) {
    const at = new Date(d.clock());
    const r = await d.send({ url: c.url, eventId: c.eventId, body: c.body, secrets: c.secrets, timestamp: at });
    const ok = delivered(r.status);
    const now = d.clock();
    const next = ok ? undefined : nextAttemptAt(c.attempts + 1, c.createTime ? timestampDate(c.createTime).getTime() : now, now, random());
    if (!ok) d.log.debug({ endpointId: c.endpointId, eventId: c.eventId, status: r.status, error: r.error, attempt: c.attempts + 1 }, "webhook delivery failed");
    await settle({
      companyId: c.companyId,
      deliveryId: c.deliveryId,
      lease: c.lease,
      succeeded: ok,
      attempt: { attemptTime: timestampFromDate(at), httpStatus: r.status, latencyMs: r.latencyMs, error: r.error, responsePrefix: r.responsePrefix.slice(0, limits.responsePrefixBytes) },
      nextAttemptTime: next === undefined ? undefined : timestampFromDate(new Date(next)),
      now: timestampFromDate(new Date(now)),
    });
  }

  async function loop() {
    if (looping) return void (again = true);
    looping = true;
    try {
      do {
        again = false;
        const free = d.concurrency - inflight.size;
        if (!running || free <= 0) break;
        let claimed: ClaimedDelivery[] = [];
        try {
          claimed = (await d.db.claimDeliveriesDB({ limit: free, perEndpoint: d.perEndpoint, leaseMs, now: timestampFromDate(new Date(d.clock())) })).deliveries;
        } catch (err) {
          d.log.warn({ err: String(err) }, "webhooks: could not lease deliveries; trying again");
          break;
        }
        for (const c of claimed) {
          const p: Promise<void> = deliver(c)
            .catch((err: unknown) => d.log.warn({ err: String(err), deliveryId: c.deliveryId }, "webhooks: a delivery failed unexpectedly; its lease runs out and it is sent again"))
            .finally(() => {
              inflight.delete(p);
              lookSoon();
            });
          inflight.add(p);
        }
        // A full batch: there may be more due now. (A claim leases every due delivery the
        // per-endpoint limits allow, up to the free slots: fewer means none more is due.)
        if (claimed.length === free) again = true;
      } while (again && running);
    } finally {
      looping = false;
    }
  }

  /**
   * Looks for due deliveries once the turn is over: a settled batch frees its slots one promise
   * at a time, and looking at the first would lease for one slot, then again for the rest (two
   * claims, the first of one row). One claim for every slot the turn freed.
   */
  let soon = false;
  function lookSoon() {
    if (soon) return;
    soon = true;
    setImmediate(() => {
      soon = false;
      void loop();
    });
  }

  function schedule() {
    if (!running) return;
    timer = setTimeout(() => {
      void loop().finally(schedule);
    }, d.pollMs);
    timer.unref();
  }

  return {
    start() {
      if (running) return;
      running = true;
      // The first claim comes one poll after the start (or at the first wake), not during it: on
      // PGlite's one connection it would queue the start's own queries behind it.
      schedule();
    },
    wake: () => void loop(),
    inFlight: () => inflight.size,
    async close() {
      running = false;
      clearTimeout(timer);
      await Promise.allSettled([...inflight]);
    },
  };
}

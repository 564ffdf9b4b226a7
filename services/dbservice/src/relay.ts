/**
 * The outbox relay: publishes committed outbox rows (outbox.ts) to RabbitMQ and deletes each row
 * only after the broker confirmed it (at-least-once).
 *
 * - Woken at once by `afterCommit()`: every outbox writer is a dbservice process, which calls it
 *   right after the commit. No LISTEN/NOTIFY: a NOTIFY makes PostgreSQL serialise the commits of
 *   every notifying transaction (migration 0040). Polls every `pollMs` as a fallback (rows a crashed
 *   replica committed but did not relay).
 * - Safe with several replicas: each pass claims a batch with FOR UPDATE SKIP LOCKED, so two
 *   relays never publish the same row at the same time.
 * - Broker down or frozen: the pass rolls back and rows stay (a publish not confirmed within
 *   AMQP_CONFIRM_TIMEOUT_MS counts as not sent); they go out when it is back. A row the broker
 *   cannot route (a queue that does not exist yet) waits with backoff and its error recorded.
 */
import pg from "pg";
import { BusUnavailableError, callContext, setOutboxLag, withTraceContext, type EventBus, type ExchangeType, type Logger } from "@crm/kit";
import { CHAT_EVENTS_EXCHANGE, CHAT_EVENTS_EXCHANGE_TYPE, RECORD_EVENTS_EXCHANGE, RECORD_EVENTS_EXCHANGE_TYPE, USER_EVENTS_EXCHANGE, USER_EVENTS_EXCHANGE_TYPE } from "@crm/contracts";
import { transaction } from "./db.js";

/** Exchanges the relay declares (and may publish to). "" (the default exchange) needs no declaration. */
export const relayExchanges: Record<string, ExchangeType> = {
  [CHAT_EVENTS_EXCHANGE]: CHAT_EVENTS_EXCHANGE_TYPE,
  [RECORD_EVENTS_EXCHANGE]: RECORD_EVENTS_EXCHANGE_TYPE,
  [USER_EVENTS_EXCHANGE]: USER_EVENTS_EXCHANGE_TYPE,
};

export interface RelayOptions {
  pool: pg.Pool;
  bus: EventBus;
  log: Logger;
  /** Fallback polling interval. Default 1 s. */
  pollMs?: number;
  /** Rows per pass. Default 200. */
  batch?: number;
  exchanges?: Record<string, ExchangeType>;
}

export interface Relay {
  /** Call after committing a transaction that enqueued: wakes this relay. */
  afterCommit(): void;
  /** Runs a pass soon (coalesced with one in progress). */
  wake(): void;
  /** Resolves after a pass that found nothing due (for tests and shutdown). */
  drained(timeoutMs: number): Promise<boolean>;
  close(): Promise<void>;
}

interface Row {
  id: string;
  exchange: string;
  routing_key: string;
  payload: Buffer;
  content_type: string;
  message_id: string | null;
  headers: Record<string, string>;
  attempts: number;
}

const backoffSeconds = (attempts: number) => Math.min(2 ** attempts, 300);

export async function startRelay(o: RelayOptions): Promise<Relay> {
  const { pool, bus, log } = o;
  const batch = o.batch ?? 200;
  if (!Number.isInteger(batch) || batch < 1) throw new Error(`relay batch must be a positive integer, not ${batch}`);
  const pollMs = o.pollMs ?? 1_000;
  const exchanges = o.exchanges ?? relayExchanges;
  for (const [name, type] of Object.entries(exchanges)) await bus.declareExchange(name, type);

  let closed = false;
  let running: Promise<void> | undefined;
  let again = false;
  let retryTimer: NodeJS.Timeout | undefined;
  let drainWaiters: (() => void)[] = [];

  // The claim, spliced into the first round trip's text (simple query protocol: no parameters).
  const claim = `BEGIN;
    SELECT id, exchange, routing_key, payload, content_type, message_id, headers, attempts FROM outbox
    WHERE next_attempt_at <= now() ORDER BY id LIMIT ${batch} FOR UPDATE SKIP LOCKED`;

  /**
   * One pass: claim due rows, publish them, delete the confirmed ones. Returns rows claimed. Two
   * round trips, as a pass runs after every committed request that enqueued: the start with the
   * claim, and the deletion with COMMIT (a pass that finds nothing: the claim, then COMMIT).
   */
  async function pass(): Promise<number> {
    // db.ts's transaction helper, as the owner role (the relay reads and deletes every tenant's rows);
    // errors leave unmapped: the loop below tells the broker's from the database's.
    return transaction(pool, async (client) => {
      const started = (await client.query(claim)) as unknown as pg.QueryResult<Row>[];
      const rows = started[started.length - 1]!.rows;
      if (rows.length === 0) {
        await client.query("COMMIT");
        return 0;
      }
      const results = await Promise.allSettled(
        rows.map((r) =>
          withTraceContext(r.headers, () => {
            if (r.exchange !== "" && !(r.exchange in exchanges)) throw new Error(`exchange ${r.exchange} is not one the relay declares (relay.ts relayExchanges)`);
            return bus.publish(r.exchange, r.routing_key, r.payload, {
              messageId: r.message_id ?? undefined,
              contentType: r.content_type,
              headers: r.headers,
              persistent: true,
              mandatory: r.exchange === "",
            });
          }),
        ),
      );
      const done: string[] = [];
      const failed: { id: string; error: string; attempts: number }[] = [];
      let unavailable: unknown;
      results.forEach((res, i) => {
        const r = rows[i]!;
        if (res.status === "fulfilled") done.push(r.id);
        else if (res.reason instanceof BusUnavailableError) unavailable ??= res.reason;
        else failed.push({ id: r.id, error: String((res.reason as Error)?.message ?? res.reason).slice(0, 500), attempts: r.attempts + 1 });
      });
      if (failed.length) {
        await client.query(
          `UPDATE outbox o SET attempts = f.attempts, last_error = f.error, next_attempt_at = now() + make_interval(secs => f.delay)
           FROM unnest($1::bigint[], $2::text[], $3::int[], $4::float8[]) AS f(id, error, attempts, delay) WHERE o.id = f.id`,
          [failed.map((f) => f.id), failed.map((f) => f.error), failed.map((f) => f.attempts), failed.map((f) => backoffSeconds(f.attempts))],
        );
        log.warn({ rows: failed.length, first: failed[0]!.error }, "outbox rows could not be published; retrying with backoff");
      }
      // The ids are bigints PostgreSQL just returned (checked again: they are spliced into SQL text).
      if (done.some((id) => !/^\d+$/.test(id))) throw new Error(`outbox ids must be bigints, got ${done.join(",")}`);
      await client.query(done.length ? `DELETE FROM outbox WHERE id = ANY('{${done.join(",")}}'::bigint[]);\nCOMMIT` : "COMMIT");
      if (unavailable) throw unavailable;
      return rows.length;
    }, (err) => err);
  }

  let failures = 0;
  let waitingForBus = false;
  async function loop(): Promise<void> {
    do {
      again = false;
      try {
        const n = await pass();
        failures = 0;
        if (n >= batch) again = true;
        else if (n === 0 && !again) {
          const w = drainWaiters;
          drainWaiters = [];
          for (const fn of w) fn();
        }
      } catch (err) {
        failures++;
        if (!(err instanceof BusUnavailableError) || failures === 1) log.warn({ err: (err as Error).message }, "outbox relay pass failed; retrying");
        // Back off, then try again (a commit or the poll may come sooner); and at once when the broker is back.
        if (err instanceof BusUnavailableError && !waitingForBus) {
          waitingForBus = true;
          void bus.waitConnected(5 * 60_000).then((ok) => {
            waitingForBus = false;
            if (ok) wake();
          });
        }
        clearTimeout(retryTimer);
        retryTimer = setTimeout(wake, Math.min(100 * 2 ** failures, pollMs)).unref();
        return;
      }
    } while (again && !closed);
  }

  function wake() {
    if (closed) return;
    if (running) {
      again = true;
      return;
    }
    // Outside the waking request's call context: consumers must never inherit a user's token.
    running = callContext.exit(() => loop()).finally(() => {
      running = undefined;
      if (again && !closed) wake();
    });
  }

  async function reportLag() {
    try {
      const { rows } = await pool.query<{ pending: string; lag: number | null }>("SELECT count(*) AS pending, extract(epoch FROM now() - min(created_at))::float8 AS lag FROM outbox");
      setOutboxLag(rows[0]?.lag ?? 0, Number(rows[0]?.pending ?? 0));
    } catch {
      /* the database is down: the pass logs it */
    }
  }

  const poll = setInterval(() => {
    wake();
    void reportLag();
  }, pollMs).unref();
  wake();

  return {
    afterCommit: wake,
    wake,
    drained(timeoutMs) {
      return new Promise((resolve) => {
        const t = setTimeout(() => resolve(false), timeoutMs);
        drainWaiters.push(() => (clearTimeout(t), resolve(true)));
        wake();
      });
    },
    async close() {
      closed = true;
      clearInterval(poll);
      clearTimeout(retryTimer);
      await running?.catch(() => {});
    },
  };
}

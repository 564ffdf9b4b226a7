/**
 * The event bus: RabbitMQ in a cluster (amqp.ts), in memory in all-in-one without AMQP_URL.
 * Both implementations keep the same semantics, so services are written once.
 *
 * How to use it (e.g. the email worker):
 *
 *   const bus = createEventBus({ url: cfg.AMQP_URL, log, name: "email" });   // amqp.ts; memory when url is unset
 *   // Durable queue with a dead-letter queue; declarations are replayed after every reconnect.
 *   await bus.declareQueue("email_tasks", { deadLetterQueue: "email_tasks.dead" });
 *   // 5 workers = prefetch 5; resolve = ack (do the work FIRST), throw = retry later.
 *   const consumer = await bus.consume("email_tasks", async (msg) => {
 *     const task = EmailTask.fromBinary(msg.body);          // msg.attempt: 1, 2, …
 *     await smtp.send(task);                                  // idempotent by msg.messageId
 *   }, { prefetch: 5, maxAttempts: 5, retryDelayMs: (n) => 1000 * 2 ** (n - 1) });
 *   …
 *   await consumer.close(); await bus.close();
 *
 * - Producers inside dbservice do NOT publish directly: they write the message to the outbox in
 *   their transaction (services/dbservice/src/outbox.ts `enqueue`), and the relay publishes it
 *   with publisher confirms. To reach a queue, enqueue with exchange "" and routing key = queue
 *   name: the relay publishes it `mandatory`, so it stays in the outbox (retried with backoff)
 *   until the queue exists, instead of being dropped.
 * - `publish` resolves after the broker confirmed the message (RabbitMQ) or it was queued
 *   (memory); it rejects with `BusUnavailableError` when not connected or not confirmed within
 *   AMQP_CONFIRM_TIMEOUT_MS (no buffering: the caller, normally the outbox relay, keeps the message
 *   and publishes it again; consumers are idempotent) and with `UnroutableError` when a `mandatory`
 *   message reached no queue.
 * - `consume`: the handler resolving acks the message; throwing schedules attempt n+1 after
 *   `retryDelayMs(n)` (RabbitMQ: a copy goes through the `<queue>.retry` delay queue), and after
 *   `maxAttempts` attempts the message is rejected: it goes to the queue's dead-letter queue if
 *   one was declared, else it is dropped (and logged). Consumers come back after a reconnect.
 *   Throwing `RetryLaterError(ms)` brings the message back after `ms` without counting an attempt.
 * - `subscribe`: live fan-out (chats). Each subscription owns an exclusive, auto-deleted queue
 *   bound to an exchange with the routing keys you `bind`; it is re-created and re-bound after a
 *   reconnect, and `onResubscribed` fires so the owner can catch up on what it may have missed.
 */
import { randomUUID } from "node:crypto";
import type { Logger } from "./logger.js";
import { consumeInTrace, injectTraceHeaders } from "./tracing-interceptor.js";

export type ExchangeType = "topic" | "direct" | "fanout";

export interface PublishOptions {
  messageId?: string | undefined;
  contentType?: string | undefined;
  headers?: Record<string, string> | undefined;
  /** Stored to disk by the broker (survives a broker restart). Default true. */
  persistent?: boolean | undefined;
  /** Reject with UnroutableError when no queue receives the message. Default false. */
  mandatory?: boolean | undefined;
}

export interface Delivery {
  exchange: string;
  routingKey: string;
  body: Uint8Array;
  messageId?: string | undefined;
  contentType?: string | undefined;
  headers: Record<string, string>;
  /** 1 on the first attempt; counts the retries this bus scheduled. */
  attempt: number;
  /** The broker delivered this message before (e.g. a consumer died before acking it). */
  redelivered: boolean;
}

export type Handler = (msg: Delivery) => Promise<void> | void;

export interface QueueOptions {
  /** Messages that failed maxAttempts times go here (declared too, durable). */
  deadLetterQueue?: string | undefined;
  /** Bind the queue to an exchange (declared first with declareExchange) with these routing keys: a durable subscription (webhooks on records.events). */
  bind?: { exchange: string; routingKeys: string[] } | undefined;
}

export interface ConsumeOptions {
  /** Messages handled at once by this consumer (= concurrent workers). Default 10. */
  prefetch?: number | undefined;
  /** Attempts before a failing message is dead-lettered. Default 5. */
  maxAttempts?: number | undefined;
  /** Delay before attempt n+1, after attempt n failed. Default 1 s · 2^(n-1), at most 60 s. */
  retryDelayMs?: ((attempt: number) => number) | undefined;
}

export interface Consumer {
  close(): Promise<void>;
}

export interface SubscribeOptions {
  /** Unacknowledged live events in flight. Default 1000. */
  prefetch?: number | undefined;
}

/** A live subscription: an exclusive queue bound to one exchange with the keys you choose. */
export interface TopicSubscription {
  /** Resolves once the broker routes `routingKey` to this subscription (or, when disconnected, at once: it is bound on reconnect). */
  bind(routingKey: string): Promise<void>;
  unbind(routingKey: string): Promise<void>;
  /** Called after the subscription was re-created following a reconnect (events may have been missed). */
  onResubscribed(fn: () => void): void;
  /** Messages waiting in this subscription's queue, not yet delivered to it (for the queue-depth metric). */
  depth(): Promise<number>;
  close(): Promise<void>;
}

export interface EventBus {
  readonly kind: "amqp" | "memory";
  /** True while connected to the broker (always true in memory). */
  readonly connected: boolean;
  declareExchange(name: string, type: ExchangeType): Promise<void>;
  declareQueue(name: string, opts?: QueueOptions): Promise<void>;
  publish(exchange: string, routingKey: string, payload: Uint8Array, opts?: PublishOptions): Promise<void>;
  consume(queue: string, handler: Handler, opts?: ConsumeOptions): Promise<Consumer>;
  subscribe(exchange: string, handler: Handler, opts?: SubscribeOptions): Promise<TopicSubscription>;
  /**
   * Messages ready in `queue` (not yet delivered to a consumer), read now: RabbitMQ answers a
   * passive declare. Rejects when the queue does not exist or the broker is not connected.
   */
  queueDepth(queue: string): Promise<number>;
  /** Throws when the broker is not reachable (for /readyz). */
  ready(): Promise<void>;
  /** Resolves true once connected (at once in memory), false after `timeoutMs`. */
  waitConnected(timeoutMs: number): Promise<boolean>;
  close(): Promise<void>;
}

export class BusUnavailableError extends Error {
  override name = "BusUnavailableError";
}

export class UnroutableError extends Error {
  override name = "UnroutableError";
}

/**
 * Thrown by a `consume` handler to see the message again after `delayMs` WITHOUT counting an
 * attempt (e.g. a per-tenant rate limit): the delivery is acked and a copy comes back later.
 */
export class RetryLaterError extends Error {
  override name = "RetryLaterError";
  constructor(
    readonly delayMs: number,
    message = "retry later",
  ) {
    super(message);
  }
}

export const ATTEMPT_HEADER = "x-crm-attempt";
export const defaultRetryDelay = (attempt: number) => Math.min(1000 * 2 ** (attempt - 1), 60_000);

/** AMQP topic matching: words split by ".", `*` matches one word, `#` zero or more. */
export function topicMatches(pattern: string, key: string): boolean {
  const p = pattern.split(".");
  const k = key.split(".");
  const match = (i: number, j: number): boolean => {
    if (i === p.length) return j === k.length;
    if (p[i] === "#") {
      for (let n = j; n <= k.length; n++) if (match(i + 1, n)) return true;
      return false;
    }
    if (j === k.length) return false;
    return (p[i] === "*" || p[i] === k[j]) && match(i + 1, j + 1);
  };
  return match(0, 0);
}

// ---------------------------------------------------------------------------------------------
// In-memory implementation (all-in-one without AMQP_URL): one process, no persistence.

interface MemQueue {
  name: string;
  deadLetterQueue?: string | undefined;
  ready: Delivery[];
  consumers: MemConsumer[];
  exclusive: boolean;
}

interface MemConsumer {
  queue: MemQueue;
  handler: Handler;
  prefetch: number;
  inFlight: number;
  maxAttempts: number;
  retryDelayMs: (attempt: number) => number;
  closed: boolean;
}

export interface MemoryBusOptions {
  /**
   * Flow control, as RabbitMQ applies it to a publisher: a publish that leaves a consumed queue
   * (not a live subscription's) holding this many ready messages resolves only once that queue
   * is back under half of it. The relay then waits and the events stay in the outbox, instead of
   * piling up in this process's memory behind a slow consumer. Default 10,000.
   */
  highWater?: number | undefined;
}

export function memoryBus(log: Logger, opts: MemoryBusOptions = {}): EventBus {
  const highWater = Math.max(1, opts.highWater ?? 10_000);
  const lowWater = Math.floor(highWater / 2);
  /** Publishers held by flow control; each checks again when woken. */
  let held: (() => void)[] = [];
  const exchanges = new Map<string, { type: ExchangeType; bindings: { queue: MemQueue; key: string }[] }>();
  const queues = new Map<string, MemQueue>();
  const timers = new Set<NodeJS.Timeout>();
  let closed = false;
  let rr = 0;

  const queue = (name: string, exclusive = false): MemQueue => {
    let q = queues.get(name);
    if (!q) queues.set(name, (q = { name, ready: [], consumers: [], exclusive }));
    return q;
  };

  function dispatch(q: MemQueue) {
    while (q.ready.length > 0) {
      const free = q.consumers.filter((c) => !c.closed && c.inFlight < c.prefetch);
      if (free.length === 0) return;
      const c = free[rr++ % free.length]!;
      const msg = q.ready.shift()!;
      if (held.length > 0 && q.ready.length < lowWater) wakeHeld();
      c.inFlight++;
      // Asynchronous like a network delivery: never inside the publisher's call stack.
      setImmediate(() => void run(c, msg));
    }
  }

  async function run(c: MemConsumer, msg: Delivery) {
    try {
      // The consumer joins the publisher's trace (RabbitMQ: the amqplib instrumentation does this).
      await consumeInTrace(`${c.queue.name} process`, msg.headers, { "messaging.system": "memory", "messaging.destination.name": msg.exchange || c.queue.name }, async () => c.handler(msg));
    } catch (err) {
      if (!c.closed) retry(c, msg, err);
    } finally {
      c.inFlight--;
      if (!closed) dispatch(c.queue);
    }
  }

  function retry(c: MemConsumer, msg: Delivery, err: unknown) {
    const later = err instanceof RetryLaterError;
    if (!later && msg.attempt >= c.maxAttempts) {
      const dlq = c.queue.deadLetterQueue;
      log.warn({ queue: c.queue.name, attempt: msg.attempt, err: String(err), deadLetter: dlq ?? null }, dlq ? "message dead-lettered" : "message dropped after its last attempt");
      if (dlq) enqueue(queue(dlq), { ...msg, redelivered: false });
      return;
    }
    const next: Delivery = later ? { ...msg, redelivered: false } : { ...msg, attempt: msg.attempt + 1, headers: { ...msg.headers, [ATTEMPT_HEADER]: String(msg.attempt + 1) }, redelivered: false };
    const t = setTimeout(() => {
      timers.delete(t);
      enqueue(c.queue, next);
    }, Math.max(0, later ? err.delayMs : c.retryDelayMs(msg.attempt)));
    timers.add(t);
  }

  function wakeHeld() {
    const wake = held;
    held = [];
    for (const w of wake) w();
  }

  /** A queue some consumer drains (a queue nobody consumes, such as a dead-letter queue, never holds a publisher). */
  const saturated = (q: MemQueue) => !q.exclusive && q.ready.length >= highWater && q.consumers.some((c) => !c.closed);

  function enqueue(q: MemQueue, msg: Delivery) {
    if (closed) return;
    q.ready.push(msg);
    dispatch(q);
  }

  function consumer(q: MemQueue, handler: Handler, opts: ConsumeOptions): MemConsumer {
    const c: MemConsumer = {
      queue: q,
      handler,
      prefetch: Math.max(1, opts.prefetch ?? 10),
      inFlight: 0,
      maxAttempts: Math.max(1, opts.maxAttempts ?? 5),
      retryDelayMs: opts.retryDelayMs ?? defaultRetryDelay,
      closed: false,
    };
    q.consumers.push(c);
    setImmediate(() => dispatch(q));
    return c;
  }

  const removeConsumer = (c: MemConsumer) => {
    c.closed = true;
    c.queue.consumers = c.queue.consumers.filter((x) => x !== c);
    wakeHeld();
  };

  return {
    kind: "memory",
    connected: true,
    async declareExchange(name, type) {
      const e = exchanges.get(name);
      if (e && e.type !== type) throw new Error(`exchange ${name} exists with type ${e.type}, not ${type}`);
      if (!e) exchanges.set(name, { type, bindings: [] });
    },
    async declareQueue(name, opts = {}) {
      if (opts.deadLetterQueue) queue(opts.deadLetterQueue);
      const q = queue(name);
      q.deadLetterQueue = opts.deadLetterQueue;
      if (opts.bind) {
        const e = exchanges.get(opts.bind.exchange);
        if (!e) throw new Error(`no exchange ${opts.bind.exchange}: declare it first`);
        for (const key of opts.bind.routingKeys) if (!e.bindings.some((b) => b.queue === q && b.key === key)) e.bindings.push({ queue: q, key });
      }
    },
    async publish(exchange, routingKey, payload, opts = {}) {
      if (closed) throw new BusUnavailableError("the event bus is closed");
      const targets: MemQueue[] = [];
      if (exchange === "") {
        const q = queues.get(routingKey);
        if (q) targets.push(q);
      } else {
        const e = exchanges.get(exchange);
        if (!e) throw new Error(`no exchange ${exchange}: declare it first`);
        for (const b of e.bindings) {
          const hit = e.type === "fanout" || (e.type === "direct" ? b.key === routingKey : topicMatches(b.key, routingKey));
          if (hit && !targets.includes(b.queue)) targets.push(b.queue);
        }
      }
      if (targets.length === 0 && opts.mandatory) throw new UnroutableError(`no queue receives ${exchange || "(default exchange)"} ${routingKey}`);
      const headers = injectTraceHeaders({ ...opts.headers });
      const attempt = Number(headers[ATTEMPT_HEADER] ?? 1) || 1;
      for (const q of targets) {
        enqueue(q, { exchange, routingKey, body: payload, messageId: opts.messageId, contentType: opts.contentType, headers, attempt, redelivered: false });
      }
      // The message is accepted; the publisher waits while a queue it reached is over the high-water
      // mark, until that queue is back under half of it (dispatch wakes the held publishers).
      while (!closed && targets.some(saturated)) {
        await new Promise<void>((resolve) => held.push(resolve));
      }
    },
    async consume(name, handler, opts = {}) {
      const c = consumer(queue(name), handler, opts);
      return { close: async () => removeConsumer(c) };
    },
    async subscribe(exchange, handler, opts = {}) {
      const e = exchanges.get(exchange);
      if (!e) throw new Error(`no exchange ${exchange}: declare it first`);
      const q = queue(`amq.gen-${randomUUID()}`, true);
      // Live events are not retried: the subscriber acks what it has dispatched.
      const c = consumer(q, handler, { prefetch: opts.prefetch ?? 1000, maxAttempts: 1 });
      return {
        async bind(key) {
          if (!e.bindings.some((b) => b.queue === q && b.key === key)) e.bindings.push({ queue: q, key });
        },
        async unbind(key) {
          e.bindings = e.bindings.filter((b) => !(b.queue === q && b.key === key));
        },
        onResubscribed() {},
        depth: async () => q.ready.length,
        async close() {
          removeConsumer(c);
          e.bindings = e.bindings.filter((b) => b.queue !== q);
          queues.delete(q.name);
        },
      };
    },
    async queueDepth(name) {
      const q = queues.get(name);
      if (!q) throw new Error(`no queue ${name}`);
      return q.ready.length;
    },
    async ready() {
      if (closed) throw new Error("the event bus is closed");
    },
    waitConnected: async () => !closed,
    async close() {
      closed = true;
      wakeHeld();
      for (const t of timers) clearTimeout(t);
      timers.clear();
    },
  };
}

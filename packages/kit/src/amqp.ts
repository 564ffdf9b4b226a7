/**
 * The RabbitMQ EventBus (see bus.ts for the contract): one connection per process with
 * `noDelay` (without it Nagle adds 10–40 ms per message), heartbeats, reconnect with exponential
 * backoff and jitter; a confirm channel for publishing; one channel per consumer with prefetch
 * and manual ack after the handler finished. Exchanges, queues, consumers and subscriptions are
 * declared again after every reconnect.
 *
 * Durable queues (work queues, their `.retry` delay queues and dead-letter queues) are quorum
 * queues (AMQP_QUEUE_TYPE, default quorum): a RabbitMQ cluster replicates them, so losing the node
 * that led one loses no task; on a single node they work as well. Dead-lettering is at-least-once,
 * and a work queue with a dead-letter queue has a delivery limit (`x-delivery-limit`): a message
 * whose handler never finishes (the process dies with it, again and again) goes to the
 * dead-letter queue instead of coming back forever. Delayed retries stay our own (the `.retry`
 * queue's per-message TTL): the broker's redelivery has no delay. A queue that already exists
 * with other arguments (a classic queue made before this) is used as it is, with a warning.
 */
import { hostname } from "node:os";
import type { Channel, ChannelModel, ConfirmChannel, ConsumeMessage, Options } from "amqplib";
import {
  ATTEMPT_HEADER, BusUnavailableError, RetryLaterError, UnroutableError, defaultRetryDelay, memoryBus,
  type ConsumeOptions, type Delivery, type EventBus, type ExchangeType, type Handler, type QueueOptions, type SubscribeOptions, type TopicSubscription,
} from "./bus.js";
import { env, loadConfig } from "./config.js";
import { deadlines, dependencyAt } from "./dependencies.js";
import { z } from "zod";
import type { Logger } from "./logger.js";

export interface AmqpBusOptions {
  url: string;
  log: Logger;
  /** Shown as the connection name in the RabbitMQ management UI / rabbitmqctl. */
  name: string;
  heartbeatSeconds?: number;
  /** Longest wait between reconnect attempts. Default 5 s. */
  maxBackoffMs?: number;
  /** A publish the broker has not confirmed within this rejects with BusUnavailableError. Default AMQP_CONFIRM_TIMEOUT_MS (5 s). */
  confirmTimeoutMs?: number;
  /** Type of the durable queues: quorum (replicated in a cluster) or classic. Default AMQP_QUEUE_TYPE (quorum). */
  queueType?: QueueType;
  /** Deliveries of one message before a quorum work queue dead-letters it (x-delivery-limit). Default 20. */
  deliveryLimit?: number;
}

export type QueueType = "quorum" | "classic";

/** AMQP_QUEUE_TYPE: quorum (default) or classic (a broker older than 3.10). */
export const amqpEnv = { AMQP_QUEUE_TYPE: env.oneOf(["quorum", "classic"], "quorum") };

/** RabbitMQ when `url` is set, else the in-memory bus (all-in-one). Connects in the background. */
export function createEventBus(opts: { url?: string | undefined; log: Logger; name: string }): EventBus {
  if (!opts.url) return memoryBus(opts.log);
  const { AMQP_QUEUE_TYPE } = loadConfig(z.object(amqpEnv));
  return amqpBus({ url: opts.url, log: opts.log, name: opts.name, queueType: AMQP_QUEUE_TYPE });
}

/** The arguments of a durable queue of `type`: dead-lettering to `deadLetterTo`, a delivery limit (quorum). */
export function durableQueueArgs(type: QueueType, o: { deadLetterTo?: string | undefined; deliveryLimit?: number | undefined } = {}): Options.AssertQueue {
  const dlx = o.deadLetterTo !== undefined ? { deadLetterExchange: "", deadLetterRoutingKey: o.deadLetterTo } : {};
  if (type === "classic") return { durable: true, ...dlx };
  const args: Record<string, unknown> = { "x-queue-type": "quorum" };
  if (o.deadLetterTo !== undefined) {
    // at-least-once dead-lettering (a message moves only once the target confirmed it) needs reject-publish
    args["x-dead-letter-strategy"] = "at-least-once";
    args["x-overflow"] = "reject-publish";
    if (o.deliveryLimit) args["x-delivery-limit"] = o.deliveryLimit;
  }
  return { durable: true, ...dlx, arguments: args };
}

const PUBLISH_ID = "x-crm-publish-id";

const toBuffer = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength);

/**
 * Acknowledges handled deliveries of one channel with ONE `ack(multiple)` per event-loop turn,
 * up to the newest delivery whose predecessors are all handled too: still nothing is acked
 * before its handler finished, but a burst of 1,000 events costs one write, not 1,000.
 */
export function inOrderAcks(ackUpTo: (m: ConsumeMessage) => void) {
  const pending: { m: ConsumeMessage; done: boolean }[] = [];
  let head = 0;
  let upTo: ConsumeMessage | undefined;
  let scheduled = false;
  const flush = () => {
    scheduled = false;
    if (upTo) ackUpTo(upTo);
    upTo = undefined;
  };
  return {
    /** Registers a delivery (in delivery order); call the returned function once it is handled. */
    delivered(m: ConsumeMessage): () => void {
      const entry = { m, done: false };
      pending.push(entry);
      return () => {
        entry.done = true;
        while (head < pending.length && pending[head]!.done) upTo = pending[head++]!.m;
        if (head > 1024 && head * 2 > pending.length) pending.splice(0, head), (head = 0);
        if (upTo && !scheduled) (scheduled = true), setImmediate(flush);
      };
    },
  };
}

function toDelivery(m: ConsumeMessage): Delivery {
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(m.properties.headers ?? {})) {
    // x-delivery-count: the quorum queue's own count of this copy, not the message's
    if (k !== PUBLISH_ID && k !== "x-delivery-count" && v !== undefined && v !== null && typeof v !== "object") headers[k] = String(v);
  }
  return {
    exchange: m.fields.exchange,
    routingKey: m.fields.routingKey,
    body: m.content,
    messageId: m.properties.messageId ?? undefined,
    contentType: m.properties.contentType ?? undefined,
    headers,
    attempt: Math.max(1, Number(headers[ATTEMPT_HEADER] ?? 1) || 1),
    redelivered: m.fields.redelivered,
  };
}

/** Runs fn, ignoring the error of an ack/nack on a channel that closed meanwhile (the broker redelivers). */
const quietly = (fn: () => void) => {
  try {
    fn();
  } catch {
    /* channel closed: the message will be redelivered */
  }
};

/** `p`, or a BusUnavailableError after `ms` (the late result is dropped). */
function withDeadline<T>(p: Promise<T>, ms: number, message: () => string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new BusUnavailableError(message())), ms)));
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

interface Part {
  /** (Re)creates the part on a fresh connection. */
  start(conn: ChannelModel): Promise<void>;
}

export function amqpBus(opts: AmqpBusOptions): EventBus {
  const { log } = opts;
  const url = new URL(opts.url);
  if (!url.searchParams.has("heartbeat")) url.searchParams.set("heartbeat", String(opts.heartbeatSeconds ?? 10));
  const safeUrl = `${url.protocol}//${url.host}${url.pathname}`;
  const maxBackoff = opts.maxBackoffMs ?? 5_000;
  const confirmTimeoutMs = opts.confirmTimeoutMs ?? deadlines().AMQP_CONFIRM_TIMEOUT_MS;
  const queueType = opts.queueType ?? "quorum";
  const deliveryLimit = opts.deliveryLimit ?? 20;
  dependencyAt("RabbitMQ", url.host);

  const exchanges = new Map<string, ExchangeType>();
  const queues = new Map<string, QueueOptions>();
  const parts = new Set<Part>();
  const returned = new Set<string>();
  let conn: ChannelModel | undefined;
  let pub: ConfirmChannel | undefined;
  let pubOpening: Promise<ConfirmChannel> | undefined;
  /** A plain channel for passive queue checks: a missing queue (404) closes it, never the publishing channel. */
  let inspect: Promise<Channel> | undefined;
  let closed = false;
  let retryTimer: NodeJS.Timeout | undefined;
  let waiters: (() => void)[] = [];
  let publishSeq = 0;

  /** Queues found with other arguments than ours (classic ones made before quorum queues): used as they are. */
  const kept = new Set<string>();

  /**
   * Declares a durable queue on a channel of its own: a queue that exists with other arguments
   * makes the broker close the channel (PRECONDITION_FAILED), never the publishing one.
   */
  async function assertDurable(c: ChannelModel, name: string, o: { deadLetterTo?: string | undefined; deliveryLimit?: number | undefined }) {
    const ch = await c.createChannel();
    ch.on("error", () => {}); // the 406 below closes this channel only
    try {
      await ch.assertQueue(name, durableQueueArgs(queueType, o));
      return;
    } catch (err) {
      if ((err as { code?: unknown }).code !== 406) throw err;
    } finally {
      await ch.close().catch(() => {});
    }
    const check = await c.createChannel();
    check.on("error", () => {});
    try {
      await check.checkQueue(name); // it exists: use it
    } finally {
      await check.close().catch(() => {});
    }
    if (!kept.has(name)) log.warn({ queue: name, type: queueType }, "queue exists with other arguments (a classic queue made before quorum queues?): used as it is; docs/operations.md says how to move it");
    kept.add(name);
  }

  async function declareQueueOn(c: ChannelModel, name: string, q: QueueOptions) {
    if (q.deadLetterQueue) await assertDurable(c, q.deadLetterQueue, {});
    await assertDurable(c, name, { deadLetterTo: q.deadLetterQueue, deliveryLimit: q.deadLetterQueue ? deliveryLimit : undefined });
    if (q.bind) {
      const ch = await c.createChannel();
      try {
        await ch.assertExchange(q.bind.exchange, exchanges.get(q.bind.exchange) ?? "topic", { durable: true });
        for (const key of q.bind.routingKeys) await ch.bindQueue(name, q.bind.exchange, key);
      } finally {
        await ch.close().catch(() => {});
      }
    }
  }

  async function openPub(c: ChannelModel): Promise<ConfirmChannel> {
    const ch = await c.createConfirmChannel();
    ch.on("error", (err: Error) => log.warn({ err: err.message }, "amqp publish channel error"));
    ch.on("return", (m: { properties: { headers?: Record<string, unknown> } }) => {
      const id = m.properties.headers?.[PUBLISH_ID];
      if (typeof id === "string") returned.add(id);
    });
    ch.on("close", () => {
      if (pub === ch) pub = undefined;
    });
    return ch;
  }

  async function connectOnce() {
    // amqplib is loaded by the first connect: a process without AMQP_URL never loads it.
    const { default: amqp } = await import("amqplib");
    const c = await amqp.connect(url.toString(), { noDelay: true, timeout: 5_000, clientProperties: { connection_name: `${opts.name}@${hostname()}` } });
    try {
      c.on("error", (err: Error) => log.warn({ err: err.message }, "amqp connection error"));
      c.on("blocked", (reason: string) => log.warn({ reason }, "amqp connection blocked by the broker (resource alarm)"));
      const ch = await openPub(c);
      for (const [name, type] of exchanges) await ch.assertExchange(name, type, { durable: true });
      for (const [name, q] of queues) await declareQueueOn(c, name, q);
      conn = c;
      pub = ch;
      c.on("close", () => lost(c));
      for (const p of parts) await p.start(c);
    } catch (err) {
      if (conn === c) conn = undefined;
      await c.close().catch(() => {});
      throw err;
    }
  }

  function lost(c: ChannelModel) {
    if (conn !== c) return;
    conn = undefined;
    pub = undefined;
    inspect = undefined;
    if (closed) return;
    log.warn({ url: safeUrl }, "RabbitMQ connection lost; reconnecting");
    schedule(100);
  }

  function schedule(delay: number) {
    if (closed || retryTimer) return;
    const jittered = Math.round(delay * (0.8 + Math.random() * 0.4));
    retryTimer = setTimeout(() => {
      retryTimer = undefined;
      connectOnce().then(
        () => {
          log.info({ url: safeUrl }, "RabbitMQ connected");
          const w = waiters;
          waiters = [];
          for (const fn of w) fn();
        },
        (err: Error) => {
          // The first attempt runs at once (delay 0); retries back off from 100 ms, never a busy loop.
          const next = Math.min(Math.max(delay * 2, 100), maxBackoff);
          log.warn({ url: safeUrl, err: err.message, retryInMs: next }, "RabbitMQ connect failed");
          schedule(next);
        },
      );
    }, jittered);
  }

  async function ensurePub(): Promise<ConfirmChannel> {
    if (pub) return pub;
    const c = conn;
    if (!c) throw new BusUnavailableError(`RabbitMQ (${safeUrl}) is not connected; reconnecting`);
    pubOpening ??= withDeadline(openPub(c), confirmTimeoutMs, () => `RabbitMQ (${safeUrl}) did not open a channel within ${confirmTimeoutMs} ms (AMQP_CONFIRM_TIMEOUT_MS)`).finally(() => (pubOpening = undefined));
    const ch = await pubOpening;
    if (conn === c) pub = ch;
    return ch;
  }

  function publish(exchange: string, routingKey: string, payload: Uint8Array, o: Parameters<EventBus["publish"]>[3] & { expiration?: string } = {}): Promise<void> {
    return ensurePub().then(
      (ch) =>
        new Promise<void>((resolve, reject) => {
          const headers: Record<string, string> = { ...o.headers };
          const id = o.mandatory ? `${process.pid}-${++publishSeq}` : undefined;
          if (id) headers[PUBLISH_ID] = id;
          const options: Options.Publish = {
            persistent: o.persistent ?? true,
            mandatory: Boolean(o.mandatory),
            headers,
            ...(o.messageId ? { messageId: o.messageId } : {}),
            ...(o.contentType ? { contentType: o.contentType } : {}),
            ...(o.expiration !== undefined ? { expiration: o.expiration } : {}),
          };
          // A frozen or overloaded broker: the message counts as not published (the outbox keeps it and
          // publishes it again; consumers are idempotent), and the caller is not held past the deadline.
          const timer = setTimeout(() => {
            if (id !== undefined) returned.delete(id);
            reject(new BusUnavailableError(`RabbitMQ (${safeUrl}) did not confirm the message to ${exchange || "(default)"} ${routingKey} within ${confirmTimeoutMs} ms (AMQP_CONFIRM_TIMEOUT_MS)`));
          }, confirmTimeoutMs);
          try {
            ch.publish(exchange, routingKey, toBuffer(payload), options, (err) => {
              clearTimeout(timer);
              // RabbitMQ sends basic.return before the confirm of the same message.
              const wasReturned = id !== undefined && returned.delete(id);
              if (err) return reject(new BusUnavailableError(`RabbitMQ did not confirm the message to ${exchange || "(default)"} ${routingKey}: ${err instanceof Error ? err.message : String(err)}`));
              if (wasReturned) return reject(new UnroutableError(`no queue receives ${exchange || "(default exchange)"} ${routingKey}`));
              resolve();
            });
          } catch (err) {
            clearTimeout(timer);
            reject(new BusUnavailableError(`RabbitMQ publish failed: ${(err as Error).message}`));
          }
        }),
    );
  }

  /** Messages ready in `queue`, by a passive declare on the inspection channel (opened again after it closed). */
  async function queueDepth(queue: string): Promise<number> {
    const c = conn;
    if (!c) throw new BusUnavailableError(`RabbitMQ (${safeUrl}) is not connected; reconnecting`);
    if (!inspect) {
      const opening: Promise<Channel> = c.createChannel().then((ch) => {
        ch.on("error", (err: Error) => log.debug({ queue, err: err.message }, "amqp inspection channel closed"));
        ch.on("close", () => void (inspect === opening && (inspect = undefined)));
        return ch;
      });
      opening.catch(() => void (inspect === opening && (inspect = undefined)));
      inspect = opening;
    }
    const ok = await withDeadline(inspect.then((ch) => ch.checkQueue(queue)), confirmTimeoutMs, () => `RabbitMQ (${safeUrl}) did not answer about queue ${queue} within ${confirmTimeoutMs} ms (AMQP_CONFIRM_TIMEOUT_MS)`);
    return ok.messageCount;
  }

  /** Applies a declaration now when connected; it is replayed on every reconnect anyway. */
  async function declareNow(fn: (ch: Channel) => Promise<void>) {
    if (!conn) return;
    const ch = await ensurePub().catch(() => undefined);
    if (ch) await fn(ch);
  }

  function consumerPart(queue: string, handler: Handler, o: ConsumeOptions) {
    const prefetch = Math.max(1, o.prefetch ?? 10);
    const maxAttempts = Math.max(1, o.maxAttempts ?? 5);
    const delayOf = o.retryDelayMs ?? defaultRetryDelay;
    const retryQueue = `${queue}.retry`;
    const inflight = new Set<Promise<void>>();
    let ch: Channel | undefined;
    let tag: string | undefined;
    let stopped = false;

    async function handle(channel: Channel, m: ConsumeMessage) {
      const d = toDelivery(m);
      try {
        await handler(d);
        quietly(() => channel.ack(m));
      } catch (err) {
        const later = err instanceof RetryLaterError;
        if (!later && d.attempt >= maxAttempts) {
          log.warn({ queue, attempt: d.attempt, err: String(err), deadLetter: queues.get(queue)?.deadLetterQueue ?? null }, "message rejected after its last attempt");
          quietly(() => channel.nack(m, false, false));
          return;
        }
        const delay = Math.max(0, Math.round(later ? err.delayMs : delayOf(d.attempt)));
        try {
          // The next attempt is a copy: straight back to the queue, or through the delay queue.
          await publish("", delay > 0 ? retryQueue : queue, m.content, {
            headers: { ...d.headers, [ATTEMPT_HEADER]: String(later ? d.attempt : d.attempt + 1) },
            messageId: d.messageId,
            contentType: d.contentType,
            persistent: true,
            ...(delay > 0 ? { expiration: String(delay) } : {}),
          });
          quietly(() => channel.ack(m));
        } catch {
          quietly(() => channel.nack(m, false, true));
        }
      }
    }

    const part: Part = {
      async start(c) {
        if (stopped) return;
        await declareQueueOn(c, queue, queues.get(queue) ?? {});
        await assertDurable(c, retryQueue, { deadLetterTo: queue });
        const channel = await c.createChannel();
        channel.on("error", (err: Error) => log.warn({ queue, err: err.message }, "amqp consumer channel error"));
        await channel.prefetch(prefetch);
        const ok = await channel.consume(queue, (m) => {
          if (!m) return; // cancelled by the broker (queue deleted): started again on reconnect
          const p = handle(channel, m).finally(() => inflight.delete(p));
          inflight.add(p);
        });
        ch = channel;
        tag = ok.consumerTag;
      },
    };
    return {
      part,
      async close() {
        stopped = true;
        parts.delete(part);
        const channel = ch;
        if (!channel) return;
        if (tag) await channel.cancel(tag).catch(() => {});
        // Let running handlers finish (and ack) before the channel goes.
        await Promise.race([Promise.allSettled([...inflight]), new Promise((r) => setTimeout(r, 10_000).unref())]);
        await channel.close().catch(() => {});
      },
    };
  }

  function subscriptionPart(exchange: string, handler: Handler, o: SubscribeOptions) {
    const keys = new Set<string>();
    const resubscribed: (() => void)[] = [];
    let ch: Channel | undefined;
    let queueName: string | undefined;
    let starting: Promise<void> | undefined;
    let stopped = false;
    let starts = 0;

    const part: Part = {
      start(c) {
        const run = (async () => {
          if (stopped) return;
          const channel = await c.createChannel();
          channel.on("error", (err: Error) => log.warn({ exchange, err: err.message }, "amqp subscription channel error"));
          await channel.prefetch(Math.max(1, o.prefetch ?? 1000));
          const q = await channel.assertQueue("", { exclusive: true, autoDelete: true, durable: false });
          for (const key of keys) await channel.bindQueue(q.queue, exchange, key);
          const acks = inOrderAcks((m) => quietly(() => channel.ack(m, true)));
          await channel.consume(q.queue, (m) => {
            if (!m) return;
            const done = acks.delivered(m);
            const failed = (err: unknown) => log.warn({ exchange, err: String(err) }, "live event handler failed");
            let result;
            try {
              result = handler(toDelivery(m));
            } catch (err) {
              failed(err);
            }
            // A synchronous handler (the chats hub) costs no promise per event.
            if (result) result.catch(failed).finally(done);
            else done();
          });
          ch = channel;
          queueName = q.queue;
          if (starts++ > 0) for (const fn of resubscribed) fn();
        })();
        starting = run;
        run.then(
          () => starting === run && (starting = undefined),
          () => starting === run && (starting = undefined),
        );
        return run;
      },
    };

    const sub: TopicSubscription = {
      async bind(key) {
        keys.add(key);
        await starting?.catch(() => {});
        if (ch && queueName && conn) await ch.bindQueue(queueName, exchange, key).catch((err: Error) => log.debug({ err: err.message }, "bind failed; bound again on reconnect"));
      },
      async unbind(key) {
        keys.delete(key);
        await starting?.catch(() => {});
        if (ch && queueName && conn) await ch.unbindQueue(queueName, exchange, key).catch(() => {});
      },
      onResubscribed(fn) {
        resubscribed.push(fn);
      },
      async depth() {
        if (!queueName) throw new BusUnavailableError(`the subscription to ${exchange} has no queue yet`);
        return queueDepth(queueName);
      },
      async close() {
        stopped = true;
        parts.delete(part);
        await ch?.close().catch(() => {}); // the exclusive queue goes with it
      },
    };
    return { part, sub, markStarted: () => void starts++ };
  }

  schedule(0);

  return {
    kind: "amqp",
    get connected() {
      return Boolean(conn);
    },
    async declareExchange(name, type) {
      exchanges.set(name, type);
      await declareNow(async (ch) => void (await ch.assertExchange(name, type, { durable: true })));
    },
    async declareQueue(name, q = {}) {
      queues.set(name, q);
      const c = conn;
      if (c) await declareQueueOn(c, name, q); // replayed on every reconnect anyway
    },
    publish: (exchange, routingKey, payload, o) => publish(exchange, routingKey, payload, o),
    async consume(queue, handler, o = {}) {
      if (!queues.has(queue)) queues.set(queue, {});
      const c = consumerPart(queue, handler, o);
      parts.add(c.part);
      if (conn) await c.part.start(conn);
      return { close: c.close };
    },
    async subscribe(exchange, handler, o = {}) {
      const s = subscriptionPart(exchange, handler, o);
      parts.add(s.part);
      if (conn) await s.part.start(conn);
      else s.markStarted(); // its first start will come on reconnect and counts as a resubscription
      return s.sub;
    },
    queueDepth,
    async ready() {
      if (!conn) throw new Error(`RabbitMQ (${safeUrl}) is not connected`);
    },
    waitConnected(timeoutMs) {
      if (conn) return Promise.resolve(true);
      if (closed) return Promise.resolve(false);
      return new Promise((resolve) => {
        const t = setTimeout(() => resolve(false), timeoutMs);
        t.unref();
        waiters.push(() => {
          clearTimeout(t);
          resolve(Boolean(conn));
        });
      });
    },
    async close() {
      closed = true;
      clearTimeout(retryTimer);
      const w = waiters;
      waiters = [];
      for (const fn of w) fn();
      const c = conn;
      conn = undefined;
      pub = undefined;
      await c?.close().catch(() => {});
    },
  };
}

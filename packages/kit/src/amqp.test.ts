/** The RabbitMQ EventBus against the real broker; a proxy this test owns stands in for a broker restart. */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, test } from "node:test";
import amqp from "amqplib";
import { TEST_AMQP_URL, installHint, need, rabbitUp, removeRabbitObjects, tcpProxy, until } from "@crm/testkit";
import { amqpBus } from "./amqp.js";
import { BusUnavailableError, UnroutableError, type Delivery, type EventBus } from "./bus.js";
import { createLogger } from "./logger.js";

const skip = need("RabbitMQ", await rabbitUp(), installHint.rabbitmq);
const log = createLogger("test", process.env.TEST_LOG ?? "silent");
const run = randomBytes(4).toString("hex");
const names = { jobs: `test.jobs.${run}`, dead: `test.jobs.${run}.dead`, exchange: `test.events.${run}`, bound: `test.bound.${run}` };
const text = (d: Delivery) => Buffer.from(d.body).toString();

const buses: EventBus[] = [];
after(async () => {
  await Promise.all(buses.map((b) => b.close()));
  if (skip) return;
  await removeRabbitObjects({ queues: [names.jobs, names.dead, `${names.jobs}.retry`, names.bound, `${names.bound}.dead`, `${names.bound}.retry`], exchanges: [names.exchange] });
});

async function connected(url = TEST_AMQP_URL) {
  const bus = amqpBus({ url, log, name: `kit-test-${run}`, maxBackoffMs: 200 });
  buses.push(bus);
  assert.ok(await bus.waitConnected(10_000), "connected to RabbitMQ");
  return bus;
}

function collector<T>(n: number, ms = 15_000) {
  const got: T[] = [];
  let done!: (v: T[]) => void;
  const all = new Promise<T[]>((resolve, reject) => {
    done = resolve;
    setTimeout(() => reject(new Error(`got ${got.length} of ${n} within ${ms} ms: ${JSON.stringify(got)}`)), ms).unref();
  });
  return { push: (v: T) => (got.push(v), got.length === n && done(got)), all, got };
}

test("amqp bus: confirmed publish, ack after the handler, retries counted, dead-letter queue after maxAttempts", { skip }, async () => {
  const bus = await connected();
  await bus.declareQueue(names.jobs, { deadLetterQueue: names.dead });
  const attempts = collector<number>(3);
  const good = collector<string>(1);
  const dead = collector<Delivery>(1);
  await bus.consume(names.jobs, (d) => {
    if (text(d) === "good") return void good.push(text(d));
    attempts.push(d.attempt);
    throw new Error("smtp said no");
  }, { prefetch: 5, maxAttempts: 3, retryDelayMs: (n) => (n === 1 ? 0 : 50) });
  await bus.consume(names.dead, (d) => void dead.push(d));
  await bus.publish("", names.jobs, Buffer.from("bad"), { messageId: "m-1", contentType: "text/plain", headers: { k: "v" } });
  await bus.publish("", names.jobs, Buffer.from("good"));
  assert.deepEqual(await good.all, ["good"]);
  assert.deepEqual(await attempts.all, [1, 2, 3]);
  const [d] = await dead.all;
  assert.equal(text(d!), "bad");
  assert.equal(d!.messageId, "m-1");
  assert.equal(d!.contentType, "text/plain");
  assert.equal(d!.headers.k, "v");
});

test("amqp bus: mandatory publish to a queue that does not exist is unroutable, not lost silently", { skip }, async () => {
  const bus = await connected();
  await assert.rejects(bus.publish("", `no.such.queue.${run}`, Buffer.from("x"), { mandatory: true }), UnroutableError);
  await bus.publish("", `no.such.queue.${run}`, Buffer.from("x")); // not mandatory: confirmed and dropped
});

test("amqp bus: after the connection is cut, publish fails fast, then consumers and subscriptions come back by themselves", { skip }, async () => {
  const p = await tcpProxy(TEST_AMQP_URL, 5672);
  after(() => p.close());
  const bus = await connected(p.via(TEST_AMQP_URL));
  const direct = await connected();
  await bus.declareExchange(names.exchange, "topic");
  const live = collector<string>(2);
  const sub = await bus.subscribe(names.exchange, (d) => void live.push(`${d.routingKey}:${text(d)}`));
  let resubscribed = 0;
  sub.onResubscribed(() => resubscribed++);
  await sub.bind("chat.a");
  await direct.declareExchange(names.exchange, "topic");
  await direct.publish(names.exchange, "chat.a", Buffer.from("1"));
  await until("first live event", () => live.got.length === 1, 10_000);

  const q = `${names.jobs}.resume`;
  await bus.declareQueue(q);
  const jobs = collector<string>(1);
  await bus.consume(q, (d) => void jobs.push(text(d)));

  p.stop();
  await until("disconnect noticed", () => !bus.connected, 10_000);
  await assert.rejects(bus.publish(names.exchange, "chat.a", Buffer.from("lost")), BusUnavailableError);
  await direct.publish("", q, Buffer.from("queued while away"));
  p.start();
  await until("resubscribed after reconnect", () => resubscribed === 1, 15_000);
  await direct.publish(names.exchange, "chat.a", Buffer.from("2"));
  assert.deepEqual(await live.all, ["chat.a:1", "chat.a:2"]);
  assert.deepEqual(await jobs.all, ["queued while away"]);
  await bus.publish(names.exchange, "chat.a", Buffer.from("publishing works again"));
  const c = await amqp.connect(TEST_AMQP_URL);
  await (await c.createChannel()).deleteQueue(q);
  await c.close();
});

test("amqp bus: a durable queue bound to a topic exchange keeps what was published before any consumer", { skip }, async () => {
  const bus = await connected();
  await bus.declareExchange(names.exchange, "topic");
  await bus.declareQueue(names.bound, { deadLetterQueue: `${names.bound}.dead`, bind: { exchange: names.exchange, routingKeys: ["records.*"] } });
  await bus.publish(names.exchange, "records.t1", Buffer.from("a"));
  await bus.publish(names.exchange, "chat.t1", Buffer.from("x"));
  await bus.publish(names.exchange, "records.t2", Buffer.from("b"));
  const got = collector<string>(2);
  const c = await bus.consume(names.bound, (d) => void got.push(text(d)));
  assert.deepEqual((await got.all).sort(), ["a", "b"]);
  await c.close();
});

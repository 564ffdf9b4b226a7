import assert from "node:assert/strict";
import { test } from "node:test";
import { createLogger } from "./logger.js";
import { UnroutableError, memoryBus, topicMatches, type Delivery } from "./bus.js";

const log = createLogger("test", "silent");
const text = (d: Delivery) => Buffer.from(d.body).toString();

/** Resolves with the first `n` values pushed, or rejects after `ms`. */
function collector<T>(n: number, ms = 5_000) {
  const got: T[] = [];
  let done!: (v: T[]) => void;
  const all = new Promise<T[]>((resolve, reject) => {
    done = resolve;
    setTimeout(() => reject(new Error(`got ${got.length} of ${n} within ${ms} ms`)), ms).unref();
  });
  return { push: (v: T) => (got.push(v), got.length === n && done(got)), all, got };
}

test("topic patterns: * is one word, # is zero or more", () => {
  assert.ok(topicMatches("chat.*", "chat.1"));
  assert.ok(!topicMatches("chat.*", "chat.1.x"));
  assert.ok(topicMatches("chat.#", "chat"));
  assert.ok(topicMatches("chat.#", "chat.1.x"));
  assert.ok(topicMatches("#", "anything.at.all"));
  assert.ok(topicMatches("a.*.c", "a.b.c"));
  assert.ok(!topicMatches("a.*.c", "a.c"));
  assert.ok(topicMatches("chat.42", "chat.42"));
  assert.ok(!topicMatches("chat.42", "chat.43"));
});

test("memory bus: queue delivery, ack on resolve, retry with attempt count, dead-letter after maxAttempts", async () => {
  const bus = memoryBus(log);
  await bus.declareQueue("jobs", { deadLetterQueue: "jobs.dead" });
  const attempts = collector<number>(3);
  const ok = collector<string>(1);
  const dead = collector<Delivery>(1);
  await bus.consume("jobs", (d) => {
    if (text(d) === "good") return void ok.push(text(d));
    attempts.push(d.attempt);
    throw new Error("smtp said no");
  }, { prefetch: 2, maxAttempts: 3, retryDelayMs: () => 5 });
  await bus.consume("jobs.dead", (d) => void dead.push(d));
  await bus.publish("", "jobs", Buffer.from("bad"), { messageId: "m1", headers: { a: "b" } });
  await bus.publish("", "jobs", Buffer.from("good"));
  assert.deepEqual(await ok.all, ["good"]);
  assert.deepEqual(await attempts.all, [1, 2, 3]);
  const [d] = await dead.all;
  assert.equal(text(d!), "bad");
  assert.equal(d!.messageId, "m1");
  assert.equal(d!.headers.a, "b");
  await bus.close();
});

test("memory bus: prefetch bounds concurrent handlers", async () => {
  const bus = memoryBus(log);
  await bus.declareQueue("work");
  let running = 0;
  let peak = 0;
  const done = collector<number>(20);
  await bus.consume("work", async () => {
    peak = Math.max(peak, ++running);
    await new Promise((r) => setTimeout(r, 2));
    running--;
    done.push(1);
  }, { prefetch: 5 });
  for (let i = 0; i < 20; i++) await bus.publish("", "work", Buffer.from(String(i)));
  await done.all;
  assert.equal(peak, 5);
  await bus.close();
});

test("memory bus: mandatory publish to a missing queue is unroutable; topic subscriptions bind and unbind", async () => {
  const bus = memoryBus(log);
  await assert.rejects(bus.publish("", "nobody", Buffer.from("x"), { mandatory: true }), UnroutableError);
  await bus.publish("", "nobody", Buffer.from("x")); // not mandatory: dropped quietly
  await bus.declareExchange("chat.events", "topic");
  const a = collector<string>(2);
  const sub = await bus.subscribe("chat.events", (d) => void a.push(`${d.routingKey}:${text(d)}`));
  await bus.publish("chat.events", "chat.1", Buffer.from("before-bind"));
  await sub.bind("chat.1");
  await sub.bind("chat.1"); // idempotent
  await bus.publish("chat.events", "chat.1", Buffer.from("one"));
  await bus.publish("chat.events", "chat.2", Buffer.from("other"));
  await sub.unbind("chat.1");
  await bus.publish("chat.events", "chat.1", Buffer.from("after-unbind"));
  await sub.bind("chat.2");
  await bus.publish("chat.events", "chat.2", Buffer.from("two"));
  assert.deepEqual(await a.all, ["chat.1:one", "chat.2:two"]);
  await sub.close();
  await bus.close();
});

test("memory bus: a durable queue bound to a topic exchange gets every matching key, even with no consumer yet", async () => {
  const bus = memoryBus(log);
  await bus.declareExchange("records.events", "topic");
  await bus.declareQueue("webhooks.records", { bind: { exchange: "records.events", routingKeys: ["records.#"] } });
  await bus.publish("records.events", "records.t1", Buffer.from("a"));
  await bus.publish("records.events", "other.t1", Buffer.from("x"));
  await bus.publish("records.events", "records.t2", Buffer.from("b"));
  const got = collector<string>(2);
  await bus.consume("webhooks.records", (d) => void got.push(text(d)));
  assert.deepEqual(await got.all, ["a", "b"]);
  await bus.close();
});

test("memory bus: flow control holds a publisher while a consumed queue is over its high-water mark", async () => {
  const bus = memoryBus(log, { highWater: 4 });
  await bus.declareQueue("slow");
  await bus.declareQueue("nobody-reads");
  let release!: () => void;
  let gate = new Promise<void>((r) => (release = r));
  const seen = collector<string>(5);
  await bus.consume(
    "slow",
    async (d) => {
      await gate;
      seen.push(text(d));
    },
    { prefetch: 1 },
  );
  const body = (n: number) => new TextEncoder().encode(String(n));
  // One in flight (held by the gate), then three ready: under the mark, every publish resolves.
  for (let n = 1; n <= 4; n++) await bus.publish("", "slow", body(n));
  await new Promise((r) => setImmediate(r));
  // The next one makes four ready: accepted, but its publisher is held.
  let resolved = false;
  const held = bus.publish("", "slow", body(5)).then(() => (resolved = true));
  await new Promise((r) => setImmediate(r));
  assert.equal(resolved, false, "held while the queue is over its high-water mark");
  // A queue nobody consumes (a dead-letter queue) never holds its publisher.
  for (let n = 0; n < 10; n++) await bus.publish("", "nobody-reads", body(n));
  assert.equal(await bus.queueDepth("nobody-reads"), 10);
  // The consumer drains: under half the mark, the publisher goes on; nothing was lost or reordered.
  release();
  gate = Promise.resolve();
  await held;
  assert.deepEqual(await seen.all, ["1", "2", "3", "4", "5"]);
  await bus.close();
});

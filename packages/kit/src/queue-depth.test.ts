/**
 * EventBus.queueDepth and TopicSubscription.depth: messages waiting (not yet delivered), on the
 * in-memory bus and on the real RabbitMQ, and what crm_queue_depth shows of them.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, test } from "node:test";
import { TEST_AMQP_URL, installHint, need, rabbitUp, removeRabbitObjects } from "@crm/testkit";
import { amqpBus } from "./amqp.js";
import { memoryBus, type EventBus } from "./bus.js";
import { createLogger } from "./logger.js";
import { metricsRegistry, watchQueueDepth } from "./metrics.js";

const skip = need("RabbitMQ", await rabbitUp(), installHint.rabbitmq);
const log = createLogger("test", "silent");
const run = randomBytes(4).toString("hex");
const names = { queue: `test.depth.${run}`, exchange: `test.depth.events.${run}` };

const buses: EventBus[] = [];
after(async () => {
  await Promise.all(buses.map((b) => b.close()));
  if (skip) return;
  await removeRabbitObjects({ queues: [names.queue], exchanges: [names.exchange] });
});

/** crm_queue_depth{queue} as the registry reports it at a scrape. */
async function gauge(queue: string): Promise<number | undefined> {
  const m = await metricsRegistry.getSingleMetric("crm_queue_depth")!.get();
  return m.values.find((v) => v.labels.queue === queue)?.value;
}

test("memory bus: a queue's depth is what no consumer has taken yet", async () => {
  const bus = memoryBus(log);
  buses.push(bus);
  await bus.declareQueue("jobs");
  for (let i = 0; i < 4; i++) await bus.publish("", "jobs", Buffer.from(String(i)));
  assert.equal(await bus.queueDepth("jobs"), 4);
  await assert.rejects(bus.queueDepth("no-such-queue"));
  const unwatch = watchQueueDepth("memory.jobs", () => bus.queueDepth("jobs"));
  assert.equal(await gauge("memory.jobs"), 4);
  unwatch();
});

test("amqp bus: queueDepth counts ready messages; a subscription's depth counts events beyond its prefetch", { skip, timeout: 30_000 }, async () => {
  const bus = amqpBus({ url: TEST_AMQP_URL, log, name: `depth-test-${run}` });
  buses.push(bus);
  assert.ok(await bus.waitConnected(10_000), "connected to RabbitMQ");
  await bus.declareQueue(names.queue);
  for (let i = 0; i < 5; i++) await bus.publish("", names.queue, Buffer.from(String(i)));
  assert.equal(await bus.queueDepth(names.queue), 5);

  // A subscription that holds its first event: with prefetch 1 every later one waits in its queue.
  await bus.declareExchange(names.exchange, "topic");
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  let first!: () => void;
  const gotFirst = new Promise<void>((r) => (first = r));
  const sub = await bus.subscribe(names.exchange, async () => {
    first();
    await held;
  }, { prefetch: 1 });
  await sub.bind("chat.x");
  await bus.publish(names.exchange, "chat.x", Buffer.from("held"));
  await gotFirst;
  for (let i = 0; i < 6; i++) await bus.publish(names.exchange, "chat.x", Buffer.from(`waiting ${i}`));
  assert.equal(await sub.depth(), 6);
  const unwatch = watchQueueDepth("test.subscription", () => sub.depth());
  assert.equal(await gauge("test.subscription"), 6);
  unwatch();
  release();
  await sub.close();
});

/**
 * crm_queue_depth of the e-mail queues on the real RabbitMQ: the workers' process reports how many
 * tasks wait in `email_tasks` and in its dead-letter queue, read from the broker at each scrape.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, test } from "node:test";
import type { Client } from "@connectrpc/connect";
import { amqpBus, createLogger, memoryCounter, metricsRegistry } from "@crm/kit";
import { TEST_AMQP_URL, installHint, need, rabbitUp, removeRabbitObjects } from "@crm/testkit";
import type { DbEmailService } from "@crm/gen/crm/db/v1/db_email_pb";
import { deadLetterQueueOf } from "@crm/contracts";
import { startEmailWorkers } from "../src/worker.js";

const skip = need("RabbitMQ", await rabbitUp(), installHint.rabbitmq);
const log = createLogger("test", "silent");
const queue = `email_tasks_depth_${randomBytes(4).toString("hex")}`;
const dlq = deadLetterQueueOf(queue);

after(async () => {
  if (skip) return;
  await removeRabbitObjects({ queues: [queue, dlq, `${queue}.retry`] });
});

/** crm_queue_depth{queue} as a scrape of /metrics shows it (the registry's text exposition). */
async function scraped(name: string): Promise<number | undefined> {
  const text = await metricsRegistry.metrics();
  const line = text.split("\n").find((l) => l.startsWith(`crm_queue_depth{queue="${name}"} `));
  return line === undefined ? undefined : Number(line.split(" ").pop());
}

test("the e-mail queue and its dead-letter queue report their real depth", { skip, timeout: 60_000 }, async () => {
  const bus = amqpBus({ url: TEST_AMQP_URL, log, name: "email-depth-test" });
  assert.ok(await bus.waitConnected(10_000), "connected to RabbitMQ");
  // No workers: nothing takes the tasks, so the depth is what was published.
  const workers = await startEmailWorkers({
    bus,
    db: {} as Client<typeof DbEmailService>, // never called without workers
    newSender: () => assert.fail("no worker, no sender"),
    counter: memoryCounter(),
    log,
    cfg: { queue, workers: 0, prefetch: 1, maxAttempts: 3, retryBaseMs: 1000, retryMaxMs: 1000, companyRatePerSecond: 10 },
  });
  try {
    assert.equal(await scraped(queue), 0);
    assert.equal(await scraped(dlq), 0);
    // publish resolves on the broker's confirm: the messages are in the queue by then
    for (let i = 0; i < 7; i++) await bus.publish("", queue, Buffer.from(`task ${i}`));
    for (let i = 0; i < 3; i++) await bus.publish("", dlq, Buffer.from(`dead ${i}`));
    assert.equal(await scraped(queue), 7);
    assert.equal(await scraped(dlq), 3);
    assert.equal(await bus.queueDepth(queue), 7);
    // a missing queue rejects (the metric keeps its last value) and the bus carries on
    await assert.rejects(bus.queueDepth(`${queue}.missing`));
    await bus.publish("", queue, Buffer.from("one more"));
    assert.equal(await scraped(queue), 8);
  } finally {
    await workers.close();
    await bus.close();
  }
});

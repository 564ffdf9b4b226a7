/**
 * The chats replica's own queue on chat.events is in crm_queue_depth: a value is there only when
 * the broker answered the passive check for that (server-named, exclusive) queue.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { amqpBus, createLogger, metricsRegistry } from "@crm/kit";
import { TEST_AMQP_URL, installHint, need, rabbitUp } from "@crm/testkit";
import { REPLICA_QUEUE_METRIC, createHub } from "../src/hub.js";

const skip = need("RabbitMQ", await rabbitUp(), installHint.rabbitmq);
const log = createLogger("test", "silent");

test("the replica's chat.events queue reports its depth at a scrape", { skip, timeout: 30_000 }, async () => {
  const bus = amqpBus({ url: TEST_AMQP_URL, log, name: "chats-depth-test" });
  assert.ok(await bus.waitConnected(10_000), "connected to RabbitMQ");
  const hub = await createHub({ bus, log, unbindGraceMs: 10 });
  try {
    const stop = await hub.watch("chat-depth", "co-1", () => {});
    const text = await metricsRegistry.metrics();
    assert.match(text, new RegExp(`^crm_queue_depth\\{queue="${REPLICA_QUEUE_METRIC.replace(/\./g, "\\.")}"\\} 0$`, "m"));
    stop();
  } finally {
    await hub.close();
    await bus.close();
  }
});

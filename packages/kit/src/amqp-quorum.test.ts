/**
 * Queues that survive the broker (issue 20 item 7), on a RabbitMQ node this test owns
 * (@crm/testkit ownRabbitMq): the work, retry and dead-letter queues are quorum queues, a message
 * redelivered past the delivery limit is dead-lettered, an older classic queue keeps working, and
 * a broker restart in the middle of the work loses no confirmed task (some waiting for a retry).
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import amqp from "amqplib";
import { need, ownRabbitMq, ownServersProblem, until, type OwnServer } from "@crm/testkit";
import { amqpBus } from "./amqp.js";
import { BusUnavailableError, type Delivery, type EventBus } from "./bus.js";
import { createLogger } from "./logger.js";

const problem = ownServersProblem("rabbitmq");
const skip = need("rabbitmq-server (own node)", !problem, "apt-get install rabbitmq-server");
const log = createLogger("test", process.env.TEST_LOG ?? "silent");

describe("quorum queues on a RabbitMQ node of our own", { skip, timeout: 300_000 }, () => {
  let rabbit: OwnServer;
  const buses: EventBus[] = [];
  before(async () => {
    rabbit = await ownRabbitMq();
  });
  after(async () => {
    await Promise.all(buses.map((b) => b.close()));
    await rabbit?.close();
  });

  async function connected(o: { deliveryLimit?: number } = {}) {
    const bus = amqpBus({ url: rabbit.url, log, name: "quorum-test", maxBackoffMs: 200, ...o });
    buses.push(bus);
    assert.ok(await bus.waitConnected(30_000), "connected to the own RabbitMQ");
    return bus;
  }

  /** The broker's answer to redeclaring `queue` as `type`: "ok" or its refusal (406 when it is of another type). */
  async function declareAs(queue: string, type: "classic" | "quorum"): Promise<string> {
    const c = await amqp.connect(rabbit.url);
    try {
      const ch = await c.createChannel();
      ch.on("error", () => {});
      return await ch.checkQueue(queue).then(
        () => ch.assertQueue(queue, { durable: true, arguments: { "x-queue-type": type } }).then(() => "ok", (err: { code?: number }) => String(err.code)),
        () => "missing",
      );
    } finally {
      await c.close().catch(() => {});
    }
  }

  it("work, retry and dead-letter queues are quorum queues; past the delivery limit a message is dead-lettered", async () => {
    const bus = await connected({ deliveryLimit: 2 });
    await bus.declareQueue("tasks", { deadLetterQueue: "tasks.dead" });
    const consumer = await bus.consume("tasks", async () => {}, {});
    await consumer.close();
    for (const q of ["tasks", "tasks.dead", "tasks.retry"]) assert.equal(await declareAs(q, "classic"), "406", `${q} is not a classic queue`);
    assert.equal(await declareAs("tasks.dead", "quorum"), "ok", "tasks.dead is a plain quorum queue");
    // the two that dead-letter carry their arguments: redeclared without them is refused
    for (const q of ["tasks", "tasks.retry"]) assert.equal(await declareAs(q, "quorum"), "406", `${q} has its dead-letter arguments`);
    // A handler that never finishes (its process dies): the broker counts the deliveries.
    await bus.publish("", "tasks", Buffer.from("poison"), { messageId: "poison" });
    const c = await amqp.connect(rabbit.url);
    try {
      for (let i = 0; i < 3; i++) {
        const ch = await c.createChannel();
        await ch.prefetch(1);
        const got = await new Promise<amqp.ConsumeMessage>((resolve) => void ch.consume("tasks", (m) => m && resolve(m)));
        assert.equal(got.properties.messageId, "poison");
        await ch.close(); // unacked: back to the queue, one delivery more
      }
      await until("the message past its delivery limit in tasks.dead", async () => (await bus.queueDepth("tasks.dead")) === 1, 15_000);
      assert.equal(await bus.queueDepth("tasks"), 0);
    } finally {
      await c.close().catch(() => {});
    }
  });

  it("a classic queue made before quorum queues is used as it is", async () => {
    const c = await amqp.connect(rabbit.url);
    const ch = await c.createChannel();
    await ch.assertQueue("legacy.dead", { durable: true });
    await ch.assertQueue("legacy", { durable: true, deadLetterExchange: "", deadLetterRoutingKey: "legacy.dead" });
    await c.close();
    const bus = await connected();
    await bus.declareQueue("legacy", { deadLetterQueue: "legacy.dead" });
    const got: string[] = [];
    const consumer = await bus.consume("legacy", async (d) => void got.push(Buffer.from(d.body).toString()));
    await bus.publish("", "legacy", Buffer.from("still works"));
    await until("the message through the classic queue", () => got.length === 1);
    assert.deepEqual(got, ["still works"]);
    await consumer.close();
    assert.equal(await declareAs("legacy", "quorum"), "406", "it is still the classic queue");
  });

  it("a broker restart in the middle of the work loses no confirmed task", async () => {
    const bus = await connected();
    await bus.declareQueue("jobs", { deadLetterQueue: "jobs.dead" });
    const total = 300;
    const confirmed = new Set<string>();
    const handled = new Set<string>();
    let failedOnce = 0;
    // Every 10th task fails its first attempt and waits 500 ms in jobs.retry; the rest take a moment.
    const consumer = await bus.consume(
      "jobs",
      async (d: Delivery) => {
        const id = d.messageId!;
        if (Number(id) % 10 === 0 && d.attempt === 1) {
          failedOnce++;
          throw new Error("temporary failure");
        }
        await new Promise((r) => setTimeout(r, 5));
        handled.add(id);
      },
      { prefetch: 5, retryDelayMs: () => 500 },
    );
    for (let i = 1; i <= total; i++) {
      await bus.publish("", "jobs", Buffer.from(`job ${i}`), { messageId: String(i) });
      confirmed.add(String(i));
    }
    await until("some tasks handled, some waiting for their retry", () => handled.size >= 60 && failedOnce >= 5, 60_000);
    assert.ok(handled.size < total, "the restart comes in the middle of the work");

    await rabbit.stop();
    await assert.rejects(bus.publish("", "jobs", Buffer.from("during the outage"), { messageId: "lost?" }), BusUnavailableError, "the caller is told (the outbox keeps it)");
    await rabbit.start();

    await until("every confirmed task handled after the restart", () => handled.size === total, 120_000);
    assert.deepEqual([...confirmed].filter((id) => !handled.has(id)), [], "no confirmed task was lost");
    assert.equal(await bus.queueDepth("jobs.dead"), 0, "none was dead-lettered");
    await consumer.close();
  });
});

/** inOrderAcks: one ack(multiple) per event-loop turn, never past a delivery still being handled. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { setImmediate as turn } from "node:timers/promises";
import type { ConsumeMessage } from "amqplib";
import { inOrderAcks } from "./amqp.js";

const msg = (tag: number) => ({ fields: { deliveryTag: tag } }) as ConsumeMessage;

test("acks up to the newest delivery whose predecessors are all handled, once per turn", async () => {
  const acked: number[] = [];
  const acks = inOrderAcks((m) => acked.push(m.fields.deliveryTag));
  const [d1, d2, d3, d4] = [1, 2, 3, 4].map((t) => acks.delivered(msg(t))) as [() => void, () => void, () => void, () => void];
  d2();
  await turn();
  assert.deepEqual(acked, [], "2 is handled but 1 is not: nothing may be acked");
  d1();
  d3();
  assert.deepEqual(acked, [], "acks wait for the end of the turn");
  await turn();
  assert.deepEqual(acked, [3], "one ack(multiple) covers 1..3");
  d4();
  await turn();
  assert.deepEqual(acked, [3, 4]);
});

test("a long run of handled deliveries keeps memory bounded and acks the last", async () => {
  const acked: number[] = [];
  const acks = inOrderAcks((m) => acked.push(m.fields.deliveryTag));
  for (let t = 1; t <= 5000; t++) acks.delivered(msg(t))();
  await turn();
  assert.deepEqual(acked, [5000]);
});

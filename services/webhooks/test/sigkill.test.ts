/**
 * SIGKILL of a webhooks worker process mid-delivery: its lease runs out and another worker sends
 * the same delivery again, under the same webhook-id; the event is delivered once it is answered.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import { after, before, test } from "node:test";
import { DeliveryStatus } from "@crm/gen/crm/webhooks/v1/webhooks_pb";
import { installHint, need, postgresUp, until } from "@crm/testkit";
import { harness, receiver, type Harness } from "./harness.js";

const skip = need("PostgreSQL", await postgresUp(), installHint.postgres);

let h: Harness;
before(async () => {
  if (skip) return;
  // This process's workers wait until the child was killed.
  h = await harness({}, { workers: false });
});
after(async () => {
  await h?.close();
});

test("a worker killed with SIGKILL mid-delivery: another sends it again with the same id", { skip }, async () => {
  const t = await h.tenant();
  let answer = false;
  const rcv = await receiver((_q, res) => {
    if (answer) res.writeHead(200).end("ok");
    // else: no answer while the child is killed
  });
  const { endpoint } = await t.api.createEndpoint({ url: rcv.url, eventTypes: ["*"] });
  await h.publish(t.companyId, 1n);
  await until("the delivery is queued", async () => (await t.api.listDeliveries({ endpointId: endpoint!.endpointId })).deliveries.length === 1);

  const child = spawn(process.execPath, [...process.execArgv.filter((a) => !a.startsWith("--test")), fileURLToPath(new URL("./worker-child.ts", import.meta.url))], {
    env: { ...process.env, TEST_WEBHOOKS_DATABASE_URL: h.m.tdb.url },
    stdio: ["ignore", "pipe", "inherit"],
  });
  try {
    await until("the child's first attempt reached the receiver", () => rcv.got.length === 1, 90_000);
    child.kill("SIGKILL");
    await once(child, "exit");
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  }
  const first = rcv.got[0]!.headers["webhook-id"];
  const before = await t.api.listDeliveries({ endpointId: endpoint!.endpointId });
  assert.equal(before.deliveries[0]!.status, DeliveryStatus.PENDING, "still pending: the dead worker never settled it");
  assert.equal(before.deliveries[0]!.attempts.length, 0);

  // This process's workers, with the clock past the dead worker's lease (2 × 10 s + 5 s).
  answer = true;
  h.advance(30_000);
  h.module.startWorkers();
  await until("delivered by the other worker", async () => (await t.api.listDeliveries({ endpointId: endpoint!.endpointId })).deliveries[0]!.status === DeliveryStatus.SUCCEEDED, 30_000);
  assert.equal(rcv.got.length, 2);
  assert.equal(rcv.got[1]!.headers["webhook-id"], first, "the same id after the kill");
  await rcv.down();
});

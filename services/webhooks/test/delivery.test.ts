/**
 * Webhooks end to end below the network edge: the real store on PostgreSQL, the module with its
 * intake (records.events on the in-memory bus), workers and the guarded HTTP sender, against
 * receivers on 127.0.0.1 the test owns that answer 500, hang, reset connections, redirect, or are
 * down for a while. Every event arrives, its signature valid, its webhook-id unchanged across
 * retries; 24 hours of failures (the clock moved) disable the endpoint and e-mail the owner.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { Code } from "@connectrpc/connect";
import { Webhook } from "standardwebhooks";
import { DeliveryStatus } from "@crm/gen/crm/webhooks/v1/webhooks_pb";
import { expectError, installHint, need, postgresUp, until } from "@crm/testkit";
import { harness, receiver, type Harness, type Received } from "./harness.js";

const skip = need("PostgreSQL", await postgresUp(), installHint.postgres);

let h: Harness;
before(async () => {
  if (skip) return;
  h = await harness();
});
after(async () => {
  await h?.close();
});

const idOf = (r: Received) => r.headers["webhook-id"]!;
const bodyOf = (r: Received) => JSON.parse(r.body) as { type: string; data: { event_id: string; tenant_version: string; record: { company: { name: string } } } };

test("every event arrives signed, through 500s, resets, a hang and an outage, each under one id", { skip }, async () => {
  const t = await h.tenant();
  // Each event's first try fails, by its version: 500, a connection reset, or no answer (the
  // worker gives up at its deadline); every later try gets 204.
  const seen = new Set<string>();
  const rcv = await receiver((req, res) => {
    const r = rcv.got[rcv.got.length - 1]!;
    const first = !seen.has(idOf(r));
    seen.add(idOf(r));
    if (!first) return void res.writeHead(204).end();
    const v = Number(bodyOf(r).data.tenant_version) % 3;
    if (v === 0) return void res.writeHead(500).end("boom");
    if (v === 1) return void req.socket.destroy();
  });
  const { endpoint, secret } = await t.api.createEndpoint({ url: rcv.url, eventTypes: ["company.*"], description: "test" });
  const wh = new Webhook(secret);
  const ids: string[] = [];
  for (let v = 1n; v <= 12n; v++) ids.push(await h.publish(t.companyId, v));
  // Down for a while in the middle.
  await until("some attempts", () => rcv.got.length >= 4);
  await rcv.down();
  await new Promise((r) => setImmediate(r));
  await rcv.up();
  await until("every event delivered", async () => {
    const list = await t.api.listDeliveries({ endpointId: endpoint!.endpointId, pageSize: 200 });
    return list.deliveries.length === 12 && list.deliveries.every((d) => d.status === DeliveryStatus.SUCCEEDED);
  }, 60_000);
  const byId = new Map<string, Received[]>();
  for (const r of rcv.got) byId.set(idOf(r), [...(byId.get(idOf(r)) ?? []), r]);
  assert.equal(byId.size, 12, "12 events, each under one id");
  for (const [id, tries] of byId) {
    for (const r of tries) {
      const b = wh.verify(r.body, r.headers) as ReturnType<typeof bodyOf>;
      assert.equal(b.data.event_id, id, "the id in the body is the webhook-id, on every try");
    }
  }
  assert.ok([...byId.values()].some((tries) => tries.length > 1), "some were retried");
  const versions = [...byId.values()].map((tries) => Number(bodyOf(tries[0]!).data.tenant_version)).sort((a, b) => a - b);
  assert.deepEqual(versions, Array.from({ length: 12 }, (_, i) => i + 1));
  // The log: attempts with status, latency and the answer's first bytes.
  const log = await t.api.listDeliveries({ endpointId: endpoint!.endpointId });
  const attempts = log.deliveries.flatMap((d) => d.attempts);
  assert.ok(attempts.some((a) => a.httpStatus === 500 && a.responsePrefix === "boom"));
  assert.ok(attempts.some((a) => a.httpStatus === 0 && /no answer within/.test(a.error)));
  assert.ok(attempts.some((a) => a.httpStatus === 204));
  await rcv.down();
});

test("a hanging endpoint delays nobody else: it holds its per-endpoint slots, never the pool", { skip }, async () => {
  // A pool of 5 with 4 per endpoint, and a 30 s deadline: were the pool blocked by the slow
  // endpoint, the fast one would wait 30 s.
  const own = await harness({ WEBHOOKS_TIMEOUT_MS: 30_000, WEBHOOKS_CONCURRENCY: 5, WEBHOOKS_PER_ENDPOINT: 4 });
  const t = await own.tenant();
  const slow = await receiver(() => {});
  const fast = await receiver((_q, res) => res.writeHead(200).end("ok"));
  try {
    await t.api.createEndpoint({ url: slow.url, eventTypes: ["*"] });
    await until("the slow endpoint holds its slots", async () => {
      await own.publish(t.companyId, BigInt(slow.got.length + 1000));
      return slow.got.length >= 4;
    }, 20_000);
    await t.api.createEndpoint({ url: fast.url, eventTypes: ["*"] });
    for (let v = 1n; v <= 20n; v++) await own.publish(t.companyId, v);
    await until("the fast endpoint got all 20", () => fast.got.filter((g) => Number(JSON.parse(g.body).data.tenant_version) <= 20).length >= 20, 20_000);
    assert.equal(slow.got.length, 4, "the slow endpoint never had more than its 4 in flight");
  } finally {
    await slow.down();
    await fast.down();
    await own.close();
  }
});

test("rotation sends both signatures during the overlap; SendTest, Redeliver and ReplayEvents keep ids", { skip }, async () => {
  const t = await h.tenant();
  const rcv = await receiver((_q, res) => res.writeHead(200).end());
  const { endpoint, secret } = await t.api.createEndpoint({ url: rcv.url, eventTypes: ["company.created"] });
  const rotated = await t.api.rotateSecret({ endpointId: endpoint!.endpointId, overlapSeconds: 3600 });
  const test1 = await t.api.sendTest({ endpointId: endpoint!.endpointId });
  await until("the test event", () => rcv.got.length === 1);
  const r = rcv.got[0]!;
  assert.equal(idOf(r), test1.delivery!.eventId);
  assert.equal(r.headers["webhook-signature"]!.split(" ").length, 2);
  new Webhook(secret).verify(r.body, r.headers);
  new Webhook(rotated.secret).verify(r.body, r.headers);
  // Redeliver: the same id again.
  await until("settled", async () => (await t.api.listDeliveries({ endpointId: endpoint!.endpointId })).deliveries[0]!.status === DeliveryStatus.SUCCEEDED);
  await t.api.redeliver({ endpointId: endpoint!.endpointId, deliveryId: test1.delivery!.deliveryId });
  await until("the redelivery", () => rcv.got.length === 2);
  assert.equal(idOf(rcv.got[1]!), idOf(r));
  // Replay since a version: from rec_changes, the ids the live events had.
  const { recordChangeEvent } = await import("@crm/contracts/events");
  const { ObjectType } = await import("@crm/gen/crm/records/v1/common_pb");
  const { ChangeAction } = await import("@crm/gen/crm/records/v1/stream_pb");
  for (let v = 1n; v <= 5n; v++) {
    const e = recordChangeEvent({ version: v, tenantId: t.companyId, objectType: ObjectType.COMPANY, recordId: crypto.randomUUID(), action: ChangeAction.CREATED });
    await h.m.pool.query("INSERT INTO rec_changes (company_id, version, object_type, record_id, event) VALUES ($1, $2, 'company', gen_random_uuid(), $3)", [t.companyId, v, Buffer.from(e.payload)]);
  }
  const replay = await t.api.replayEvents({ endpointId: endpoint!.endpointId, sinceVersion: 2n });
  assert.equal(replay.queued, 3);
  await until("the replayed events", () => rcv.got.length === 5);
  assert.deepEqual(rcv.got.slice(2).map((x) => Number(bodyOf(x).data.tenant_version)).sort(), [3, 4, 5]);
  await rcv.down();
});

test("24 hours of failures disable the endpoint, e-mail the owners and write the audit log", { skip }, async () => {
  const t = await h.tenant();
  const rcv = await receiver((_q, res) => res.writeHead(503).end("down"));
  const { endpoint } = await t.api.createEndpoint({ url: rcv.url, eventTypes: ["*"] });
  await h.publish(t.companyId, 1n);
  await until("the first attempt", () => rcv.got.length >= 1);
  h.advance(25 * 3600_000);
  await until("disabled", async () => (await t.api.listEndpoints({})).endpoints.some((e) => e.endpointId === endpoint!.endpointId && !e.active), 15_000);
  const ep = (await t.api.listEndpoints({})).endpoints.find((e) => e.endpointId === endpoint!.endpointId)!;
  assert.match(ep.disabledReason, /24 hours/);
  const mails = await h.m.pool.query("SELECT to_address, subject FROM emails WHERE company_id = $1", [t.companyId]);
  assert.equal(mails.rowCount, 1);
  assert.match(mails.rows[0].to_address, /^owner-/);
  const audit = await h.m.pool.query<{ action: string }>("SELECT action FROM audit_events WHERE company_id = $1 ORDER BY seq", [t.companyId]);
  assert.deepEqual(audit.rows.map((r) => r.action), ["webhook.endpoint_created", "webhook.endpoint_disabled"]);
  const d = (await t.api.listDeliveries({ endpointId: endpoint!.endpointId })).deliveries[0]!;
  assert.equal(d.status, DeliveryStatus.FAILED);
  await rcv.down();
});

test("SSRF: private, loopback-resolving, metadata and mapped addresses are refused at registration", { skip }, async () => {
  const strict = await harness({ WEBHOOKS_ALLOW_CIDRS: "" });
  try {
    const t = await strict.tenant();
    for (const url of ["http://127.0.0.1:9/", "http://10.0.0.1/", "http://169.254.169.254/latest/meta-data/", "http://localhost:9/", "http://[::ffff:127.0.0.1]/", "http://[fd00:ec2::254]/"]) {
      await expectError(t.api.createEndpoint({ url, eventTypes: ["*"] }), Code.InvalidArgument, { fields: ["url"] });
    }
    assert.equal((await t.api.listEndpoints({})).endpoints.length, 0, "nothing written");
  } finally {
    await strict.close();
  }
});

test("members may not manage webhooks; another company's endpoint is not found", { skip }, async () => {
  const t = await h.tenant();
  const other = await h.tenant();
  await expectError(t.memberApi.listEndpoints({}), Code.PermissionDenied);
  const rcv = await receiver((_q, res) => res.writeHead(200).end());
  const { endpoint } = await t.api.createEndpoint({ url: rcv.url, eventTypes: ["*"] });
  await expectError(other.api.deleteEndpoint({ endpointId: endpoint!.endpointId }), Code.NotFound);
  await expectError(other.api.listDeliveries({ endpointId: endpoint!.endpointId }), Code.NotFound);
  await t.api.updateEndpoint({ endpointId: endpoint!.endpointId, description: "changed", eventTypes: { values: ["deal.*"] } });
  await t.api.deleteEndpoint({ endpointId: endpoint!.endpointId });
  const audit = await h.m.pool.query<{ action: string }>("SELECT action FROM audit_events WHERE company_id = $1 ORDER BY seq", [t.companyId]);
  assert.deepEqual(audit.rows.map((r) => r.action), ["webhook.endpoint_created", "webhook.endpoint_changed", "webhook.endpoint_deleted"]);
  await rcv.down();
});

test("an ordered endpoint gets the tenant's versions in order, a failing one holding back the later ones", { skip }, async () => {
  const t = await h.tenant();
  let failedOnce = false;
  const rcv = await receiver((_q, res) => {
    const v = Number(bodyOf(rcv.got[rcv.got.length - 1]!).data.tenant_version);
    if (v === 2 && !failedOnce) {
      failedOnce = true;
      return void res.writeHead(500).end();
    }
    res.writeHead(200).end();
  });
  await t.api.createEndpoint({ url: rcv.url, eventTypes: ["*"], ordered: true });
  for (let v = 1n; v <= 6n; v++) await h.publish(t.companyId, v);
  await until("all six delivered", () => new Set(rcv.got.map(idOf)).size === 6 && rcv.got.length === 7, 30_000);
  assert.deepEqual(rcv.got.map((r) => Number(bodyOf(r).data.tenant_version)), [1, 2, 2, 3, 4, 5, 6], "in order, one at a time, version 2 retried before 3 went");
  await rcv.down();
});

test("the delivery log is kept 30 days", { skip }, async () => {
  const t = await h.tenant();
  const rcv = await receiver((_q, res) => res.writeHead(200).end());
  const { endpoint } = await t.api.createEndpoint({ url: rcv.url, eventTypes: ["*"] });
  await t.api.sendTest({ endpointId: endpoint!.endpointId });
  await until("delivered", async () => (await t.api.listDeliveries({ endpointId: endpoint!.endpointId })).deliveries[0]?.status === DeliveryStatus.SUCCEEDED);
  const { timestampFromDate } = await import("@bufbuild/protobuf/wkt");
  assert.equal((await h.store.purgeDeliveriesDB({ olderThan: timestampFromDate(new Date(Date.now() - 1000 * 3600)) })).deleted, 0, "younger than the cutoff: kept");
  await h.m.pool.query("UPDATE wh_deliveries SET queued_at = now() - interval '31 days' WHERE endpoint_id = $1", [endpoint!.endpointId]);
  assert.equal((await h.store.purgeDeliveriesDB({ olderThan: timestampFromDate(new Date(Date.now() - 30 * 24 * 3600_000)) })).deleted, 1);
  assert.equal((await t.api.listDeliveries({ endpointId: endpoint!.endpointId })).deliveries.length, 0);
  await rcv.down();
});

test("chat messages go only to endpoints that name chat.message; an endpoint asking for them takes effect at once", { skip }, async () => {
  const { chatEvent } = await import("@crm/contracts/events");
  const { Code: C } = await import("@connectrpc/connect");
  // Its own module (chat events on): the shared one's clock was moved a day on, which a signature's timestamp shows.
  const own = await harness({ WEBHOOKS_CHAT_EVENTS: true });
  const t = await own.tenant();
  const all = await receiver((_q, res) => res.writeHead(200).end());
  const chatty = await receiver((_q, res) => res.writeHead(200).end());
  const send = async (content: string) => {
    const messageId = crypto.randomUUID();
    const e = chatEvent({ chatId: crypto.randomUUID(), companyId: t.companyId, event: { case: "message", value: { messageId, content, seq: 1n } } });
    await own.bus.publish(e.exchange, e.routingKey, e.payload, { contentType: e.contentType, headers: e.headers });
    return messageId;
  };
  try {
    const { endpoint: star } = await t.api.createEndpoint({ url: all.url, eventTypes: ["*"] });
    await send("nobody asked");
    const { endpoint: named, secret } = await t.api.createEndpoint({ url: chatty.url, eventTypes: ["chat.message"] });
    const id = await send("hello");
    await until("the named endpoint got it", () => chatty.got.some((g) => g.headers["webhook-id"] === `evt_${id.replaceAll("-", "")}`));
    const got = chatty.got.find((g) => g.headers["webhook-id"] === `evt_${id.replaceAll("-", "")}`)!;
    const body = new Webhook(secret).verify(got.body, got.headers) as { type: string; data: { message: { content: string } } };
    assert.deepEqual([body.type, body.data.message.content], ["chat.message", "hello"]);
    await own.publish(t.companyId, 1n);
    await until("the record change reached \"*\"", () => all.got.length === 1);
    assert.equal(JSON.parse(all.got[0]!.body).type, "company.created", "\"*\" got the record change and no chat message");
    assert.deepEqual((await t.api.listDeliveries({ endpointId: star!.endpointId })).deliveries.map((d) => d.eventType), ["company.created"]);
    assert.ok((await t.api.listDeliveries({ endpointId: named!.endpointId })).deliveries.every((d) => d.eventType === "chat.message"));
    // The store takes exactly one event per call.
    await expectError(own.store.enqueueEventDB({}), C.InvalidArgument, { fields: ["recordChange"] });
  } finally {
    await all.down();
    await chatty.down();
    await own.close();
  }
});

test("with chat events off (the default), an endpoint naming chat messages is refused, naming the field and the switch", { skip }, async () => {
  const { Code: C, ConnectError: E } = await import("@connectrpc/connect");
  const { BadRequestSchema } = await import("@crm/gen/google/rpc/error_details_pb");
  const t = await h.tenant();
  const err = await t.api.createEndpoint({ url: "http://127.0.0.1:9/hook", eventTypes: ["deal.*", "chat.message"] }).then(
    () => assert.fail("an endpoint naming chat.message was created"),
    (e: unknown) => E.from(e),
  );
  assert.equal(err.code, C.InvalidArgument);
  const v = err.findDetails(BadRequestSchema)[0]?.fieldViolations ?? [];
  assert.deepEqual(v.map((x) => x.field), ["eventTypes[1]"]);
  assert.match(v[0]!.description, /WEBHOOKS_CHAT_EVENTS=true/);
  assert.equal((await t.api.listEndpoints({})).endpoints.length, 0, "nothing was created");
});

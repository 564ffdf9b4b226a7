/**
 * The delivery queue's store RPCs as the workers call them, on a fresh database with no workers
 * running: how many deliveries a claim leases (rows, within the per-endpoint limits), and settling
 * many at once (CompleteDeliveriesDB) across companies, with lost leases and a give-up among them.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { randomUUID } from "node:crypto";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { expectError, installHint, need, postgresUp } from "@crm/testkit";
import { companyCreated, harness, type Harness } from "./harness.js";

const skip = need("PostgreSQL", await postgresUp(), installHint.postgres);

let h: Harness;
before(async () => {
  if (skip) return;
  h = await harness({}, { workers: false });
});
after(async () => {
  await h?.close();
});

/** Queues record change `version` of the tenant (one delivery per endpoint that asks for it). */
async function enqueue(companyId: string, version: bigint, now: Date) {
  return (await h.store.enqueueEventDB({ recordChange: companyCreated(companyId, version).payload, now: timestampFromDate(now) })).queued;
}

const claim = (limit: number, now: Date, perEndpoint = 4) => h.store.claimDeliveriesDB({ limit, perEndpoint, leaseMs: 60_000, now: timestampFromDate(now) }).then((r) => r.deliveries);

/** A claim spans every tenant: each test starts with no pending delivery of an earlier one. */
async function fresh() {
  await h.m.pool.query("UPDATE wh_deliveries SET status = 'failed', lease = NULL, lease_until = NULL WHERE status = 'pending'");
  return new Date(h.clock());
}

test("a claim leases as many deliveries as it asks for, one endpoint's due delivery each", { skip }, async () => {
  const now = await fresh();
  const t = await h.tenant();
  for (let i = 0; i < 10; i++) await t.api.createEndpoint({ url: `http://127.0.0.1:9/hook${i}`, eventTypes: ["company.*"] });
  assert.equal(await enqueue(t.companyId, 1n, now), 10);
  const first = await claim(8, now);
  assert.equal(first.length, 8, "8 rows for a claim of 8, not 8 slots");
  assert.equal(new Set(first.map((d) => d.endpointId)).size, 8);
  assert.equal((await claim(64, now)).length, 2, "the other 2");
  assert.equal((await claim(64, now)).length, 0);
});

test("a claim keeps the per-endpoint limits: 4 in flight for an endpoint, 1 for an ordered one", { skip }, async () => {
  const now = await fresh();
  const t = await h.tenant();
  const { endpoint: plain } = await t.api.createEndpoint({ url: "http://127.0.0.1:9/plain", eventTypes: ["company.*"] });
  const { endpoint: ordered } = await t.api.createEndpoint({ url: "http://127.0.0.1:9/ordered", eventTypes: ["company.*"], ordered: true });
  for (let v = 1n; v <= 6n; v++) await enqueue(t.companyId, v, now);
  const got = await claim(64, now);
  assert.equal(got.filter((d) => d.endpointId === plain!.endpointId).length, 4);
  assert.equal(got.filter((d) => d.endpointId === ordered!.endpointId).length, 1);
  assert.equal((await claim(64, now)).length, 0, "every slot is taken");
});

test("a claim leases an endpoint's due deliveries oldest first, none not yet due, and an expired lease again", { skip }, async () => {
  const now = await fresh();
  const t = await h.tenant();
  const { endpoint } = await t.api.createEndpoint({ url: "http://127.0.0.1:9/queue", eventTypes: ["company.*"] });
  for (let v = 1n; v <= 6n; v++) await enqueue(t.companyId, v, now);
  // Due times: version 1 in a minute (backing off), the others 5, 4, 3, 2, 1 seconds ago.
  await h.m.pool.query("UPDATE wh_deliveries SET next_at = $2::timestamptz + ((version::int - 7) * interval '1 second') WHERE endpoint_id = $1", [endpoint!.endpointId, now]);
  await h.m.pool.query("UPDATE wh_deliveries SET next_at = $2::timestamptz + interval '1 minute' WHERE endpoint_id = $1 AND version = 1", [endpoint!.endpointId, now]);
  const versionOf = async (ids: string[]) => (await h.m.pool.query<{ version: string }>("SELECT version FROM wh_deliveries WHERE id = ANY($1) ORDER BY next_at", [ids])).rows.map((r) => Number(r.version));
  const first = await claim(2, now);
  assert.deepEqual(await versionOf(first.map((d) => d.deliveryId)), [2, 3], "the two due longest");
  assert.deepEqual(await versionOf((await claim(64, now)).map((d) => d.deliveryId)), [4, 5], "up to 4 in flight; version 1 is not due");
  assert.equal((await claim(64, now)).length, 0);
  // The leases run out (a worker died): leased again, with the one left, within the limit of 4.
  const later = new Date(now.getTime() + 61_000);
  const again = await claim(64, later);
  assert.equal(again.length, 4);
  assert.ok(first.every((d) => again.some((a) => a.deliveryId === d.deliveryId)), "an expired lease is taken again");
});

test("EnqueueEventsDB queues a batch of two companies' events, one transaction each: counts, a bad event named, each tenant's types", { skip }, async () => {
  const now = await fresh();
  const a = await h.tenant();
  const b = await h.tenant();
  const quiet = await h.tenant();
  await a.api.createEndpoint({ url: "http://127.0.0.1:9/a1", eventTypes: ["company.*"] });
  await a.api.createEndpoint({ url: "http://127.0.0.1:9/a2", eventTypes: ["*"] });
  await b.api.createEndpoint({ url: "http://127.0.0.1:9/b", eventTypes: ["deal.*"] });
  const ev = (companyId: string, v: bigint) => ({ recordChange: companyCreated(companyId, v).payload });
  const batch = [ev(a.companyId, 1n), ev(b.companyId, 1n), { recordChange: new Uint8Array([0xff]) }, ev(a.companyId, 2n), ev(a.companyId, 1n), ev(quiet.companyId, 1n)];
  const res = await h.store.enqueueEventsDB({ events: batch, now: timestampFromDate(now) });
  assert.deepEqual(res.results.map((r) => r.queued), [2, 0, 0, 2, 0, 0], "a: 2 endpoints; b asks for deals only; a:1 twice is queued once");
  assert.match(res.results[2]!.error, /^events\[2\]: .*recordChange/);
  assert.deepEqual(res.results.filter((r) => r.error).length, 1);
  const types = new Map(res.tenants.map((t) => [t.tenantId, [...t.eventTypes].sort()]));
  assert.deepEqual(types.get(a.companyId), ["*", "company.*"]);
  assert.deepEqual(types.get(b.companyId), ["deal.*"]);
  assert.deepEqual(types.get(quiet.companyId), [], "a company with no endpoint: no types");
  const { rows } = await h.m.pool.query<{ n: number; ids: number }>("SELECT count(*)::int AS n, count(DISTINCT event_id)::int AS ids FROM wh_deliveries WHERE company_id = $1", [a.companyId]);
  assert.deepEqual(rows[0], { n: 4, ids: 2 });
  // Again (a redelivered batch): nothing more.
  const again = await h.store.enqueueEventsDB({ events: [ev(a.companyId, 1n), ev(a.companyId, 2n)], now: timestampFromDate(now) });
  assert.deepEqual(again.results.map((r) => r.queued), [0, 0]);
  await expectError(h.store.enqueueEventsDB({ events: [] }), Code.InvalidArgument, { fields: ["events"] });
});

const attempt = (now: Date, httpStatus: number, responsePrefix = "", error = "") => ({ attemptTime: timestampFromDate(now), httpStatus, latencyMs: 3, error, responsePrefix });
/** An answer and an error as a receiver may make them: quotes, backslashes, a newline, non-ASCII (the settle writes them as SQL literals). */
const odd = "boom: it's \\ \"x\" \\' ü\n—'); DROP TABLE wh_attempts; --";

async function rowsOf(ids: string[]) {
  const { rows } = await h.m.pool.query<{ id: string; status: string; attempts: number; next_at: Date; lease: string | null; logged: number }>(
    "SELECT d.id, d.status, d.attempts, d.next_at, d.lease, (SELECT count(*)::int FROM wh_attempts a WHERE a.delivery_id = d.id) AS logged FROM wh_deliveries d WHERE d.id = ANY($1)",
    [ids],
  );
  return new Map(rows.map((r) => [r.id, r]));
}

test("a batch settles deliveries of two companies at once, each with its attempt; a lost lease is not settled", { skip }, async () => {
  const now = await fresh();
  const a = await h.tenant();
  const b = await h.tenant();
  await a.api.createEndpoint({ url: "http://127.0.0.1:9/a", eventTypes: ["company.*"] });
  await b.api.createEndpoint({ url: "http://127.0.0.1:9/b", eventTypes: ["company.*"] });
  for (let v = 1n; v <= 3n; v++) await enqueue(a.companyId, v, now);
  await enqueue(b.companyId, 1n, now);
  const got = await claim(64, now);
  const ofA = got.filter((d) => d.companyId === a.companyId);
  const [d1, d2, d3] = ofA;
  const d4 = got.find((d) => d.companyId === b.companyId)!;
  assert.equal(ofA.length, 3);
  const retryAt = new Date(now.getTime() + 60_000);
  const settle = (ds: { d: (typeof got)[number]; lease?: string; ok: boolean; next?: Date; status: number }[]) =>
    h.store.completeDeliveriesDB({
      deliveries: ds.map((x) => ({ companyId: x.d.companyId, deliveryId: x.d.deliveryId, lease: x.lease ?? x.d.lease, succeeded: x.ok, attempt: attempt(now, x.status, x.ok ? "ok" : odd, x.ok ? "" : odd), nextAttemptTime: x.next ? timestampFromDate(x.next) : undefined, now: timestampFromDate(now) })),
    });
  const res = await settle([
    { d: d1!, ok: true, status: 200 },
    { d: d2!, ok: false, next: retryAt, status: 500 },
    { d: d3!, lease: randomUUID(), ok: true, status: 200 },
    { d: d4, ok: true, status: 204 },
  ]);
  assert.deepEqual(res.settled, [true, true, false, true]);
  const rows = await rowsOf([d1!, d2!, d3!, d4].map((d) => d.deliveryId));
  const row = (d: { deliveryId: string }) => rows.get(d.deliveryId)!;
  assert.deepEqual([row(d1!).status, row(d1!).attempts, row(d1!).logged, row(d1!).lease], ["succeeded", 1, 1, null]);
  assert.deepEqual([row(d2!).status, row(d2!).attempts, row(d2!).logged, row(d2!).lease, row(d2!).next_at.getTime()], ["pending", 1, 1, null, retryAt.getTime()], "retried later, its attempt logged");
  assert.deepEqual([row(d3!).status, row(d3!).attempts, row(d3!).logged, row(d3!).lease], ["pending", 0, 0, d3!.lease], "a lease that is not its own settles nothing");
  assert.deepEqual([row(d4).status, row(d4).attempts, row(d4).logged], ["succeeded", 1, 1]);
  const { rows: log } = await h.m.pool.query<{ http_status: number; latency_ms: number; error: string; response_prefix: string; attempted_at: Date }>(
    "SELECT http_status, latency_ms, error, response_prefix, attempted_at FROM wh_attempts WHERE delivery_id = $1",
    [d2!.deliveryId],
  );
  assert.deepEqual(log, [{ http_status: 500, latency_ms: 3, error: odd, response_prefix: odd, attempted_at: now }], "the attempt logged as sent, text byte for byte");
  // The same settle again: the lease is gone, nothing more is logged.
  assert.deepEqual((await settle([{ d: d1!, ok: true, status: 200 }])).settled, [false]);
  assert.equal((await rowsOf([d1!.deliveryId])).get(d1!.deliveryId)!.logged, 1);
});

test("giving up in a batch disables the endpoint once, fails its pending deliveries and e-mails the owner", { skip }, async () => {
  const now = await fresh();
  const t = await h.tenant();
  const { endpoint } = await t.api.createEndpoint({ url: "http://127.0.0.1:9/dead", eventTypes: ["company.*"] });
  for (let v = 1n; v <= 5n; v++) await enqueue(t.companyId, v, now);
  const got = await claim(64, now);
  assert.equal(got.length, 4);
  const res = await h.store.completeDeliveriesDB({
    deliveries: got.slice(0, 2).map((d) => ({ companyId: d.companyId, deliveryId: d.deliveryId, lease: d.lease, succeeded: false, attempt: attempt(now, 503), now: timestampFromDate(now) })),
  });
  assert.deepEqual(res.settled, [true, true]);
  const { rows: ep } = await h.m.pool.query<{ active: boolean; disabled_reason: string }>("SELECT active, disabled_reason FROM wh_endpoints WHERE id = $1", [endpoint!.endpointId]);
  assert.equal(ep[0]!.active, false);
  assert.match(ep[0]!.disabled_reason, /HTTP 503/);
  const { rows: st } = await h.m.pool.query<{ status: string; n: number }>("SELECT status, count(*)::int AS n FROM wh_deliveries WHERE endpoint_id = $1 GROUP BY status", [endpoint!.endpointId]);
  assert.deepEqual(st, [{ status: "failed", n: 5 }]);
  const { rows: audit } = await h.m.pool.query("SELECT 1 FROM audit_events WHERE company_id = $1 AND action = 'webhook.endpoint_disabled'", [t.companyId]);
  assert.equal(audit.length, 1, "disabled once");
  const { rows: mails } = await h.m.pool.query<{ subject: string }>("SELECT subject FROM emails WHERE company_id = $1", [t.companyId]);
  assert.deepEqual(mails, [{ subject: "A webhook endpoint was disabled" }], "the owner told once");
});

test("a batch that names a delivery twice, or none, is refused and changes nothing", { skip }, async () => {
  const now = await fresh();
  const t = await h.tenant();
  await t.api.createEndpoint({ url: "http://127.0.0.1:9/twice", eventTypes: ["company.*"] });
  await enqueue(t.companyId, 1n, now);
  const [d] = await claim(64, now);
  const one = { companyId: d!.companyId, deliveryId: d!.deliveryId, lease: d!.lease, succeeded: true, attempt: attempt(now, 200), now: timestampFromDate(now) };
  await expectError(h.store.completeDeliveriesDB({ deliveries: [one, one] }), Code.InvalidArgument, { fields: ["deliveries[1].deliveryId"] });
  await expectError(h.store.completeDeliveriesDB({ deliveries: [] }), Code.InvalidArgument, { fields: ["deliveries"] });
  await expectError(h.store.completeDeliveriesDB({ deliveries: [{ ...one, lease: "nope" }] }), Code.InvalidArgument, { fields: ["deliveries[0].lease"] });
  const r = (await rowsOf([d!.deliveryId])).get(d!.deliveryId)!;
  assert.deepEqual([r.status, r.logged], ["pending", 0]);
});

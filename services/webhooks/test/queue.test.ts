/**
 * The delivery queue's store RPCs as the workers call them, on a fresh database with no workers
 * running: how many deliveries a claim leases (rows, within the per-endpoint limits).
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { randomUUID } from "node:crypto";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { recordChangeEvent } from "@crm/contracts/events";
import { ObjectType } from "@crm/gen/crm/records/v1/common_pb";
import { ChangeAction } from "@crm/gen/crm/records/v1/stream_pb";
import { installHint, need, postgresUp } from "@crm/testkit";
import { harness, type Harness } from "./harness.js";

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
  const e = recordChangeEvent({ version, tenantId: companyId, objectType: ObjectType.COMPANY, recordId: randomUUID(), action: ChangeAction.CREATED, record: { record: { case: "company", value: { name: `C ${version}` } } } });
  return (await h.store.enqueueEventDB({ recordChange: e.payload, now: timestampFromDate(now) })).queued;
}

const claim = (limit: number, now: Date, perEndpoint = 4) => h.store.claimDeliveriesDB({ limit, perEndpoint, leaseMs: 60_000, now: timestampFromDate(now) }).then((r) => r.deliveries);

// Each test works in a window of time of its own: a claim spans every tenant, and what one test
// leased stays leased for a minute after its `now`, so it is not due in a later test's window.
let window = 0;
const nextWindow = () => new Date(Date.now() + ++window * 3_600_000);

test("a claim leases as many deliveries as it asks for, one endpoint's due delivery each", { skip }, async () => {
  const now = nextWindow();
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
  const now = nextWindow();
  const t = await h.tenant();
  const { endpoint: plain } = await t.api.createEndpoint({ url: "http://127.0.0.1:9/plain", eventTypes: ["company.*"] });
  const { endpoint: ordered } = await t.api.createEndpoint({ url: "http://127.0.0.1:9/ordered", eventTypes: ["company.*"], ordered: true });
  for (let v = 1n; v <= 6n; v++) await enqueue(t.companyId, v, now);
  const got = await claim(64, now);
  assert.equal(got.filter((d) => d.endpointId === plain!.endpointId).length, 4);
  assert.equal(got.filter((d) => d.endpointId === ordered!.endpointId).length, 1);
  assert.equal((await claim(64, now)).length, 0, "every slot is taken");
});

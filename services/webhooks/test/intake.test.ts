/**
 * The intake (src/events.ts) in front of the store: events queued in batches, and a company's
 * events of a type none of its endpoints names skipped without a dbservice call, until
 * `limits.skipRecheckMs` after the call that read its endpoints; an endpoint created through this
 * process counts at once, one created through another within that bound.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { randomUUID } from "node:crypto";
import type { Client } from "@connectrpc/connect";
import { memoryBus, type EventBus } from "@crm/kit";
import { installHint, need, postgresUp, until } from "@crm/testkit";
import { decodeRecordChange, recordChangeEvent } from "@crm/contracts/events";
import { ObjectType } from "@crm/gen/crm/records/v1/common_pb";
import { ChangeAction } from "@crm/gen/crm/records/v1/stream_pb";
import type { DbWebhooksService } from "@crm/gen/crm/db/v1/db_webhooks_pb";
import { consumeEvents, type EventIntake } from "../src/events.js";
import { limits } from "../src/rules.js";
import { harness, type Harness } from "./harness.js";

const skip = need("PostgreSQL", await postgresUp(), installHint.postgres);

let h: Harness;
let bus: EventBus;
let intake: EventIntake;
let offset = 0;
/** Each EnqueueEventsDB call's events, as "<tenant>:<version>". */
const calls: string[][] = [];
/** Fail the next EnqueueEventsDB call (after recording it), as a dbservice that is down. */
let failNext = false;
before(async () => {
  if (skip) return;
  h = await harness({}, { workers: false });
  // The intake under test on a bus of its own: the harness's module (another "process") never sees these events.
  bus = memoryBus(h.mem.log);
  const db = new Proxy(h.store, {
    get(target, p, recv) {
      if (p !== "enqueueEventsDB") return Reflect.get(target, p, recv) as unknown;
      // Recorded once answered: the intake has then learnt what the answer says.
      return async (req: Parameters<typeof target.enqueueEventsDB>[0]) => {
        const events = (req.events ?? []).map((e) => {
          const c = decodeRecordChange(e.recordChange as Uint8Array);
          return `${c.tenantId}:${c.version}`;
        });
        try {
          if (failNext) {
            failNext = false;
            throw new Error("dbservice is down");
          }
          return await target.enqueueEventsDB(req);
        } finally {
          calls.push(events);
        }
      };
    },
  }) as Client<typeof DbWebhooksService>;
  intake = await consumeEvents({ bus, db, log: h.mem.log, queues: { records: `intake.test.${randomUUID()}`, users: `intake.test.users.${randomUUID()}` }, clock: () => Date.now() + offset, queued: () => {} });
});
after(async () => {
  await intake?.close();
  await bus?.close();
  await h?.close();
});

const sent = () => calls.flat();

async function publish(tenantId: string, version: bigint, objectType = ObjectType.COMPANY) {
  const e = recordChangeEvent({ version, tenantId, objectType, recordId: randomUUID(), action: ChangeAction.CREATED, record: { record: objectType === ObjectType.DEAL ? { case: "deal", value: { name: "D" } } : { case: "company", value: { name: "C" } } } });
  await bus.publish(e.exchange, e.routingKey, e.payload, { messageId: e.messageId });
  return `${tenantId}:${version}`;
}

const deliveriesOf = async (companyId: string) => (await h.m.pool.query<{ version: string }>("SELECT version FROM wh_deliveries WHERE company_id = $1 ORDER BY version", [companyId])).rows.map((r) => Number(r.version));

test("a company's events no endpoint asks for cost no dbservice call; a new endpoint receives within the bound", { skip }, async () => {
  const a = await h.tenant();
  const b = await h.tenant();
  await b.api.createEndpoint({ url: "http://127.0.0.1:9/b", eventTypes: ["*"] });
  let bv = 0n;
  // Handlers start in delivery order, and a skip is decided before the first await: once a later
  // event of B reached the store, every earlier one was either sent or skipped.
  const settled = async () => {
    const s = await publish(b.companyId, ++bv);
    await until(`${s} sent`, () => sent().includes(s));
  };

  const a1 = await publish(a.companyId, 1n);
  await settled();
  assert.ok(sent().includes(a1), "the first event of a company the intake knows nothing of goes to the store");
  const skipped = [await publish(a.companyId, 2n), await publish(a.companyId, 3n)];
  await settled();
  assert.deepEqual(sent().filter((s) => skipped.includes(s)), [], "no endpoint: skipped without a call");

  // An endpoint for deals, created through another process (the harness's module): within the bound, not yet seen.
  await a.api.createEndpoint({ url: "http://127.0.0.1:9/a-deals", eventTypes: ["deal.*"] });
  const a4 = await publish(a.companyId, 4n, ObjectType.DEAL);
  await settled();
  assert.ok(!sent().includes(a4), "what was read stands until skipRecheckMs after it");
  offset += limits.skipRecheckMs;
  const a5 = await publish(a.companyId, 5n, ObjectType.DEAL);
  await settled();
  assert.ok(sent().includes(a5), "after the bound, the new endpoint's type goes to the store");
  assert.deepEqual(await deliveriesOf(a.companyId), [5]);
  // Its endpoints name deals only: a company change is skipped, a deal change is not.
  const a6 = await publish(a.companyId, 6n);
  const a7 = await publish(a.companyId, 7n, ObjectType.DEAL);
  await settled();
  assert.ok(!sent().includes(a6) && sent().includes(a7));

  // An endpoint created through this process (its module tells the intake): at once.
  await a.api.createEndpoint({ url: "http://127.0.0.1:9/a-all", eventTypes: ["*"] });
  intake.endpointsChanged(a.companyId);
  const a8 = await publish(a.companyId, 8n);
  await settled();
  assert.ok(sent().includes(a8));
  assert.deepEqual(await deliveriesOf(a.companyId), [5, 7, 8], "the company change to \"*\" only");
});

test("events are queued in batches: one call for what arrived together, each acked after its batch", { skip }, async () => {
  const c = await h.tenant();
  await c.api.createEndpoint({ url: "http://127.0.0.1:9/c", eventTypes: ["company.*"] });
  const before = calls.length;
  await Promise.all(Array.from({ length: 50 }, (_, i) => publish(c.companyId, BigInt(i + 1))));
  await until("every event queued", async () => (await deliveriesOf(c.companyId)).length === 50);
  assert.ok(calls.length - before < 10, `50 events in ${calls.length - before} calls`);
});

test("a batch that failed is not acked: its events come again and are queued once", { skip }, async () => {
  const c = await h.tenant();
  await c.api.createEndpoint({ url: "http://127.0.0.1:9/c", eventTypes: ["company.*"] });
  failNext = true;
  const e1 = await publish(c.companyId, 1n);
  await until("the failed call", () => !failNext);
  assert.deepEqual(await deliveriesOf(c.companyId), [], "nothing committed");
  await until("queued on the retry", async () => (await deliveriesOf(c.companyId)).length === 1);
  assert.ok(sent().filter((s) => s === e1).length >= 2, "sent again after the failure");
});

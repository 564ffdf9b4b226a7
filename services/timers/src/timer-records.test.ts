/**
 * Time booked on records (issue 16, "links into what exists"): a timer entry may reference a deal
 * or a customer company and be billable, on start, switch, stop, edit and manual entry; ListTimers
 * lists a record's entries; GetReport totals billable time and time per record. The handlers in
 * memory over ../test/fake-store.ts (whose records map plays the foreign keys); the same on real
 * PostgreSQL: ../store/timer-records.test.ts.
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { test } from "node:test";
import { durationMs, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, createClient } from "@connectrpc/connect";
import type { Principal } from "@crm/kit";
import { DbTimerService } from "@crm/gen/crm/db/v1/db_timer_pb";
import { ObjectType } from "@crm/gen/crm/records/v1/common_pb";
import { TimerService } from "@crm/gen/crm/timer/v1/timer_pb";
import { expectError, inMemory } from "@crm/testkit";
import { fakeTimerStore } from "../test/fake-store.js";
import { HOUR } from "./rules.js";
import { timerService } from "./timer-service.js";

const NOW = Date.parse("2026-03-04T12:00:00.000Z");
const ts = timestampFromMs;
const noCache = { lookup: async () => ({ hit: false as const, fill: () => {} }), invalidate: async () => {}, invalidateAll: async () => {} };

function setup() {
  const clock = { now: NOW };
  const world = inMemory();
  const store = fakeTimerStore(() => clock.now);
  const db = createClient(DbTimerService, world.serve((r) => r.service(DbTimerService, store.impl), { from: "timers" }));
  const api = world.serve((r) => r.service(TimerService, timerService({ db, cache: noCache, maxRunningMs: 12 * HOUR, skewMs: 5_000, now: () => clock.now })));
  const company = randomUUID();
  const admin = world.user({ companyId: company, role: "admin" });
  const member = world.user({ companyId: company, role: "member" });
  const colleague = world.user({ companyId: company, role: "member" });
  const stranger = world.user({ role: "owner" });
  store.addUsers(admin, member, colleague, stranger);
  const deal = randomUUID();
  const customer = randomUUID();
  const strangersDeal = randomUUID();
  store.records.set(deal, { companyId: company, type: "deal" });
  store.records.set(customer, { companyId: company, type: "company" });
  store.records.set(strangersDeal, { companyId: stranger.companyId, type: "deal" });
  const timers = (p: Principal) => world.client(TimerService, api, { user: p });
  return { clock, store, admin, member, colleague, stranger, deal, customer, strangersDeal, timers };
}

const dealRef = (id: string) => ({ objectType: ObjectType.DEAL, id });
const companyRef = (id: string) => ({ objectType: ObjectType.COMPANY, id });
const snapshot = (s: ReturnType<typeof setup>) => JSON.stringify([...s.store.timers.values()]);

test("start, switch and stop carry the record and the billable flag; {} removes the record", async () => {
  const s = setup();
  const me = s.timers(s.member);
  const first = await me.startTimer({ description: "demo", record: dealRef(s.deal), billable: true });
  assert.deepEqual([first.timer?.record?.objectType, first.timer?.record?.id, first.timer?.billable], [ObjectType.DEAL, s.deal, true]);
  s.clock.now += HOUR;
  // The switch: the running entry keeps its deal, the new one is on the customer company.
  const second = await me.startTimer({ description: "call", record: companyRef(s.customer) });
  assert.equal(second.stopped?.record?.id, s.deal);
  assert.equal(second.stopped?.billable, true);
  assert.deepEqual([second.timer?.record?.objectType, second.timer?.record?.id, second.timer?.billable], [ObjectType.COMPANY, s.customer, false]);
  s.clock.now += HOUR;
  const ended = await me.endTimer({ record: {}, billable: true });
  assert.equal(ended.timer?.record, undefined);
  assert.equal(ended.timer?.billable, true);
  // EndTimer without them leaves both as they were.
  await me.startTimer({ record: dealRef(s.deal), billable: true });
  s.clock.now += HOUR;
  const kept = await me.endTimer({});
  assert.deepEqual([kept.timer?.record?.id, kept.timer?.billable], [s.deal, true]);
});

test("ChangeTimer sets or removes the record and the flag alone; AddTimer books a manual entry", async () => {
  const s = setup();
  const me = s.timers(s.member);
  const added = await me.addTimer({ startTime: ts(NOW - 3 * HOUR), endTime: ts(NOW - 2 * HOUR), record: companyRef(s.customer), billable: true });
  assert.deepEqual([added.timer?.record?.id, added.timer?.billable], [s.customer, true]);
  const moved = await me.changeTimer({ timerId: added.timer!.timerId, record: dealRef(s.deal) });
  assert.deepEqual([moved.timer?.record?.objectType, moved.timer?.record?.id, moved.timer?.billable], [ObjectType.DEAL, s.deal, true]);
  const unbilled = await me.changeTimer({ timerId: added.timer!.timerId, billable: false });
  assert.deepEqual([unbilled.timer?.record?.id, unbilled.timer?.billable], [s.deal, false]);
  const cleared = await me.changeTimer({ timerId: added.timer!.timerId, record: {} });
  assert.equal(cleared.timer?.record, undefined);
});

test("a person, a bad id or another company's deal are refused and nothing is written", async () => {
  const s = setup();
  const me = s.timers(s.member);
  const before = snapshot(s);
  await expectError(me.startTimer({ record: { objectType: ObjectType.PERSON, id: randomUUID() } }), Code.InvalidArgument, { fields: ["record.objectType"] });
  await expectError(me.startTimer({ record: { objectType: ObjectType.DEAL, id: "42" } }), Code.InvalidArgument, { fields: ["record.id"] });
  await expectError(me.startTimer({ record: { objectType: ObjectType.UNSPECIFIED, id: s.deal } }), Code.InvalidArgument, { fields: ["record.objectType"] });
  await expectError(me.startTimer({ record: dealRef(s.strangersDeal) }), Code.NotFound, { message: /no deal with this id in your company/ });
  await expectError(me.startTimer({ record: companyRef(s.deal) }), Code.NotFound);
  await expectError(
    me.addTimer({ startTime: ts(NOW - HOUR), endTime: ts(NOW), record: dealRef(randomUUID()) }),
    Code.NotFound,
  );
  assert.equal(snapshot(s), before);
  const t = await me.addTimer({ startTime: ts(NOW - HOUR), endTime: ts(NOW) });
  const written = snapshot(s);
  await expectError(me.changeTimer({ timerId: t.timer!.timerId, record: dealRef(s.strangersDeal) }), Code.NotFound);
  await expectError(me.listTimers({ record: dealRef(s.strangersDeal), allUsers: true }), Code.NotFound);
  await expectError(me.getReport({ from: ts(NOW - HOUR), to: ts(NOW), record: { objectType: ObjectType.NOTE, id: s.deal } }), Code.InvalidArgument, { fields: ["record.objectType"] });
  assert.equal(snapshot(s), written);
});

test("ListTimers lists a record's entries of every user for anyone; every user's entries without a record only for admins", async () => {
  const s = setup();
  await s.timers(s.member).addTimer({ startTime: ts(NOW - 4 * HOUR), endTime: ts(NOW - 3 * HOUR), record: dealRef(s.deal), billable: true });
  await s.timers(s.member).addTimer({ startTime: ts(NOW - 3 * HOUR), endTime: ts(NOW - 2 * HOUR), record: companyRef(s.customer) });
  await s.timers(s.colleague).addTimer({ startTime: ts(NOW - 2 * HOUR), endTime: ts(NOW - HOUR), record: dealRef(s.deal) });
  await s.timers(s.colleague).addTimer({ startTime: ts(NOW - HOUR), endTime: ts(NOW) });

  const onDeal = await s.timers(s.member).listTimers({ record: dealRef(s.deal), allUsers: true });
  assert.deepEqual(onDeal.timers.map((t) => t.userId), [s.colleague.userId, s.member.userId]);
  const mineOnDeal = await s.timers(s.member).listTimers({ record: dealRef(s.deal) });
  assert.deepEqual(mineOnDeal.timers.map((t) => t.userId), [s.member.userId]);
  const billable = await s.timers(s.member).listTimers({ record: dealRef(s.deal), allUsers: true, billable: true });
  assert.equal(billable.timers.length, 1);
  assert.equal(billable.timers[0]?.billable, true);

  await expectError(s.timers(s.member).listTimers({ allUsers: true }), Code.PermissionDenied);
  await expectError(s.timers(s.admin).listTimers({ allUsers: true, userId: s.member.userId }), Code.InvalidArgument, { fields: ["userId"] });
  const everyone = await s.timers(s.admin).listTimers({ allUsers: true });
  assert.equal(everyone.timers.length, 4);
  // Another company sees none of it.
  await expectError(s.timers(s.stranger).listTimers({ record: dealRef(s.deal), allUsers: true }), Code.NotFound);
});

test("GetReport totals billable time per period and in all, and time per record", async () => {
  const s = setup();
  const me = s.timers(s.member);
  await me.addTimer({ startTime: ts(NOW - 5 * HOUR), endTime: ts(NOW - 4 * HOUR), record: dealRef(s.deal), billable: true });
  await me.addTimer({ startTime: ts(NOW - 4 * HOUR), endTime: ts(NOW - 2 * HOUR), record: dealRef(s.deal) });
  await me.addTimer({ startTime: ts(NOW - 2 * HOUR), endTime: ts(NOW - HOUR), record: companyRef(s.customer), billable: true });
  await me.addTimer({ startTime: ts(NOW - HOUR), endTime: ts(NOW) });
  const day = Date.parse("2026-03-04T00:00:00.000Z");
  const r = await me.getReport({ from: ts(day), to: ts(day + 24 * HOUR) });
  assert.equal(durationMs(r.total!), 5 * HOUR);
  assert.equal(durationMs(r.billableTotal!), 2 * HOUR);
  assert.equal(durationMs(r.periods[0]!.billable!), 2 * HOUR);
  assert.deepEqual(
    r.records.map((x) => [x.record?.objectType, x.record?.id, durationMs(x.total!), durationMs(x.billable!)]),
    [[ObjectType.DEAL, s.deal, 3 * HOUR, HOUR], [ObjectType.COMPANY, s.customer, HOUR, HOUR]],
  );
  const onDeal = await me.getReport({ from: ts(day), to: ts(day + 24 * HOUR), record: dealRef(s.deal) });
  assert.equal(durationMs(onDeal.total!), 3 * HOUR);
  assert.equal(durationMs(onDeal.billableTotal!), HOUR);
});

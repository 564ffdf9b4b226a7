/**
 * TimerService's handlers in memory: the service built by its factory, served through the kit's
 * interceptors, over an in-memory DbTimerService (../test/fake-store.ts) and an in-memory running
 * cache. The same rules on real servers: ../test/timers-*.test.ts.
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { test } from "node:test";
import { durationMs, timestampFromMs, timestampMs } from "@bufbuild/protobuf/wkt";
import { Code, createClient } from "@connectrpc/connect";
import { AppError, type Principal } from "@crm/kit";
import { DbTimerService } from "@crm/gen/crm/db/v1/db_timer_pb";
import { GroupBy, TimerService, type Timer } from "@crm/gen/crm/timer/v1/timer_pb";
import { expectError, inMemory, tap } from "@crm/testkit";
import { fakeTimerStore } from "../test/fake-store.js";
import type { RunningCache } from "./running-cache.js";
import { HOUR } from "./rules.js";
import { timerService } from "./timer-service.js";

const MIN = 60_000;
/** Wednesday 2026-03-04 12:00 UTC (13:00 in Berlin). */
const NOW = Date.parse("2026-03-04T12:00:00.000Z");
const SKEW_MS = 5_000;
const ts = timestampFromMs;

/** A running cache in memory that remembers what it was told. */
function memoryCache() {
  const entries = new Map<string, Timer | undefined>();
  const invalidated: string[] = [];
  let all = 0;
  const cache: RunningCache = {
    async lookup(userId) {
      if (entries.has(userId)) return { hit: true, timer: entries.get(userId) };
      return { hit: false, fill: (t) => void entries.set(userId, t) };
    },
    async invalidate(userId) {
      entries.delete(userId);
      invalidated.push(userId);
    },
    async invalidateAll() {
      entries.clear();
      all++;
    },
  };
  return { cache, entries, invalidated, invalidatedAll: () => all };
}

function setup() {
  const clock = { now: NOW };
  const world = inMemory();
  const store = fakeTimerStore(() => clock.now);
  const storeCalls = tap();
  const db = createClient(DbTimerService, world.serve((r) => r.service(DbTimerService, store.impl), { from: "timers", tap: storeCalls }));
  const cache = memoryCache();
  const impl = timerService({ db, cache: cache.cache, maxRunningMs: 12 * HOUR, skewMs: SKEW_MS, now: () => clock.now });
  const api = world.serve((r) => r.service(TimerService, impl));
  const company = randomUUID();
  const owner = world.user({ companyId: company, role: "owner" });
  const admin = world.user({ companyId: company, role: "admin" });
  const member = world.user({ companyId: company, role: "member" });
  const colleague = world.user({ companyId: company, role: "member" });
  const stranger = world.user({ role: "owner" }); // another company's owner
  store.addUsers(owner, admin, member, colleague, stranger);
  const timers = (p: Principal | undefined) => world.client(TimerService, api, p ? { user: p } : {});
  return { clock, world, store, storeCalls, cache, owner, admin, member, colleague, stranger, timers };
}

const ms = (t: Timer | undefined) => ({ start: t?.startTime && timestampMs(t.startTime), end: t?.endTime && timestampMs(t.endTime), duration: t?.duration && durationMs(t.duration) });

/** What the store holds, to prove a refused call wrote nothing. */
const snapshot = (s: ReturnType<typeof setup>) => JSON.stringify([...s.store.timers.values()]);

test("StartTimer starts a running timer; the next StartTimer stops it at the same instant and returns it as stopped", async () => {
  const s = setup();
  const me = s.timers(s.member);
  const first = await me.startTimer({ description: "spec" });
  assert.deepEqual(ms(first.timer), { start: NOW, end: undefined, duration: 0 });
  assert.equal(first.timer?.userId, s.member.userId);
  assert.equal(first.timer?.description, "spec");
  assert.equal(first.stopped, undefined);

  s.clock.now = NOW + 90_000;
  const second = await me.startTimer({ description: "" });
  assert.deepEqual(ms(second.stopped), { start: NOW, end: NOW + 90_000, duration: 90_000 }, "durations are computed when the answer is made");
  assert.equal(second.stopped?.timerId, first.timer?.timerId);
  assert.deepEqual(ms(second.timer), { start: NOW + 90_000, end: undefined, duration: 0 });
  assert.deepEqual(s.store.of(s.member.userId).map((t) => [t.start, t.end]), [[NOW, NOW + 90_000], [NOW + 90_000, null]], "one running timer, touching the stopped one");
  assert.deepEqual(s.cache.invalidated, [s.member.userId, s.member.userId], "every write invalidates the user's cached timer");
});

test("EndTimer stops the running timer, replacing the description when given; with none running: failed_precondition", async () => {
  const s = setup();
  const me = s.timers(s.member);
  await me.startTimer({ description: "first" });
  s.clock.now = NOW + 25 * MIN;
  const ended = await me.endTimer({ description: "reviewed the spec" });
  assert.deepEqual(ms(ended.timer), { start: NOW, end: NOW + 25 * MIN, duration: 25 * MIN });
  assert.equal(ended.timer?.description, "reviewed the spec");

  await me.startTimer({ description: "keep" });
  s.clock.now = NOW + 30 * MIN;
  assert.equal((await me.endTimer({})).timer?.description, "keep", "no description: unchanged");

  await expectError(me.endTimer({}), Code.FailedPrecondition, { reason: "failed_precondition", message: /^no timer is running: start one with StartTimer/ });
  // Stopped by the forgotten-timer job: the answer says so, and how to correct it.
  s.store.put({ companyId: s.member.companyId, userId: s.member.userId, start: NOW + HOUR, end: NOW + 13 * HOUR, autoStopped: true });
  await expectError(me.endTimer({}), Code.FailedPrecondition, { message: /was stopped automatically at .*correct its end with ChangeTimer/ });
  assert.equal(s.cache.invalidated.length, 6, "failed writes invalidate too");
});

test("GetWorkingTimer reads the store once, then the cache; an owner or admin may read a colleague's, a member may not", async () => {
  const s = setup();
  await s.timers(s.colleague).startTimer({ description: "calls" });
  const mine = s.timers(s.member);
  assert.equal((await mine.getWorkingTimer({})).timer, undefined);
  assert.equal((await mine.getWorkingTimer({})).timer, undefined);
  assert.deepEqual(s.storeCalls.calls.filter((c) => c === "GetWorkingTimerDB"), ["GetWorkingTimerDB"], "the second read came from the cache");

  s.clock.now = NOW + 10 * MIN;
  for (const boss of [s.owner, s.admin]) {
    const theirs = await s.timers(boss).getWorkingTimer({ userId: s.colleague.userId });
    assert.equal(theirs.timer?.description, "calls");
    assert.equal(durationMs(theirs.timer!.duration!), 10 * MIN, "the running timer's duration is the time elapsed");
  }
  await expectError(mine.getWorkingTimer({ userId: s.colleague.userId }), Code.PermissionDenied, { reason: "permission_denied" });
  // The role comes from the store, not the token: an admin demoted since is a member.
  s.store.users.get(s.admin.userId)!.role = "member";
  await expectError(s.timers(s.admin).getWorkingTimer({ userId: s.colleague.userId }), Code.PermissionDenied);
  await expectError(s.timers(s.owner).getWorkingTimer({ userId: s.stranger.userId }), Code.NotFound, { reason: "not_found" });
  await expectError(s.timers(s.owner).getWorkingTimer({ userId: randomUUID() }), Code.NotFound);

  const before = s.storeCalls.calls.length;
  await expectError(mine.getWorkingTimer({ userId: "me" }), Code.InvalidArgument, { reason: "invalid_argument", fields: ["userId"] });
  assert.equal(s.storeCalls.calls.length, before, "refused before the store");
});

test("every call needs a live access token", async () => {
  const s = setup();
  await expectError(s.timers(undefined).startTimer({}), Code.Unauthenticated, { reason: "unauthenticated" });
  s.world.endSession(s.member.sessionId);
  await expectError(s.timers(s.member).getWorkingTimer({}), Code.Unauthenticated, { reason: "session_ended" });
  assert.deepEqual(s.storeCalls.calls, []);
});

test("ChangeTimer changes only the fields that are set; an end on the running timer stops it", async () => {
  const s = setup();
  const me = s.timers(s.member);
  const t = s.store.put({ companyId: s.member.companyId, userId: s.member.userId, start: NOW - 3 * HOUR, end: NOW - 2 * HOUR, description: "old" });
  const renamed = await me.changeTimer({ timerId: t.id, description: "new" });
  assert.equal(renamed.timer?.description, "new");
  assert.deepEqual(ms(renamed.timer), { start: NOW - 3 * HOUR, end: NOW - 2 * HOUR, duration: HOUR });

  const moved = await me.changeTimer({ timerId: t.id, startTime: ts(NOW - 4 * HOUR) });
  assert.deepEqual(ms(moved.timer), { start: NOW - 4 * HOUR, end: NOW - 2 * HOUR, duration: 2 * HOUR });
  assert.equal(moved.timer?.description, "new");

  const running = (await me.startTimer({})).timer!;
  s.clock.now = NOW + 10 * MIN;
  const stopped = await me.changeTimer({ timerId: running.timerId, endTime: ts(NOW + 10 * MIN + 2_000) });
  assert.deepEqual(ms(stopped.timer), { start: NOW, end: NOW + 10 * MIN, duration: 10 * MIN }, "an end within the clock skew counts as now");
  assert.equal((await me.getWorkingTimer({})).timer, undefined);
});

test("ChangeTimer refuses bad input naming every bad field, and nothing reaches the store", async () => {
  const s = setup();
  const me = s.timers(s.member);
  const t = s.store.put({ companyId: s.member.companyId, userId: s.member.userId, start: NOW - 3 * HOUR, end: NOW - 2 * HOUR });
  const before = snapshot(s);
  await expectError(me.changeTimer({ timerId: "42", description: "x".repeat(1001), startTime: ts(NOW + SKEW_MS + 1) }), Code.InvalidArgument, {
    reason: "invalid_argument",
    fields: ["timerId", "description", "startTime"],
    message: /startTime: must not be in the future/,
  });
  await expectError(me.changeTimer({ timerId: t.id, startTime: ts(NOW - HOUR), endTime: ts(NOW - HOUR) }), Code.InvalidArgument, { fields: ["endTime"], message: /must be after startTime/ });
  // The 24-hour rule: 24 h is the longest entry.
  await expectError(me.changeTimer({ timerId: t.id, startTime: ts(NOW - 25 * HOUR), endTime: ts(NOW - HOUR + 1) }), Code.InvalidArgument, { fields: ["endTime"], message: /at most 24 hours/ });
  await expectError(me.changeTimer({ timerId: t.id }), Code.InvalidArgument, { fields: ["description"], message: /nothing to change/ });
  await expectError(me.changeTimer({ timerId: t.id, startTime: ts(-1) }), Code.InvalidArgument, { fields: ["startTime"], message: /between 1970/ });
  // Text rules run before the handler: a control character in a one-line field.
  await expectError(me.changeTimer({ timerId: `${t.id}\n`, description: "ok" }), Code.InvalidArgument, { fields: ["timerId"], message: /control character U\+000A/ });
  assert.deepEqual(s.storeCalls.calls, []);
  assert.equal(snapshot(s), before);
});

test("ChangeTimer: another user's entry is not_found for a member and editable by an owner; another company's is not_found", async () => {
  const s = setup();
  const theirs = s.store.put({ companyId: s.colleague.companyId, userId: s.colleague.userId, start: NOW - 3 * HOUR, end: NOW - 2 * HOUR });
  const foreign = s.store.put({ companyId: s.stranger.companyId, userId: s.stranger.userId, start: NOW - 3 * HOUR, end: NOW - 2 * HOUR, description: "theirs" });
  await expectError(s.timers(s.member).changeTimer({ timerId: theirs.id, description: "mine now" }), Code.NotFound, { reason: "not_found", message: /no timer .* of yours/ });
  await expectError(s.timers(s.owner).changeTimer({ timerId: foreign.id, description: "ours now" }), Code.NotFound);
  await expectError(s.timers(s.owner).changeTimer({ timerId: randomUUID(), description: "x" }), Code.NotFound);
  assert.equal(s.store.timers.get(foreign.id)?.description, "theirs");

  const changed = await s.timers(s.owner).changeTimer({ timerId: theirs.id, description: "fixed by the owner" });
  assert.equal(changed.timer?.userId, s.colleague.userId);
  assert.deepEqual(s.cache.invalidated.slice(-2).sort(), [s.owner.userId, s.colleague.userId].sort(), "both the actor's and the owner's cached timers");
});

test("ChangeTimer and AddTimer: times overlapping another entry are failed_precondition naming the field and that entry; the store's 24-hour rule holds for a running timer", async () => {
  const s = setup();
  const me = s.timers(s.member);
  const a = s.store.put({ companyId: s.member.companyId, userId: s.member.userId, start: NOW - 5 * HOUR, end: NOW - 4 * HOUR, description: "standup" });
  const b = s.store.put({ companyId: s.member.companyId, userId: s.member.userId, start: NOW - 3 * HOUR, end: NOW - 2 * HOUR });
  const before = snapshot(s);
  const e = await expectError(me.changeTimer({ timerId: b.id, startTime: ts(NOW - 4 * HOUR - MIN) }), Code.FailedPrecondition, { reason: "failed_precondition", fields: ["startTime"] });
  assert.match(e.violations[0]!.description, new RegExp(`overlaps entry ${a.id} .*"standup"`));
  await expectError(me.addTimer({ startTime: ts(NOW - 2 * HOUR - MIN), endTime: ts(NOW - HOUR) }), Code.FailedPrecondition, { fields: ["startTime"], message: new RegExp(b.id) });
  assert.equal(snapshot(s), before, "nothing written");
  // Touching is fine.
  await me.addTimer({ startTime: ts(NOW - 2 * HOUR), endTime: ts(NOW - HOUR) });

  const running = (await me.startTimer({})).timer!;
  await expectError(me.changeTimer({ timerId: running.timerId, startTime: ts(NOW - 25 * HOUR) }), Code.InvalidArgument, { fields: ["startTime"], message: /at most 24 hours/ });
  assert.equal(s.store.of(s.member.userId).length, 4);
});

test("AddTimer adds a finished entry: duration is end - start, exactly 24 hours is the longest", async () => {
  const s = setup();
  const me = s.timers(s.member);
  const added = await me.addTimer({ startTime: ts(NOW - 26 * HOUR), endTime: ts(NOW - 2 * HOUR), description: "offsite" });
  assert.deepEqual(ms(added.timer), { start: NOW - 26 * HOUR, end: NOW - 2 * HOUR, duration: 24 * HOUR });
  assert.equal(added.timer?.description, "offsite");
  // An end within the tolerated clock skew counts as now.
  const late = await me.addTimer({ startTime: ts(NOW - HOUR), endTime: ts(NOW + SKEW_MS) });
  assert.deepEqual(ms(late.timer), { start: NOW - HOUR, end: NOW, duration: HOUR });
  assert.deepEqual(s.cache.invalidated, [s.member.userId, s.member.userId]);
});

test("AddTimer refuses bad input naming every bad field, and writes nothing", async () => {
  const s = setup();
  const me = s.timers(s.member);
  await expectError(me.addTimer({ description: "x".repeat(1001) }), Code.InvalidArgument, { fields: ["description", "startTime", "endTime"], message: /startTime: is required; endTime: is required/ });
  await expectError(me.addTimer({ startTime: ts(NOW - 25 * HOUR), endTime: ts(NOW - HOUR + 1) }), Code.InvalidArgument, { fields: ["endTime"], message: /at most 24 hours/ });
  await expectError(me.addTimer({ startTime: ts(NOW - HOUR), endTime: ts(NOW - 2 * HOUR) }), Code.InvalidArgument, { fields: ["endTime"], message: /must be after startTime/ });
  await expectError(me.addTimer({ startTime: ts(NOW + HOUR), endTime: ts(NOW + 2 * HOUR) }), Code.InvalidArgument, { fields: ["startTime", "endTime"], message: /must not be in the future/ });
  await expectError(me.addTimer({ startTime: ts(NOW - HOUR), endTime: ts(NOW), description: "tab\there, nul\u0000 here" }), Code.InvalidArgument, { fields: ["description"], message: /U\+0000/ });
  assert.deepEqual(s.storeCalls.calls, []);
  assert.equal(s.store.timers.size, 0);
});

test("ListTimers: newest first, overlapping [from, to), paged; a colleague's list needs owner or admin", async () => {
  const s = setup();
  const me = s.timers(s.member);
  for (let h = 10; h >= 2; h -= 2) s.store.put({ companyId: s.member.companyId, userId: s.member.userId, start: NOW - h * HOUR, end: NOW - h * HOUR + HOUR, description: `h${h}` });
  await me.startTimer({ description: "now" });
  s.clock.now = NOW + 5 * MIN;

  const all = await me.listTimers({});
  assert.deepEqual(all.timers.map((t) => t.description), ["now", "h2", "h4", "h6", "h8", "h10"]);
  assert.equal(durationMs(all.timers[0]!.duration!), 5 * MIN, "the running timer counts to now");
  assert.equal(all.nextPageToken, "");

  const seen: string[] = [];
  let pageToken = "";
  do {
    const page = await me.listTimers({ pageSize: 4, pageToken });
    assert.ok(page.timers.length <= 4);
    seen.push(...page.timers.map((t) => t.description));
    pageToken = page.nextPageToken;
  } while (pageToken);
  assert.deepEqual(seen, ["now", "h2", "h4", "h6", "h8", "h10"], "pages follow each other without gaps or repeats");

  // Overlapping [from, to): h8 ends exactly at from (excluded), h4 starts before to.
  const window = await me.listTimers({ from: ts(NOW - 7 * HOUR), to: ts(NOW - 3 * HOUR - 1) });
  assert.deepEqual(window.timers.map((t) => t.description), ["h4", "h6"]);

  assert.equal((await s.timers(s.admin).listTimers({ userId: s.member.userId })).timers.length, 6);
  await expectError(s.timers(s.colleague).listTimers({ userId: s.member.userId }), Code.PermissionDenied);
  await expectError(s.timers(s.stranger).listTimers({ userId: s.member.userId }), Code.NotFound);

  const calls = s.storeCalls.calls.length;
  await expectError(me.listTimers({ userId: "x", pageSize: 501, pageToken: "t".repeat(201), from: ts(NOW), to: ts(NOW) }), Code.InvalidArgument, {
    fields: ["userId", "pageSize", "pageToken", "to"],
  });
  assert.equal(s.storeCalls.calls.length, calls);
  // A token the store did not make: the store's invalid_argument reaches the caller as it is.
  await expectError(me.listTimers({ pageToken: "bm90LWEtdG9rZW4" }), Code.InvalidArgument, { fields: ["pageToken"] });
});

test("GetReport totals local days and weeks of the zone; the running timer counts up to the store's now, at most the forgotten-timer limit", async () => {
  const s = setup();
  const me = s.timers(s.member);
  const put = (start: string, end: string | null) => s.store.put({ companyId: s.member.companyId, userId: s.member.userId, start: Date.parse(start), end: end === null ? null : Date.parse(end) });
  put("2026-03-02T09:00:00Z", "2026-03-02T11:00:00Z"); // Mon 10:00–12:00 in Berlin
  put("2026-03-03T22:30:00Z", "2026-03-04T00:30:00Z"); // Tue 23:30 – Wed 01:30 in Berlin: split at midnight
  put("2026-03-04T11:30:00Z", null); // running for 30 min
  const range = { from: ts(Date.parse("2026-03-01T23:00:00Z")), to: ts(Date.parse("2026-03-04T23:00:00Z")), timeZone: "Europe/Berlin" };

  const days = await me.getReport({ ...range, groupBy: GroupBy.DAY });
  assert.deepEqual(days.periods.map((p) => [p.label, durationMs(p.total!) / MIN]), [["2026-03-02", 120], ["2026-03-03", 30], ["2026-03-04", 120]]);
  assert.equal(durationMs(days.total!), 270 * MIN);
  assert.equal(timestampMs(days.periods[0]!.start!), Date.parse("2026-03-01T23:00:00Z"), "local midnight");

  const weeks = await me.getReport({ ...range, groupBy: GroupBy.WEEK });
  assert.deepEqual(weeks.periods.map((p) => [p.label, durationMs(p.total!) / MIN]), [["2026-03-02", 270]]);
  const utc = await me.getReport({ from: range.from, to: range.to });
  assert.deepEqual(utc.periods.map((p) => p.label), ["2026-03-01", "2026-03-02", "2026-03-03", "2026-03-04"], "no zone: UTC days, GROUP_BY_DAY");

  // A timer forgotten for 20 hours counts 12 (the limit the forgotten-timer job stops it at).
  s.clock.now = Date.parse("2026-03-05T07:30:00Z");
  const late = await me.getReport({ from: ts(Date.parse("2026-03-04T00:00:00Z")), to: ts(Date.parse("2026-03-06T00:00:00Z")) });
  assert.deepEqual(late.periods.map((p) => [p.label, durationMs(p.total!) / MIN]), [["2026-03-04", 30 + 12 * 60], ["2026-03-05", 0]]);

  assert.equal((await s.timers(s.owner).getReport({ ...range, userId: s.member.userId })).total !== undefined, true);
  await expectError(s.timers(s.colleague).getReport({ ...range, userId: s.member.userId }), Code.PermissionDenied);
});

test("GetReport refuses a bad range, zone or grouping naming every field, before the store", async () => {
  const s = setup();
  const me = s.timers(s.member);
  await expectError(me.getReport({ userId: "nobody", timeZone: "Mars/Olympus_Mons", groupBy: 7 as GroupBy }), Code.InvalidArgument, {
    fields: ["userId", "from", "to", "timeZone", "groupBy"],
  });
  await expectError(me.getReport({ from: ts(NOW), to: ts(NOW - 1) }), Code.InvalidArgument, { fields: ["to"], message: /must be after from/ });
  await expectError(me.getReport({ from: ts(NOW - 367 * 24 * HOUR), to: ts(NOW) }), Code.InvalidArgument, { fields: ["to"], message: /at most 366 days/ });
  assert.deepEqual(s.storeCalls.calls, []);
  await me.getReport({ from: ts(NOW - 366 * 24 * HOUR), to: ts(NOW) });
});

test("store failures: an ambiguous one after an owner's ChangeTimer retires the whole cache, a definite one does not; a store bug is internal and says nothing of it", async () => {
  const s = setup();
  const t = s.store.put({ companyId: s.member.companyId, userId: s.member.userId, start: NOW - 3 * HOUR, end: NOW - 2 * HOUR });

  s.storeCalls.failNext(new AppError("unavailable", "dbservice is restarting; try again shortly"), "ChangeTimerDB");
  await expectError(s.timers(s.owner).changeTimer({ timerId: t.id, description: "x" }), Code.Unavailable, { reason: "unavailable", message: /restarting/ });
  assert.equal(s.cache.invalidatedAll(), 1, "the owner may have changed anyone's timer");

  s.storeCalls.failNext(new AppError("unavailable", "dbservice is restarting"), "ChangeTimerDB");
  await expectError(s.timers(s.member).changeTimer({ timerId: t.id, description: "x" }), Code.Unavailable);
  assert.equal(s.cache.invalidatedAll(), 1, "a member changes only their own timers");

  s.storeCalls.failNext(new AppError("not_found", "gone"), "ChangeTimerDB");
  await expectError(s.timers(s.owner).changeTimer({ timerId: t.id, description: "x" }), Code.NotFound);
  assert.equal(s.cache.invalidatedAll(), 1, "a definite refusal changed nothing");

  s.storeCalls.failNext(new TypeError("cannot read properties of undefined (reading 'rows')"));
  const e = await expectError(s.timers(s.member).startTimer({}), Code.Internal);
  assert.doesNotMatch(e.message, /rows/);
  assert.deepEqual(s.cache.invalidated.at(-1), s.member.userId, "the failed write still invalidated");
  assert.equal(s.store.timers.size, 1);
});

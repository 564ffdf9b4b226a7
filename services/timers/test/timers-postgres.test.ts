/** Timers end to end on the real PostgreSQL and Redis, through the all-in-one server (Connect over HTTP/1.1 and gRPC). */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { Code } from "@connectrpc/connect";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { GroupBy, TimerService } from "@crm/gen/crm/timer/v1/timer_pb";
import { TEST_REDIS_URL, freshDatabase, installHint, need, postgresUp, redisUp, type TestApp, type TestDatabase } from "@crm/testkit";
import { startTestApp } from "@crm/all/test-app";
import { H, addPerson, ago, at, countTimers, expectCode, hours, iso, newCompany, query } from "./helpers.js";

const skip = need("PostgreSQL", await postgresUp(), installHint.postgres) || need("Redis", await redisUp(), installHint.redis);

let db: TestDatabase;
let app: TestApp;
before(async () => {
  if (skip) return;
  db = await freshDatabase();
  // The forgotten-timer job runs every second here, so its test need not wait long.
  app = await startTestApp({ DATABASE_URL: db.url, REDIS_URL: TEST_REDIS_URL, TIMER_SWEEP_INTERVAL_SECONDS: "1" });
});
after(async () => {
  await app?.close();
  await db?.drop();
});

test("full flow: start, running, start again stops it, end, add by hand, change, list in pages, report", { skip }, async () => {
  const me = await newCompany(app);
  assert.equal((await me.timers.getWorkingTimer({})).timer, undefined, "nothing runs yet");

  const a = await me.timers.startTimer({ description: "write the spec" });
  assert.ok(a.timer?.timerId);
  assert.equal(a.timer.userId, me.userId);
  assert.equal(a.timer.endTime, undefined);
  assert.equal(a.stopped, undefined);
  const running = await me.timers.getWorkingTimer({});
  assert.equal(running.timer?.timerId, a.timer.timerId);
  assert.equal(running.timer.description, "write the spec");

  // Starting another stops the first in the same transaction: it ends exactly when the new one starts.
  const b = await me.timers.startTimer({ description: "review" });
  assert.equal(b.stopped?.timerId, a.timer.timerId);
  assert.equal(iso(b.stopped.endTime), iso(b.timer?.startTime));
  assert.equal((await me.timers.getWorkingTimer({})).timer?.timerId, b.timer?.timerId);

  const ended = (await me.timers.endTimer({ description: "review done" })).timer!;
  assert.equal(ended.timerId, b.timer?.timerId);
  assert.equal(ended.description, "review done");
  assert.ok(ended.endTime && ended.duration);
  assert.equal((await me.timers.getWorkingTimer({})).timer, undefined);
  await expectCode(me.timers.endTimer({}), Code.FailedPrecondition, /no timer is running/);

  const added = await me.timers.addTimer({ startTime: ago(26 * H), endTime: ago(25 * H), description: "by hand" });
  assert.equal(hours(added.timer?.duration), 1);
  const changed = await me.timers.changeTimer({ timerId: added.timer!.timerId, description: "by hand, fixed", endTime: { ...added.timer!.endTime!, seconds: added.timer!.endTime!.seconds + 1800n } });
  assert.equal(changed.timer?.description, "by hand, fixed");
  assert.equal(hours(changed.timer.duration), 1.5);

  // Newest first, in pages of two; a range picks what overlaps it.
  const p1 = await me.timers.listTimers({ pageSize: 2 });
  assert.deepEqual(p1.timers.map((t) => t.timerId), [b.timer!.timerId, a.timer.timerId]);
  assert.ok(p1.nextPageToken);
  const p2 = await me.timers.listTimers({ pageSize: 2, pageToken: p1.nextPageToken });
  assert.deepEqual(p2.timers.map((t) => t.timerId), [added.timer!.timerId]);
  assert.equal(p2.nextPageToken, "");
  const yesterday = await me.timers.listTimers({ from: ago(30 * H), to: ago(20 * H) });
  assert.deepEqual(yesterday.timers.map((t) => t.timerId), [added.timer!.timerId]);
  await expectCode(me.timers.listTimers({ pageToken: "bm90IGEgdG9rZW4" }), Code.InvalidArgument, /pageToken/);

  // The same over gRPC: the report sums everything.
  const grpc = app.client(TimerService, { token: me.token, protocol: "grpc" });
  const report = await grpc.getReport({ from: ago(48 * H), to: ago(-H), timeZone: "Europe/Berlin", groupBy: GroupBy.DAY });
  const expected = hours(changed.timer.duration) + hours(ended.duration) + hours(b.stopped.duration);
  assert.ok(Math.abs(hours(report.total) - expected) < 1e-9, `${hours(report.total)} vs ${expected}`);
  assert.ok(report.periods.length >= 3);
});

test("20 concurrent StartTimer calls of one user: all succeed, exactly one runs, the entries chain without overlap", { skip }, async () => {
  const me = await newCompany(app);
  const grpc = app.client(TimerService, { token: me.token, protocol: "grpc" });
  // Reads race the writes: a read that saw the database before a write must not leave a stale cache entry behind.
  const reads = Array.from({ length: 20 }, () => me.timers.getWorkingTimer({}));
  const results = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? grpc : me.timers).startTimer({ description: `start ${i}` })));
  await Promise.all(reads);
  assert.deepEqual(await countTimers(db.url, me.userId), { all: 20, running: 1 });
  assert.equal(results.filter((r) => !r.stopped).length, 1, "only the first call found nothing running");
  const startedIds = new Set(results.map((r) => r.timer!.timerId));
  const stoppedIds = results.flatMap((r) => (r.stopped ? [r.stopped.timerId] : []));
  assert.equal(new Set(stoppedIds).size, 19, "each timer was stopped once");
  assert.ok(stoppedIds.every((id) => startedIds.has(id)));
  const survivor = [...startedIds].filter((id) => !stoppedIds.includes(id));
  assert.deepEqual(survivor, [(await me.timers.getWorkingTimer({})).timer?.timerId]);
  const rows = await query<{ start_time: Date; end_time: Date | null }>(db.url, "SELECT start_time, end_time FROM timers WHERE user_id = $1 ORDER BY start_time", [me.userId]);
  for (let i = 0; i + 1 < rows.length; i++) assert.equal(rows[i]!.end_time?.getTime(), rows[i + 1]!.start_time.getTime(), `entry ${i} ends where ${i + 1} starts`);
});

test("overlap rule: touching is fine, any overlap is refused naming the entry, nothing changes", { skip }, async () => {
  const me = await newCompany(app);
  const day = Math.floor((Date.now() - 3 * 24 * H) / (24 * H)) * 24 * H; // midnight UTC three days ago
  const t = (h: number) => ({ seconds: BigInt(Math.floor((day + h * H) / 1000)), nanos: 0 }) as ReturnType<typeof ago>;
  const e = (await me.timers.addTimer({ startTime: t(10), endTime: t(11), description: "10-11" })).timer!;
  const after_ = (await me.timers.addTimer({ startTime: t(11), endTime: t(12), description: "11-12 touches" })).timer!;
  const before_ = (await me.timers.addTimer({ startTime: t(9), endTime: t(10), description: "9-10 touches" })).timer!;
  const count = await countTimers(db.url, me.userId);

  const err1 = await expectCode(me.timers.addTimer({ startTime: t(10.25), endTime: t(10.75) }), Code.FailedPrecondition, new RegExp(`overlap entry ${e.timerId}`));
  assert.match(err1.rawMessage, /10-11/);
  await expectCode(me.timers.addTimer({ startTime: t(10.99), endTime: t(11.5) }), Code.FailedPrecondition, new RegExp(e.timerId));
  await expectCode(me.timers.addTimer({ startTime: t(8), endTime: t(13) }), Code.FailedPrecondition, new RegExp(before_.timerId));
  await expectCode(me.timers.addTimer({ startTime: t(11.5), endTime: t(11.6) }), Code.FailedPrecondition, new RegExp(after_.timerId));
  // Moving an entry onto another is refused too; moving it to touch is fine.
  await expectCode(me.timers.changeTimer({ timerId: after_.timerId, startTime: t(10.5) }), Code.FailedPrecondition, new RegExp(e.timerId));
  await expectCode(me.timers.changeTimer({ timerId: before_.timerId, endTime: t(10.001) }), Code.FailedPrecondition, new RegExp(e.timerId));
  assert.deepEqual(await countTimers(db.url, me.userId), count);
  const untouched = await me.timers.listTimers({ from: t(0), to: t(24) });
  assert.deepEqual(untouched.timers.map((x) => [iso(x.startTime), iso(x.endTime)]), [after_, e, before_].map((x) => [iso(x.startTime), iso(x.endTime)]));
  const moved = await me.timers.changeTimer({ timerId: before_.timerId, startTime: t(8), endTime: t(10) });
  assert.equal(hours(moved.timer?.duration), 2);

  // The running timer counts as [start, ∞): nothing may be added that ends after it started.
  const run = (await me.timers.startTimer({ description: "now" })).timer!;
  await expectCode(me.timers.addTimer({ startTime: ago(H), endTime: ago(0) }), Code.FailedPrecondition, new RegExp(`overlap entry ${run.timerId}.*running`));
  const beforeRun = await me.timers.addTimer({ startTime: ago(3 * H), endTime: { ...run.startTime! } });
  assert.ok(beforeRun.timer, "an entry may end exactly when the running timer started");
});

test("bad input: invalid_argument naming each field, and nothing is stored", { skip }, async () => {
  const me = await newCompany(app);
  await me.timers.startTimer({ description: "keep" });
  const count = await countTimers(db.url, me.userId);
  const c = me.timers;
  await expectCode(c.startTimer({ description: "x".repeat(1001) }), Code.InvalidArgument, /description: must be at most 1000 characters/);
  await expectCode(c.endTimer({ description: "x".repeat(1001) }), Code.InvalidArgument, /description:/);
  await expectCode(c.addTimer({ startTime: ago(H), endTime: ago(H) }), Code.InvalidArgument, /endTime: must be after startTime/);
  await expectCode(c.addTimer({ startTime: ago(2 * H), endTime: ago(3 * H) }), Code.InvalidArgument, /endTime: must be after startTime/);
  await expectCode(c.addTimer({ startTime: ago(30 * H), endTime: ago(5 * H) }), Code.InvalidArgument, /endTime: an entry may last at most 24 hours/);
  await expectCode(c.addTimer({ startTime: ago(-H), endTime: ago(-2 * H) }), Code.InvalidArgument, /startTime: must not be in the future.*endTime: must not be in the future/);
  await expectCode(c.addTimer({}), Code.InvalidArgument, /startTime: is required; endTime: is required/);
  await expectCode(c.changeTimer({ timerId: "42" }), Code.InvalidArgument, /timerId: must be a timer id.*description: nothing to change/);
  await expectCode(c.changeTimer({ timerId: crypto.randomUUID(), description: "x" }), Code.NotFound);
  await expectCode(c.listTimers({ pageSize: 501, from: ago(H), to: ago(2 * H) }), Code.InvalidArgument, /pageSize: .*to: must be after from/);
  await expectCode(c.getReport({ from: ago(H), to: ago(0), timeZone: "Mars/Olympus" }), Code.InvalidArgument, /timeZone: must be an IANA time zone/);
  await expectCode(c.getReport({ from: ago(400 * 24 * H), to: ago(0) }), Code.InvalidArgument, /to: the range may span at most 366 days/);
  await expectCode(c.getReport({ timeZone: "+02:00" }), Code.InvalidArgument, /from: is required.*to: is required.*timeZone/);
  await expectCode(c.getWorkingTimer({ userId: "me" }), Code.InvalidArgument, /userId/);
  assert.deepEqual(await countTimers(db.url, me.userId), count);
  assert.equal((await c.getWorkingTimer({})).timer?.description, "keep");
});

test("reports across DST: Berlin 23 h and 25 h days, New York too, midnight splits, weeks", { skip }, async () => {
  const me = await newCompany(app);
  const add = (from: string, to: string) => me.timers.addTimer({ startTime: at(from), endTime: at(to) });
  await add("2024-03-31T00:00:00Z", "2024-03-31T02:00:00Z"); // 01:00 CET → 04:00 CEST: 2 h
  await add("2024-03-31T20:00:00Z", "2024-03-31T22:30:00Z"); // 22:00 → 00:30 CEST: 2 h + 0.5 h
  await add("2024-10-26T22:00:00Z", "2024-10-27T22:00:00Z"); // Berlin 2024-10-27 00:00 → 23:00 CET: 24 h
  await add("2024-10-27T22:00:00Z", "2024-10-27T23:00:00Z"); // … the 25th hour
  await add("2024-11-03T05:30:00Z", "2024-11-03T06:30:00Z"); // New York: 01:30 EDT → 01:30 EST

  const table = (r: Awaited<ReturnType<typeof me.timers.getReport>>) =>
    r.periods.map((p) => [p.label, (timestampMs(p.end!) - timestampMs(p.start!)) / H, hours(p.total)]);

  const spring = await me.timers.getReport({ from: at("2024-03-29T23:00:00Z"), to: at("2024-04-01T22:00:00Z"), timeZone: "Europe/Berlin", groupBy: GroupBy.DAY });
  assert.deepEqual(table(spring), [["2024-03-30", 24, 0], ["2024-03-31", 23, 4], ["2024-04-01", 24, 0.5]]);
  assert.equal(hours(spring.total), 4.5);

  const fall = await me.timers.getReport({ from: at("2024-10-26T22:00:00Z"), to: at("2024-10-28T23:00:00Z"), timeZone: "Europe/Berlin" });
  assert.deepEqual(table(fall), [["2024-10-27", 25, 25], ["2024-10-28", 24, 0]]);

  const ny = await me.timers.getReport({ from: at("2024-11-02T04:00:00Z"), to: at("2024-11-04T05:00:00Z"), timeZone: "America/New_York" });
  assert.deepEqual(table(ny), [["2024-11-02", 24, 0], ["2024-11-03", 25, 1]]);
  const nySpring = await me.timers.getReport({ from: at("2024-03-10T05:00:00Z"), to: at("2024-03-12T04:00:00Z"), timeZone: "America/New_York" });
  assert.deepEqual(table(nySpring), [["2024-03-10", 23, 0], ["2024-03-11", 24, 0]]);

  // In UTC the 00:00–02:00Z entry and the evening one land on 2024-03-31 whole.
  const utc = await me.timers.getReport({ from: at("2024-03-31T00:00:00Z"), to: at("2024-04-01T00:00:00Z") });
  assert.deepEqual(table(utc), [["2024-03-31", 24, 4.5]]);

  const weeks = await me.timers.getReport({ from: at("2024-03-24T23:00:00Z"), to: at("2024-04-07T22:00:00Z"), timeZone: "Europe/Berlin", groupBy: GroupBy.WEEK });
  assert.deepEqual(table(weeks), [["2024-03-25", 7 * 24 - 1, 4], ["2024-04-01", 7 * 24, 0.5]]);
});

test("GetWorkingTimer is served from Redis and every change is read back at once", { skip }, async () => {
  const owner = await newCompany(app);
  const member = await addPerson(app, db.url, owner.companyId, "member");
  const one = (await member.timers.startTimer({ description: "one" })).timer!;
  assert.equal((await member.timers.getWorkingTimer({})).timer?.description, "one"); // fills the cache
  // Behind the service's back: the cached answer still says "one", so it came from Redis, not the database.
  await query(db.url, "UPDATE timers SET description = 'changed behind its back' WHERE id = $1", [one.timerId]);
  assert.equal((await member.timers.getWorkingTimer({})).timer?.description, "one");

  // Every change through the service is visible on the very next read.
  await member.timers.changeTimer({ timerId: one.timerId, description: "two" });
  assert.equal((await member.timers.getWorkingTimer({})).timer?.description, "two");
  const moved = await member.timers.changeTimer({ timerId: one.timerId, startTime: ago(2 * H) });
  assert.equal(iso((await member.timers.getWorkingTimer({})).timer?.startTime), iso(moved.timer?.startTime));
  await member.timers.endTimer({});
  assert.equal((await member.timers.getWorkingTimer({})).timer, undefined);
  const three = (await member.timers.startTimer({ description: "three" })).timer!;
  assert.equal((await member.timers.getWorkingTimer({})).timer?.timerId, three.timerId);
  // An admin's change of the member's timer invalidates the member's entry too.
  await owner.timers.changeTimer({ timerId: three.timerId, description: "renamed by the owner" });
  assert.equal((await member.timers.getWorkingTimer({})).timer?.description, "renamed by the owner");
  await owner.timers.changeTimer({ timerId: three.timerId, endTime: ago(0) });
  assert.equal((await member.timers.getWorkingTimer({})).timer, undefined);
  // The running duration is measured at response time, also from the cache.
  await member.timers.startTimer({});
  const d1 = hours((await member.timers.getWorkingTimer({})).timer?.duration);
  const d2 = hours((await member.timers.getWorkingTimer({})).timer?.duration);
  assert.ok(d2 >= d1);
});

test("tenancy and roles: other tenants' ids are not_found, members may not read others, admins may", { skip }, async () => {
  const owner = await newCompany(app);
  const admin = await addPerson(app, db.url, owner.companyId, "admin");
  const member = await addPerson(app, db.url, owner.companyId, "member");
  const stranger = await newCompany(app, "Other");
  const mine = (await member.timers.addTimer({ startTime: ago(5 * H), endTime: ago(4 * H), description: "member work" })).timer!;
  const ownerTimer = (await owner.timers.startTimer({ description: "owner work" })).timer!;
  const range = { from: ago(24 * H), to: ago(-H) };

  // Another company: its ids do not exist for us.
  await expectCode(stranger.timers.changeTimer({ timerId: mine.timerId, description: "hijack" }), Code.NotFound);
  await expectCode(stranger.timers.listTimers({ userId: member.userId }), Code.NotFound);
  await expectCode(stranger.timers.getReport({ ...range, userId: member.userId }), Code.NotFound);
  await expectCode(stranger.timers.getWorkingTimer({ userId: owner.userId }), Code.NotFound);
  // A member: permission_denied for anyone else's list and report; another's entry is not_found.
  await expectCode(member.timers.getReport({ ...range, userId: owner.userId }), Code.PermissionDenied, /owner or admin/);
  await expectCode(member.timers.listTimers({ userId: admin.userId }), Code.PermissionDenied);
  await expectCode(member.timers.getWorkingTimer({ userId: owner.userId }), Code.PermissionDenied);
  await expectCode(member.timers.changeTimer({ timerId: ownerTimer.timerId, description: "x" }), Code.NotFound);
  // Admins (and owners) see anyone in their company.
  assert.deepEqual((await admin.timers.listTimers({ userId: member.userId })).timers.map((t) => t.timerId), [mine.timerId]);
  assert.equal(hours((await admin.timers.getReport({ ...range, userId: member.userId })).total), 1);
  assert.equal((await admin.timers.getWorkingTimer({ userId: owner.userId })).timer?.timerId, ownerTimer.timerId);
  assert.equal((await owner.timers.listTimers({ userId: member.userId })).timers.length, 1);
  // Nothing changed.
  const [row] = await query<{ description: string }>(db.url, "SELECT description FROM timers WHERE id = $1", [mine.timerId]);
  assert.equal(row?.description, "member work");
});

test("row-level security hides other companies' timers even from a query without a company filter", { skip }, async () => {
  const a = await newCompany(app);
  const b = await newCompany(app);
  await a.timers.startTimer({ description: "a" });
  await b.timers.startTimer({ description: "b" });
  const pg = await import("pg");
  const c = new pg.default.Client({ connectionString: db.url });
  await c.connect();
  try {
    await c.query(`BEGIN; SET LOCAL ROLE crm_app; SELECT set_config('app.company_id', '${a.companyId}', true)`);
    const rows = (await c.query("SELECT user_id, description FROM timers")).rows;
    assert.deepEqual(rows, [{ user_id: a.userId, description: "a" }]);
    await assert.rejects(c.query("INSERT INTO timers (company_id, user_id, start_time, end_time) VALUES ($1, $2, now() - interval '2 hours', now() - interval '1 hour')", [b.companyId, b.userId]), /row-level security/);
    await c.query("ROLLBACK");
  } finally {
    await c.end();
  }
});

test("a forgotten timer is stopped at the maximum (12 h) by the background job, and the cache follows", { skip }, async () => {
  const me = await newCompany(app);
  const t = (await me.timers.startTimer({ description: "forgot to stop" })).timer!;
  assert.equal((await me.timers.getWorkingTimer({})).timer?.timerId, t.timerId); // cached
  await query(db.url, "UPDATE timers SET start_time = start_time - interval '13 hours' WHERE id = $1", [t.timerId]);
  const deadline = Date.now() + 15_000;
  let now = (await me.timers.getWorkingTimer({})).timer;
  while (now && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    now = (await me.timers.getWorkingTimer({})).timer;
  }
  assert.equal(now, undefined, "the job stopped it within 15 s and invalidated the cached value");
  const [row] = await query<{ length: string; auto_stopped: boolean }>(db.url, "SELECT extract(epoch FROM end_time - start_time)::text AS length, auto_stopped FROM timers WHERE id = $1", [t.timerId]);
  assert.deepEqual(row, { length: "43200.000000", auto_stopped: true });
  await expectCode(me.timers.endTimer({}), Code.FailedPrecondition, new RegExp(`timer ${t.timerId} was stopped automatically`));
});

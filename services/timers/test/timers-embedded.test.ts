/** The newcomer's path: all-in-one with nothing installed (PGlite, no Redis). The same rules hold. */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { Code } from "@connectrpc/connect";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { type TestApp } from "@crm/testkit";
import { startTestApp } from "@crm/all/test-app";
import { H, ago, at, expectCode, hours, newCompany } from "./helpers.js";

let app: TestApp;
before(async () => {
  app = await startTestApp({});
});
after(async () => {
  await app?.close();
});

test("embedded PostgreSQL: one running timer under concurrency, overlaps refused (btree_gist on PGlite), DST report", async () => {
  const me = await newCompany(app);
  const results = await Promise.all(Array.from({ length: 5 }, (_, i) => me.timers.startTimer({ description: `s${i}` })));
  assert.equal(results.filter((r) => !r.stopped).length, 1);
  const running = (await me.timers.getWorkingTimer({})).timer!;
  assert.equal((await me.timers.listTimers({})).timers.filter((t) => !t.endTime).map((t) => t.timerId).join(), running.timerId);
  await expectCode(me.timers.addTimer({ startTime: ago(H), endTime: ago(0) }), Code.FailedPrecondition, /overlap entry/);
  await me.timers.endTimer({});
  assert.equal((await me.timers.getWorkingTimer({})).timer, undefined);

  const e = (await me.timers.addTimer({ startTime: at("2024-03-31T00:00:00Z"), endTime: at("2024-03-31T02:00:00Z") })).timer!;
  await expectCode(me.timers.addTimer({ startTime: at("2024-03-31T01:00:00Z"), endTime: at("2024-03-31T03:00:00Z") }), Code.FailedPrecondition, new RegExp(e.timerId));
  await me.timers.addTimer({ startTime: at("2024-03-31T02:00:00Z"), endTime: at("2024-03-31T03:00:00Z") });
  const r = await me.timers.getReport({ from: at("2024-03-30T23:00:00Z"), to: at("2024-04-01T22:00:00Z"), timeZone: "Europe/Berlin" });
  assert.deepEqual(r.periods.map((p) => [p.label, (timestampMs(p.end!) - timestampMs(p.start!)) / H, hours(p.total)]), [["2024-03-31", 23, 3], ["2024-04-01", 24, 0]]);
});

import assert from "node:assert/strict";
import { test } from "node:test";
import { CliError, Exit } from "./errors.js";
import { checkZone, formatDay, mondayOf, parseDay, reportRange, startOfDay } from "./dates.js";

const usage = (e: unknown) => e instanceof CliError && e.exitCode === Exit.usage;

test("startOfDay: local midnight in the zone, DST days included", () => {
  assert.equal(startOfDay({ y: 2026, m: 12, d: 7 }, "UTC").toISOString(), "2026-12-07T00:00:00.000Z");
  assert.equal(startOfDay({ y: 2026, m: 12, d: 7 }, "Europe/Moscow").toISOString(), "2026-12-06T21:00:00.000Z");
  assert.equal(startOfDay({ y: 2024, m: 3, d: 31 }, "Europe/Berlin").toISOString(), "2024-03-30T23:00:00.000Z", "the spring-forward day starts in CET");
  assert.equal(startOfDay({ y: 2024, m: 4, d: 1 }, "Europe/Berlin").toISOString(), "2024-03-31T22:00:00.000Z", "the day after starts in CEST");
  assert.equal(startOfDay({ y: 2024, m: 11, d: 3 }, "America/New_York").toISOString(), "2024-11-03T04:00:00.000Z");
});

test("mondayOf: the ISO week's Monday (Sunday belongs to the week before)", () => {
  assert.equal(formatDay(mondayOf({ y: 2026, m: 12, d: 7 })), "2026-12-07"); // a Monday
  assert.equal(formatDay(mondayOf({ y: 2026, m: 12, d: 13 })), "2026-12-07"); // Sunday
  assert.equal(formatDay(mondayOf({ y: 2026, m: 1, d: 1 })), "2025-12-29"); // across a year
  assert.equal(formatDay(mondayOf({ y: 2026, m: 12, d: 9 }, 1)), "2026-11-30");
});

test("reportRange: --week, --last-week, --from/--to (inclusive), in the zone", () => {
  const now = Date.parse("2026-12-09T10:00:00Z"); // a Wednesday
  const week = reportRange({ week: true }, now, "Europe/Moscow");
  assert.deepEqual([week.from.toISOString(), week.to.toISOString()], ["2026-12-06T21:00:00.000Z", "2026-12-13T21:00:00.000Z"]);
  assert.deepEqual(reportRange({}, now, "UTC").from.toISOString(), "2026-12-07T00:00:00.000Z", "this week by default");
  assert.equal(reportRange({ lastWeek: true }, now, "UTC").from.toISOString(), "2026-11-30T00:00:00.000Z");
  const r = reportRange({ from: "2026-12-01", to: "2026-12-01" }, now, "UTC");
  assert.deepEqual([r.from.toISOString(), r.to.toISOString()], ["2026-12-01T00:00:00.000Z", "2026-12-02T00:00:00.000Z"], "one whole day");
  assert.equal(reportRange({ from: "2026-12-01" }, now, "UTC").to.toISOString(), "2026-12-10T00:00:00.000Z", "--to defaults to today");
});

test("bad ranges, dates and zones are usage errors", () => {
  const now = Date.now();
  assert.throws(() => reportRange({ week: true, from: "2026-01-01" }, now, "UTC"), usage);
  assert.throws(() => reportRange({ to: "2026-01-01" }, now, "UTC"), usage);
  assert.throws(() => reportRange({ from: "2026-01-02", to: "2026-01-01" }, now, "UTC"), usage);
  assert.throws(() => parseDay("2026-02-30", "--from"), /--from "2026-02-30" is not a date: use YYYY-MM-DD/);
  assert.throws(() => parseDay("1/2/2026", "--to"), usage);
  assert.throws(() => checkZone("Mars/Olympus"), /not a time zone/);
  assert.equal(checkZone("Asia/Tokyo"), "Asia/Tokyo");
});

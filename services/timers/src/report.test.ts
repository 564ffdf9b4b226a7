import assert from "node:assert/strict";
import { test } from "node:test";
import { buildReport, periods, type ReportInput } from "./report.js";

const at = (iso: string) => Date.parse(iso);
const H = 3_600_000;
const base = (over: Partial<ReportInput>): ReportInput => ({ entries: [], from: 0, to: 0, zone: "UTC", groupBy: "day", now: at("2030-01-01T00:00:00Z"), maxRunningMs: 12 * H, ...over });
const table = (r: ReturnType<typeof buildReport>) => r.periods.map((p) => [p.label, (p.end - p.start) / H, p.totalMs / H]);

test("Berlin spring-forward week: 2024-03-31 has 23 hours, every day listed, empty ones zero", () => {
  const r = buildReport(base({
    zone: "Europe/Berlin",
    from: at("2024-03-29T23:00:00Z"), // 2024-03-30 00:00 CET
    to: at("2024-04-01T22:00:00Z"), // 2024-04-02 00:00 CEST
    entries: [{ start: at("2024-03-31T00:00:00Z"), end: at("2024-03-31T02:00:00Z") }], // 01:00 CET → 04:00 CEST: 2 h
  }));
  assert.deepEqual(table(r), [["2024-03-30", 24, 0], ["2024-03-31", 23, 2], ["2024-04-01", 24, 0]]);
  assert.equal(r.totalMs, 2 * H);
});

test("Berlin fall-back: 2024-10-27 has 25 hours; a whole-day entry counts 25 h", () => {
  const day = { start: at("2024-10-26T22:00:00Z"), end: at("2024-10-27T23:00:00Z") };
  const r = buildReport(base({ zone: "Europe/Berlin", from: day.start, to: day.end, entries: [day] }));
  assert.deepEqual(table(r), [["2024-10-27", 25, 25]]);
});

test("New York change days: 2024-03-10 is 23 h and 2024-11-03 is 25 h", () => {
  const spring = buildReport(base({ zone: "America/New_York", from: at("2024-03-10T05:00:00Z"), to: at("2024-03-11T04:00:00Z") }));
  assert.deepEqual(table(spring), [["2024-03-10", 23, 0]]);
  const fall = buildReport(base({
    zone: "America/New_York",
    from: at("2024-11-02T04:00:00Z"),
    to: at("2024-11-05T05:00:00Z"),
    // 01:30 EDT → 01:30 EST: one hour of wall clock, two real hours.
    entries: [{ start: at("2024-11-03T05:30:00Z"), end: at("2024-11-03T06:30:00Z") }],
  }));
  assert.deepEqual(table(fall), [["2024-11-02", 24, 0], ["2024-11-03", 25, 1], ["2024-11-04", 24, 0]]);
});

test("an entry across local midnight is split into the days it covers", () => {
  // 22:00 → 02:30 Berlin (CET) = 21:00Z → 01:30Z
  const r = buildReport(base({
    zone: "Europe/Berlin",
    from: at("2024-01-09T23:00:00Z"),
    to: at("2024-01-11T23:00:00Z"),
    entries: [{ start: at("2024-01-10T21:00:00Z"), end: at("2024-01-11T01:30:00Z") }],
  }));
  assert.deepEqual(table(r), [["2024-01-10", 24, 2], ["2024-01-11", 24, 2.5]]);
  // The same entry in UTC falls into one day.
  const utc = buildReport(base({ from: at("2024-01-10T00:00:00Z"), to: at("2024-01-12T00:00:00Z"), entries: [{ start: at("2024-01-10T21:00:00Z"), end: at("2024-01-11T01:30:00Z") }] }));
  assert.deepEqual(table(utc), [["2024-01-10", 24, 3], ["2024-01-11", 24, 1.5]]);
});

test("entries are clipped to [from, to); the first and last periods are clipped too", () => {
  const r = buildReport(base({
    from: at("2024-05-01T12:00:00Z"),
    to: at("2024-05-02T06:00:00Z"),
    entries: [
      { start: at("2024-05-01T10:00:00Z"), end: at("2024-05-01T13:00:00Z") }, // 1 h inside
      { start: at("2024-05-02T05:00:00Z"), end: at("2024-05-02T09:00:00Z") }, // 1 h inside
      { start: at("2024-04-01T05:00:00Z"), end: at("2024-04-01T09:00:00Z") }, // outside
    ],
  }));
  assert.deepEqual(table(r), [["2024-05-01", 12, 1], ["2024-05-02", 6, 1]]);
  assert.equal(r.periods[0]!.start, at("2024-05-01T12:00:00Z"));
  assert.equal(r.periods[1]!.end, at("2024-05-02T06:00:00Z"));
});

test("a running timer counts up to now, never past the forgotten-timer maximum", () => {
  const from = at("2024-05-01T00:00:00Z");
  const to = at("2024-05-03T00:00:00Z");
  const running = [{ start: at("2024-05-01T08:00:00Z") }];
  assert.equal(buildReport(base({ from, to, entries: running, now: at("2024-05-01T11:00:00Z") })).totalMs, 3 * H);
  assert.equal(buildReport(base({ from, to, entries: running, now: at("2024-05-02T11:00:00Z") })).totalMs, 12 * H);
});

test("weeks start on Monday (local), are labelled by their Monday, and span DST changes", () => {
  const r = buildReport(base({
    zone: "Europe/Berlin",
    groupBy: "week",
    from: at("2024-03-27T23:00:00Z"), // Thursday 2024-03-28 00:00 CET
    to: at("2024-04-07T22:00:00Z"), // Monday 2024-04-08 00:00 CEST
    entries: [{ start: at("2024-03-31T08:00:00Z"), end: at("2024-04-01T08:00:00Z") }], // Sunday → Monday
  }));
  assert.deepEqual(r.periods.map((p) => p.label), ["2024-03-25", "2024-04-01"]);
  assert.equal((r.periods[0]!.end - r.periods[0]!.start) / H, 4 * 24 - 1); // Thu..Sun, one 23 h day
  assert.deepEqual(r.periods.map((p) => p.totalMs / H), [14, 10]); // Sunday 10:00 CEST → 24:00, Monday 00:00 → 10:00
});

test("a day the zone skipped is not listed (Pacific/Apia 2011-12-30)", () => {
  const r = periods(at("2011-12-29T10:00:00Z"), at("2011-12-31T10:00:00Z"), "Pacific/Apia", "day");
  assert.deepEqual(r.map((p) => p.label), ["2011-12-29", "2011-12-31"]);
});

test("a year of days in Berlin: 366 periods in 2024, totals add up", () => {
  const from = at("2023-12-31T23:00:00Z");
  const to = at("2024-12-31T23:00:00Z");
  const entries = [];
  for (let t = from + 9 * H; t < to; t += 24 * H) entries.push({ start: t, end: t + H });
  const r = buildReport(base({ zone: "Europe/Berlin", from, to, entries }));
  assert.equal(r.periods.length, 366);
  assert.equal(r.totalMs, entries.length * H);
  assert.equal(r.periods.reduce((s, p) => s + p.totalMs, 0), r.totalMs);
  assert.equal(r.periods.filter((p) => p.end - p.start === 23 * H).length, 1);
  assert.equal(r.periods.filter((p) => p.end - p.start === 25 * H).length, 1);
});

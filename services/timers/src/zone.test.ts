import assert from "node:assert/strict";
import { test } from "node:test";
import { addDays, canonicalZone, formatDate, isoWeekday, localDate, mondayOf, offsetAt, startOfLocalDay } from "./zone.js";

const at = (iso: string) => Date.parse(iso);
const start = (zone: string, date: string) => {
  const [y, m, d] = date.split("-").map(Number) as [number, number, number];
  return new Date(startOfLocalDay({ y, m, d }, zone)).toISOString();
};
const hours = (zone: string, date: string) => {
  const [y, m, d] = date.split("-").map(Number) as [number, number, number];
  return (startOfLocalDay(addDays({ y, m, d }, 1), zone) - startOfLocalDay({ y, m, d }, zone)) / 3_600_000;
};

test("canonicalZone accepts IANA names (any case, links) and refuses offsets and inventions", () => {
  assert.equal(canonicalZone("Europe/Berlin"), "Europe/Berlin");
  assert.equal(canonicalZone("europe/berlin"), "Europe/Berlin");
  assert.equal(canonicalZone("UTC"), "UTC");
  assert.equal(canonicalZone("US/Eastern"), "America/New_York");
  assert.equal(canonicalZone("+02:00"), undefined);
  assert.equal(canonicalZone("Mars/Olympus_Mons"), undefined);
  assert.equal(canonicalZone(""), undefined);
  assert.equal(canonicalZone("Europe/Berlin; DROP TABLE timers"), undefined);
});

test("offsets: Berlin +1 in winter, +2 in summer; Kolkata +5:30", () => {
  assert.equal(offsetAt(at("2024-01-15T12:00:00Z"), "Europe/Berlin"), 3_600_000);
  assert.equal(offsetAt(at("2024-07-15T12:00:00Z"), "Europe/Berlin"), 7_200_000);
  assert.equal(offsetAt(at("2024-07-15T12:00:00.999Z"), "Asia/Kolkata"), 19_800_000);
  assert.equal(offsetAt(at("2024-07-15T12:00:00Z"), "America/New_York"), -4 * 3_600_000);
});

test("Europe/Berlin: 2024-03-31 lasts 23 h, 2024-10-27 lasts 25 h, other days 24 h", () => {
  assert.equal(start("Europe/Berlin", "2024-03-31"), "2024-03-30T23:00:00.000Z");
  assert.equal(hours("Europe/Berlin", "2024-03-31"), 23);
  assert.equal(start("Europe/Berlin", "2024-10-27"), "2024-10-26T22:00:00.000Z");
  assert.equal(hours("Europe/Berlin", "2024-10-27"), 25);
  assert.equal(hours("Europe/Berlin", "2024-03-30"), 24);
  assert.equal(hours("Europe/Berlin", "2024-10-28"), 24);
});

test("America/New_York: 2024-03-10 lasts 23 h, 2024-11-03 lasts 25 h", () => {
  assert.equal(start("America/New_York", "2024-03-10"), "2024-03-10T05:00:00.000Z");
  assert.equal(hours("America/New_York", "2024-03-10"), 23);
  assert.equal(start("America/New_York", "2024-11-03"), "2024-11-03T04:00:00.000Z");
  assert.equal(hours("America/New_York", "2024-11-03"), 25);
});

test("a DST jump that skips midnight: the day starts at the jump (Santiago, Havana)", () => {
  // Chile: 2024-09-08 00:00 -04 → 01:00 -03. The day begins at 01:00 local = 04:00Z and lasts 23 h.
  assert.equal(start("America/Santiago", "2024-09-08"), "2024-09-08T04:00:00.000Z");
  assert.equal(hours("America/Santiago", "2024-09-08"), 23);
  assert.equal(hours("America/Santiago", "2024-09-07"), 24);
  // Cuba: 2024-03-10 00:00 -05 → 01:00 -04.
  assert.equal(start("America/Havana", "2024-03-10"), "2024-03-10T05:00:00.000Z");
  assert.equal(hours("America/Havana", "2024-03-10"), 23);
});

test("a fall-back that repeats midnight: the FIRST midnight starts the day (Havana 2024-11-03)", () => {
  assert.equal(start("America/Havana", "2024-11-03"), "2024-11-03T04:00:00.000Z");
  assert.equal(hours("America/Havana", "2024-11-03"), 25);
});

test("a day a zone skipped entirely has no length (Pacific/Apia 2011-12-30)", () => {
  assert.equal(hours("Pacific/Apia", "2011-12-30"), 0);
  assert.equal(hours("Pacific/Apia", "2011-12-29"), 24);
  assert.equal(hours("Pacific/Apia", "2011-12-31"), 24);
});

test("half-hour zones and half-hour DST (Kolkata, Lord Howe)", () => {
  assert.equal(start("Asia/Kolkata", "2024-01-01"), "2023-12-31T18:30:00.000Z");
  assert.equal(hours("Australia/Lord_Howe", "2024-04-07"), 24.5);
  assert.equal(hours("Australia/Lord_Howe", "2024-10-06"), 23.5);
});

test("every day of 2024 in five zones: start is local midnight-or-later and days tile the year", () => {
  for (const zone of ["UTC", "Europe/Berlin", "America/New_York", "Australia/Sydney", "America/Santiago"]) {
    let day = { y: 2024, m: 1, d: 1 };
    let total = 0;
    for (let i = 0; i < 366; i++) {
      const s = startOfLocalDay(day, zone);
      assert.deepEqual(localDate(s, zone), day, `${zone} ${formatDate(day)}`);
      assert.notDeepEqual(localDate(s - 1, zone), day, `${zone} ${formatDate(day)} starts earlier`);
      const next = addDays(day, 1);
      total += startOfLocalDay(next, zone) - s;
      day = next;
    }
    // The year's DST changes cancel out except where the zone changed offset across New Year.
    assert.equal(total, startOfLocalDay({ y: 2025, m: 1, d: 1 }, zone) - startOfLocalDay({ y: 2024, m: 1, d: 1 }, zone));
    assert.equal(Math.round(total / 86_400_000), 366);
  }
});

test("calendar helpers: addDays across months and leap day, ISO weekday, Monday of the week", () => {
  assert.deepEqual(addDays({ y: 2024, m: 2, d: 28 }, 1), { y: 2024, m: 2, d: 29 });
  assert.deepEqual(addDays({ y: 2024, m: 12, d: 31 }, 1), { y: 2025, m: 1, d: 1 });
  assert.equal(isoWeekday({ y: 2024, m: 3, d: 31 }), 7); // a Sunday
  assert.deepEqual(mondayOf({ y: 2024, m: 3, d: 31 }), { y: 2024, m: 3, d: 25 });
  assert.deepEqual(mondayOf({ y: 2024, m: 3, d: 25 }), { y: 2024, m: 3, d: 25 });
  assert.equal(formatDate({ y: 2026, m: 3, d: 9 }), "2026-03-09");
});

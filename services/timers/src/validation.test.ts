import assert from "node:assert/strict";
import { test } from "node:test";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { Violation } from "@crm/kit";
import { manualRangeViolations } from "./rules.js";
import { descriptionViolations, idViolations, pageSizeViolations, pastInstant, zoneOf } from "./validation.js";

const now = Date.parse("2024-06-01T12:00:00Z");

test("description: at most 1000 characters (code points, not UTF-16 units), no NUL", () => {
  assert.deepEqual(descriptionViolations(""), []);
  assert.deepEqual(descriptionViolations("😀".repeat(1000)), []);
  assert.match(descriptionViolations("x".repeat(1001))[0]!.description, /at most 1000 characters \(got 1001\)/);
  assert.equal(descriptionViolations("a\u0000b")[0]!.field, "description");
  assert.deepEqual(descriptionViolations(undefined), []);
});

test("ids: UUIDs; empty allowed only where optional", () => {
  assert.deepEqual(idViolations("", "userId", "user", true), []);
  assert.match(idViolations("", "timerId", "timer", false)[0]!.description, /is required/);
  assert.match(idViolations("42", "timerId", "timer", false)[0]!.description, /must be a timer id/);
  assert.deepEqual(idViolations("0b4e7c1a-6a4b-4bb4-9d0f-6f1b2a3c4d5e", "timerId", "timer", false), []);
});

test("times: not in the future beyond the clock skew; within 1970..9999", () => {
  const v: Violation[] = [];
  assert.equal(pastInstant(timestampFromMs(now + 5_000), "startTime", now, 10_000, v), now + 5_000);
  assert.equal(pastInstant(timestampFromMs(now + 60_000), "startTime", now, 10_000, v), undefined);
  assert.equal(pastInstant({ seconds: -5n, nanos: 0 } as never, "endTime", now, 10_000, v), undefined);
  assert.deepEqual(v.map((x) => x.field), ["startTime", "endTime"]);
  assert.match(v[0]!.description, /must not be in the future/);
});

test("manual ranges: end after start, at most 24 h", () => {
  assert.deepEqual(manualRangeViolations(now - 3_600_000, now), []);
  assert.match(manualRangeViolations(now, now)[0]!.description, /must be after startTime/);
  assert.match(manualRangeViolations(now, now - 1)[0]!.description, /must be after startTime/);
  assert.deepEqual(manualRangeViolations(now - 24 * 3_600_000, now), []);
  assert.match(manualRangeViolations(now - 24 * 3_600_000 - 1, now)[0]!.description, /at most 24 hours/);
});

test("page size 0..500; zone names", () => {
  assert.deepEqual(pageSizeViolations(0), []);
  assert.equal(pageSizeViolations(501)[0]!.field, "pageSize");
  const v: Violation[] = [];
  assert.equal(zoneOf("", v), "UTC");
  assert.equal(zoneOf("america/new_york", v), "America/New_York");
  zoneOf("Europe/Atlantis", v);
  assert.equal(v[0]!.field, "timeZone");
});

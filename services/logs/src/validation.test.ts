import assert from "node:assert/strict";
import { test } from "node:test";
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { AppError } from "@crm/kit";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { LogEntrySchema, LogLevel, SaveLogsRequestSchema } from "@crm/gen/crm/logs/v1/logs_pb";
import { lokiPayload } from "./loki.js";
import { limits, truncateBytes, validateSaveLogs } from "./validation.js";

const now = Date.UTC(2026, 0, 15, 12);
const company = "7d0a1e52-4b0e-4d59-8f3b-0f9a3c6a1f10";
const user = "0c4b3c1a-9d7e-4c1e-9a55-2f7e0a7d9b11";
const service = { service: "chats" } as const;
const req = (...entries: MessageInitShape<typeof LogEntrySchema>[]) => create(SaveLogsRequestSchema, { entries: entries.map((e) => ({ name: "chats", level: LogLevel.ERROR, message: "boom", ...e })) });

function violations(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof AppError);
    assert.equal(err.reason, "invalid_argument");
    return err.violations.map((v) => v.field);
  }
  assert.fail("expected invalid_argument");
}

test("a good entry is normalized: level names, receive time when unset, lower-case trace id", () => {
  const [r] = validateSaveLogs(req({ level: LogLevel.UNSPECIFIED, traceId: "4BF92F3577B34DA6A3CE929D0E0E4736", attributes: { rpc: "/x/Y" } }), service, now);
  assert.equal(r!.level, "info");
  assert.equal(r!.traceId, "4bf92f3577b34da6a3ce929d0e0e4736");
  assert.equal(r!.timeNs, BigInt(now) * 1_000_000n);
  assert.deepEqual(r!.attributes, { rpc: "/x/Y" });
});

test("an explicit time keeps its nanoseconds", () => {
  const t = timestampFromMs(now - 1000);
  t.nanos += 123;
  const [r] = validateSaveLogs(req({ time: t }), service, now);
  assert.equal(r!.timeNs, BigInt(now - 1000) * 1_000_000n + 123n);
});

test("with a user token, company and user come from the token whatever the entry says", () => {
  const [r] = validateSaveLogs(req({ companyId: "11111111-1111-4111-8111-111111111111", userId: "x" }), { user: { companyId: company, userId: user } }, now);
  assert.equal(r!.companyId, company);
  assert.equal(r!.userId, user);
});

test("a service may set company and user, but only as UUIDs", () => {
  const [r] = validateSaveLogs(req({ companyId: company, userId: user }), service, now);
  assert.equal(r!.companyId, company);
  assert.deepEqual(violations(() => validateSaveLogs(req({ companyId: "acme", userId: "42" }), service, now)), ["entries[0].companyId", "entries[0].userId"]);
});

test("every bad field is named, per entry, and nothing is returned", () => {
  const fields = violations(() =>
    validateSaveLogs(
      req(
        {},
        { name: "", message: " " },
        { level: 42 as LogLevel },
        { name: "has space" },
        { traceId: "abc" },
        { traceId: "0".repeat(32) },
        { attributes: { "1bad": "x" } },
        { attributes: Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`k${i}`, "v"])) },
        { time: timestampFromMs(now - 8 * 24 * 3600_000) },
        { time: timestampFromMs(now + 11 * 60_000) },
        { name: "x".repeat(65) },
      ),
      service,
      now,
    ),
  );
  assert.deepEqual(fields, [
    "entries[1].name",
    "entries[1].message",
    "entries[2].level",
    "entries[3].name",
    "entries[4].traceId",
    "entries[5].traceId",
    'entries[6].attributes["1bad"]',
    "entries[7].attributes",
    "entries[8].time",
    "entries[9].time",
    "entries[10].name",
  ]);
});

test("no entries is invalid; more than 1000 is resource_exhausted", () => {
  assert.deepEqual(violations(() => validateSaveLogs(req(), service, now)), ["entries"]);
  const many = create(SaveLogsRequestSchema, { entries: Array.from({ length: limits.entries + 1 }, () => ({ name: "chats", message: "m" })) });
  assert.throws(() => validateSaveLogs(many, service, now), (err) => err instanceof AppError && err.reason === "too_large");
});

test("a long message is truncated to 16 KiB on a character boundary; long attribute values to 4 KiB", () => {
  const [r] = validateSaveLogs(req({ message: "ж".repeat(20_000), attributes: { stack: "s".repeat(10_000) } }), service, now);
  assert.ok(Buffer.byteLength(r!.message) <= limits.messageMaxBytes);
  assert.ok(r!.message.endsWith("…"));
  assert.ok(!r!.message.includes("\uFFFD"));
  assert.ok(Buffer.byteLength(r!.attributes.stack!) <= limits.attributeValueMaxBytes);
  assert.equal(truncateBytes("short", 100), "short");
});

test("payload: one stream per label set, values sorted by time, ids never labels", () => {
  const records = validateSaveLogs(
    req(
      { message: "late", time: timestampFromMs(now - 10), traceId: "4bf92f3577b34da6a3ce929d0e0e4736" },
      { message: "early", time: timestampFromMs(now - 20) },
      { message: "warn", level: LogLevel.WARN },
    ),
    { user: { companyId: company, userId: user } },
    now,
  );
  const p = lokiPayload(records, { companyLabel: false, structuredMetadata: false });
  assert.equal(p.streams.length, 2);
  const errors = p.streams.find((s) => s.stream.level === "error")!;
  assert.deepEqual(errors.stream, { service: "chats", level: "error" });
  assert.deepEqual(errors.values.map((v) => (JSON.parse(v[1]) as { msg: string }).msg), ["early", "late"]);
  assert.equal(errors.values[0]!.length, 2, "no structured metadata unless configured");
  for (const s of p.streams) for (const k of Object.keys(s.stream)) assert.ok(["service", "level"].includes(k));
});

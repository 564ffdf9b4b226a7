/**
 * LogsService's handler in memory: the service built by its factory, served through the kit's
 * interceptors, handing records to an in-memory sink. Shipping to Loki and the service identities
 * over TLS: ../test/*.test.ts.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { LogLevel, LogsService, type LogEntrySchema } from "@crm/gen/crm/logs/v1/logs_pb";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { expectError, inMemory, type Who } from "@crm/testkit";
import { logsService } from "./logs-service.js";
import type { Sink } from "./shipper.js";
import type { LogRecord } from "./validation.js";

const NOW = Date.parse("2026-03-04T12:00:00.000Z");
const OTHER_COMPANY = "11111111-1111-4111-8111-111111111111";
const OTHER_USER = "22222222-2222-4222-8222-222222222222";

function setup() {
  const world = inMemory();
  const pushed: LogRecord[][] = [];
  const sink: Sink = { push: (r) => void pushed.push(r), pushAndWait: async (r) => void pushed.push(r), flush: async () => {}, close: async () => {} };
  const api = world.serve((r) => r.service(LogsService, logsService({ sink, now: () => NOW })));
  const user = world.user();
  const logs = (who: Who = {}) => world.client(LogsService, api, who);
  return { world, pushed, user, logs };
}

type Entry = MessageInitShape<typeof LogEntrySchema>;
const entry = (e: Omit<Entry, "$typeName"> = {}): Entry => ({ name: "web", message: "clicked", ...e });

test("a user's entries are taken with the token's company and user, whatever the entries say", async () => {
  const s = setup();
  const res = await s.logs({ user: s.user }).saveLogs({
    entries: [
      entry({ level: LogLevel.WARN, traceId: "4BF92F3577B34DA6A3CE929D0E0E4736", attributes: { page: "/chats", "http.status": "500" }, time: timestampFromMs(NOW - 60_000) }),
      entry({ companyId: OTHER_COMPANY, userId: OTHER_USER, message: "spoofed" }),
    ],
  });
  assert.equal(res.accepted, 2);
  assert.equal(s.pushed.length, 1, "one push per call");
  const [first, second] = s.pushed[0]!;
  assert.deepEqual(
    [first!.name, first!.level, first!.companyId, first!.userId, first!.traceId, first!.attributes, first!.timeNs],
    ["web", "warn", s.user.companyId, s.user.userId, "4bf92f3577b34da6a3ce929d0e0e4736", { page: "/chats", "http.status": "500" }, BigInt(NOW - 60_000) * 1_000_000n],
  );
  assert.deepEqual([second!.level, second!.companyId, second!.userId, second!.timeNs], ["info", s.user.companyId, s.user.userId, BigInt(NOW) * 1_000_000n], "no level: info; no time: now");
});

test("one of our services writes entries for any company and user, as sent; nobody else may write", async () => {
  const s = setup();
  await s.logs({ service: "chats" }).saveLogs({ entries: [entry({ companyId: OTHER_COMPANY, userId: OTHER_USER }), entry()] });
  assert.deepEqual(s.pushed[0]!.map((r) => [r.companyId, r.userId]), [[OTHER_COMPANY, OTHER_USER], ["", ""]]);
  await expectError(s.logs({ service: "chats" }).saveLogs({ entries: [entry({ companyId: "acme", userId: "42" })] }), Code.InvalidArgument, { fields: ["entries[0].companyId", "entries[0].userId"] });
  await expectError(s.logs().saveLogs({ entries: [entry()] }), Code.Unauthenticated, { reason: "unauthenticated" });
  await expectError(s.logs({ service: "gateway" }).saveLogs({ entries: [entry()] }), Code.Unauthenticated, { message: /needs an access token/ });
  assert.equal(s.pushed.length, 1);
});

test("bad entries are invalid_argument naming each field of each entry, and nothing of the call is kept", async () => {
  const s = setup();
  const me = s.logs({ user: s.user });
  await expectError(
    me.saveLogs({
      entries: [
        entry(),
        entry({ name: "", level: 9 as LogLevel, message: "  " }),
        entry({ name: "-web", traceId: "0".repeat(32), time: timestampFromMs(NOW - 8 * 24 * 3_600_000) }),
        entry({ traceId: "xyz", time: timestampFromMs(NOW + 11 * 60_000), attributes: { "1st": "v", fine: "v" } }),
      ],
    }),
    Code.InvalidArgument,
    {
      reason: "invalid_argument",
      fields: ["entries[1].name", "entries[1].level", "entries[1].message", "entries[2].name", "entries[2].traceId", "entries[2].time", "entries[3].traceId", 'entries[3].attributes["1st"]', "entries[3].time"],
    },
  );
  await expectError(me.saveLogs({ entries: [entry({ name: "we\u0000b" })] }), Code.InvalidArgument, { fields: ["entries[0].name"], message: /control character U\+0000/ });
  await expectError(me.saveLogs({ entries: [] }), Code.InvalidArgument, { fields: ["entries"] });
  await expectError(me.saveLogs({ entries: Array.from({ length: 1001 }, () => entry()) }), Code.ResourceExhausted, { reason: "too_large", fields: ["entries"] });
  const many = await expectError(me.saveLogs({ entries: Array.from({ length: 30 }, () => entry({ name: "" })) }), Code.InvalidArgument);
  assert.equal(many.violations.length, 21, "a screenful, then how many more");
  assert.deepEqual(many.violations.at(-1), { field: "entries", description: "10 more problems not listed" });
  const attributes = Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`k${i}`, "v"]));
  await expectError(me.saveLogs({ entries: [entry({ attributes })] }), Code.InvalidArgument, { fields: ["entries[0].attributes"], message: /65 pairs; at most 64/ });
  assert.deepEqual(s.pushed, []);
});

test("long messages and attribute values are cut on a character boundary and marked", async () => {
  const s = setup();
  await s.logs({ user: s.user }).saveLogs({ entries: [entry({ message: "é".repeat(10_000), attributes: { stack: `Error\n${"x".repeat(5000)}` } })] });
  const [r] = s.pushed[0]!;
  assert.ok(Buffer.byteLength(r!.message) <= 16 * 1024 && r!.message.endsWith("é…"), "16 KiB at most, whole characters");
  assert.ok(Buffer.byteLength(r!.attributes.stack!) <= 4 * 1024 && r!.attributes.stack!.startsWith("Error\nxxx") && r!.attributes.stack!.endsWith("…"));
});

test("wait_shipped: the answer waits for the sink to ship the entries, and is unavailable when it cannot", async () => {
  const world = inMemory();
  let outcome: "ok" | "dropped" = "ok";
  const waited: LogRecord[][] = [];
  const sink: Sink = {
    push: () => assert.fail("wait_shipped entries go through pushAndWait"),
    pushAndWait: async (r) => {
      waited.push(r);
      if (outcome === "dropped") throw new Error("the log buffer was full (Loki is slow or down)");
    },
    flush: async () => {},
    close: async () => {},
  };
  const logs = world.client(LogsService, world.serve((r) => r.service(LogsService, logsService({ sink, now: () => NOW }))), { service: "admin" });
  assert.equal((await logs.saveLogs({ entries: [entry()], waitShipped: true })).accepted, 1);
  outcome = "dropped";
  await expectError(logs.saveLogs({ entries: [entry()], waitShipped: true }), Code.Unavailable, { message: /not shipped to Loki yet \(the log buffer was full.*send them again/ });
  assert.equal(waited.length, 2);
});

/**
 * AuditService's handlers and the audit log's shipping, in memory: the service built by its
 * factory, served through the kit's interceptors over an in-memory DbAuditService
 * (../test/fake-audit-store.ts) on the auth fake's directory; the shipping consumer on the
 * in-memory bus, delivering to a served LogsService stand-in. The same on real servers:
 * services/auth/test/api-keys-e2e.test.ts and ../store/audit-store.test.ts.
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { test } from "node:test";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, createClient } from "@connectrpc/connect";
import Papa from "papaparse";
import { createLogger, memoryBus, type Principal, type Role } from "@crm/kit";
import { ActorType, AuditService } from "@crm/gen/crm/admin/v1/audit_pb";
import { DbAuditService } from "@crm/gen/crm/db/v1/db_audit_pb";
import { LogsService, type LogEntry } from "@crm/gen/crm/logs/v1/logs_pb";
import { auditEvent } from "@crm/contracts/events";
import { expectError, inMemory, tap, until } from "@crm/testkit";
import { fakeDirectory, type StoredUser } from "../../auth/test/fake-store.js";
import { fakeAuditStore, toAuditEvent } from "../test/fake-audit-store.js";
import { auditCsv, auditService, csvColumns } from "./audit-service.js";
import { shipAuditEvents } from "./audit-shipping.js";

const NOW = Date.parse("2026-03-04T12:00:00.000Z");

function setup() {
  const clock = { now: NOW };
  const world = inMemory();
  const dir = fakeDirectory(() => clock.now);
  const db = createClient(DbAuditService, world.serve((r) => r.service(DbAuditService, fakeAuditStore(dir)), { from: "admin" }));
  const api = world.serve((r) => r.service(AuditService, auditService({ db })));
  const company = dir.addCompany();
  const person = (role: Role, companyId = company): [StoredUser, Principal] => {
    const u = dir.addUser(companyId, { role, name: `${role} person` });
    return [u, world.user({ userId: u.id, companyId, role })];
  };
  const [ownerRow, owner] = person("owner");
  const [, admin] = person("admin");
  const [, member] = person("member");
  const [foreignRow, foreigner] = person("owner", dir.addCompany());
  /** `n` events a minute apart, alternating actions, by the owner. */
  const events = (n: number, companyId = company, actor = ownerRow) => {
    for (let i = 0; i < n; i++) {
      clock.now += 60_000;
      dir.record(companyId, { action: i % 2 ? "auth.logout" : "auth.login", actor: { type: "user", id: actor.id, name: "", userId: actor.id }, target: { type: "session", id: randomUUID() }, ip: "192.0.2.1" });
    }
  };
  const audit = (p: Principal | { token: string }) => world.client(AuditService, api, "userId" in p ? p : { token: p.token });
  return { clock, world, dir, api, company, owner, ownerRow, admin, member, foreigner, foreignRow, events, audit };
}

test("owners and admins list their company's events, newest first, in keyset pages; members and other companies cannot", async () => {
  const s = setup();
  s.events(5);
  s.events(3, s.foreignRow.companyId, s.foreignRow);
  const first = await s.audit(s.owner).listAuditEvents({ pageSize: 2 });
  assert.equal(first.events.length, 2);
  const second = await s.audit(s.admin).listAuditEvents({ pageSize: 2, pageToken: first.nextPageToken });
  const third = await s.audit(s.owner).listAuditEvents({ pageSize: 2, pageToken: second.nextPageToken });
  assert.equal(third.nextPageToken, "");
  const seen = [...first.events, ...second.events, ...third.events];
  assert.equal(seen.length, 5, "exactly the company's events, each once");
  assert.deepEqual(seen.map((e) => e.eventId), s.dir.audit.filter((e) => e.companyId === s.company).reverse().map((e) => e.id));
  assert.equal(seen[0]!.actorName, "owner person");
  await expectError(s.audit(s.member).listAuditEvents({}), Code.PermissionDenied);
  assert.equal((await s.audit(s.foreigner).listAuditEvents({})).events.length, 3);
});

test("filters: actor, actions, a half-open time range; bad filters are invalid_argument naming each field", async () => {
  const s = setup();
  s.events(6);
  const [adminRow] = [s.dir.users.get(s.admin.userId)!];
  s.events(2, s.company, adminRow);
  const byAdmin = await s.audit(s.owner).listAuditEvents({ actorId: s.admin.userId });
  assert.equal(byAdmin.events.length, 2);
  const logouts = await s.audit(s.owner).listAuditEvents({ actions: ["auth.logout"] });
  assert.ok(logouts.events.length === 4 && logouts.events.every((e) => e.action === "auth.logout"));
  const times = s.dir.audit.map((e) => e.occurredAt);
  const window = await s.audit(s.owner).listAuditEvents({ startTime: timestampFromMs(times[1]!), endTime: timestampFromMs(times[3]!) });
  assert.deepEqual(window.events.map((e) => e.eventId), [s.dir.audit[2]!.id, s.dir.audit[1]!.id]);
  await expectError(
    s.audit(s.owner).listAuditEvents({ actorId: "x", actions: ["Login!"], startTime: timestampFromMs(NOW), endTime: timestampFromMs(NOW), pageSize: 501 }),
    Code.InvalidArgument,
    { fields: ["actorId", "actions[0]", "endTime"] },
  );
  await expectError(s.audit(s.owner).listAuditEvents({ pageSize: 501 }), Code.InvalidArgument, { fields: ["pageSize"] });
  await expectError(s.audit(s.owner).listAuditEvents({ pageToken: "garbage" }), Code.InvalidArgument, { fields: ["pageToken"] });
});

test("an API key needs the admin scope (and its creator's role) to read the audit log", async () => {
  const s = setup();
  s.events(1);
  const key = (scopes: string[]) => s.world.user({ userId: s.owner.userId, companyId: s.company, role: "owner", apiKey: { id: randomUUID(), name: "k", scopes: new Set(scopes), requestsPerMinute: 100 } });
  assert.equal((await s.audit(key(["admin"])).listAuditEvents({})).events.length, 1);
  await expectError(s.audit(key(["deals:read", "deals:write"])).listAuditEvents({}), Code.PermissionDenied, { message: /lacks the scope admin/ });
});

test("the export: CSV with a header, every event once across the store's pages, cells escaped", async () => {
  const s = setup();
  s.events(1203);
  s.dir.record(s.company, { action: "api_key.created", actor: { type: "user", id: s.owner.userId, name: '=HYPERLINK("http://evil")', userId: s.owner.userId }, details: { name: 'a, "quoted"\nname' } });
  const chunks: string[] = [];
  for await (const c of s.audit(s.owner).exportAuditEvents({})) chunks.push(c.csv);
  assert.equal(chunks.length, 2, "one chunk per store page of 1000");
  assert.ok(chunks.every((c) => c.endsWith("\r\n")), "whole lines");
  const parsed = Papa.parse<string[]>(chunks.join(""), { skipEmptyLines: true });
  assert.deepEqual(parsed.data[0], [...csvColumns]);
  assert.equal(parsed.data.length, 1 + 1204);
  const evil = parsed.data[1]!;
  assert.equal(evil[csvColumns.indexOf("actor_name")], `'=HYPERLINK("http://evil")`, "a formula is not run by a spreadsheet");
  assert.deepEqual(JSON.parse(evil[csvColumns.indexOf("details")]!), { name: 'a, "quoted"\nname' });
  const filtered: string[] = [];
  for await (const c of s.audit(s.owner).exportAuditEvents({ actions: ["api_key.created"] })) filtered.push(c.csv);
  assert.equal(Papa.parse(filtered.join(""), { skipEmptyLines: true }).data.length, 2);
  await expectError((async () => { for await (const _ of s.audit(s.member).exportAuditEvents({})) void _; })(), Code.PermissionDenied);
  assert.equal(auditCsv([], false), "");
});

test("shipping: each queued event reaches the logs service as an entry of service audit, and a failed SaveLogs is retried, not lost", async () => {
  const s = setup();
  const world = s.world;
  const received: LogEntry[] = [];
  const logsCalls = tap();
  const logs = createClient(
    LogsService,
    world.serve((r) => r.service(LogsService, { saveLogs: async (req) => (received.push(...req.entries), { accepted: req.entries.length }) }), { from: "admin", tap: logsCalls }),
  );
  const bus = memoryBus(createLogger("test", "silent"));
  const queue = `audit-test-${randomUUID()}`;
  const consumer = await shipAuditEvents({ bus, logs, log: world.log, queue });
  try {
    s.events(2);
    const [a, b] = s.dir.audit.map((e) => ({ ...toAuditEvent(e), occurredAt: timestampFromMs(Date.now()) }));
    logsCalls.failNext(new Error("logs is down"));
    for (const e of [a!, b!]) {
      const msg = auditEvent(e);
      await bus.publish("", queue, msg.payload, { messageId: msg.messageId, headers: msg.headers });
    }
    await until("both events shipped", () => received.length === 2, 10_000);
    assert.deepEqual(received.map((r) => r.attributes.audit_event_id).sort(), [a!.eventId, b!.eventId].sort());
    const entry = received.find((r) => r.attributes.audit_event_id === a!.eventId)!;
    assert.equal(entry.name, "audit");
    assert.equal(entry.companyId, s.company);
    assert.equal(entry.message, `auth.login by owner person session ${a!.targetId}`);
    assert.equal(entry.attributes.actor_type, "user");
    assert.equal(ActorType[a!.actorType], "USER");
    assert.equal(logsCalls.calls.length, 3, "one failed, retried");
  } finally {
    await consumer.close();
    await bus.close();
  }
});

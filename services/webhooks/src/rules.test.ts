import assert from "node:assert/strict";
import { test } from "node:test";
import { create } from "@bufbuild/protobuf";
import { ObjectType } from "@crm/gen/crm/records/v1/common_pb";
import { ChangeAction, RecordChangeSchema } from "@crm/gen/crm/records/v1/stream_pb";
import { endpointViolations, eventTypeOf, eventTypeViolations, limits, nextAttemptAt, patternsFor, payloadOf, urlViolations } from "./rules.js";

test("event types: <object>.<action>, matched by itself, <object>.* and *", () => {
  assert.equal(eventTypeOf({ objectType: ObjectType.DEAL, action: ChangeAction.STAGE_CHANGED }), "deal.stage_changed");
  assert.deepEqual(patternsFor("company.created"), ["company.created", "company.*", "*"]);
  assert.deepEqual(eventTypeViolations(["*", "person.*", "deal.restored"]), []);
  assert.deepEqual(eventTypeViolations(["deal.exploded", "x"]).map((v) => v.field), ["eventTypes[0]", "eventTypes[1]"]);
  assert.equal(eventTypeViolations([]).length, 1);
});

test("URLs: absolute http(s) without credentials or fragment", () => {
  assert.deepEqual(urlViolations("https://hooks.example.com/in?x=1"), []);
  for (const bad of ["", "ftp://x.example/", "https://u:p@x.example/", "https://x.example/#f", "not a url"]) assert.equal(urlViolations(bad).length, 1, bad);
});

test("retries: exponential with jitter, never past 24 hours, then give up", () => {
  const t0 = 1_000_000;
  const first = nextAttemptAt(1, t0, t0, 0)!;
  assert.ok(first - t0 >= 500 && first - t0 <= 1000);
  const tenth = nextAttemptAt(10, t0, t0 + 1000, 0.999)! - (t0 + 1000);
  assert.ok(tenth > 250_000 && tenth <= 512_000, String(tenth));
  assert.ok(nextAttemptAt(30, t0, t0 + 1000, 0.5)! - (t0 + 1000) <= 3600_000, "capped at an hour");
  assert.equal(nextAttemptAt(30, t0, t0 + limits.retryWindowMs - 10, 0.9), t0 + limits.retryWindowMs, "the last try is at the 24-hour mark");
  assert.equal(nextAttemptAt(31, t0, t0 + limits.retryWindowMs, 0.5), undefined, "given up after 24 hours");
});

test("the payload carries the event id, type, tenant version and the record", () => {
  const c = create(RecordChangeSchema, { version: 42n, tenantId: "0e6c1a4c-9d7b-4c1e-9b8a-1f2e3d4c5b6a", objectType: ObjectType.COMPANY, recordId: "r1", action: ChangeAction.CREATED, record: { record: { case: "company", value: { id: "r1", name: "Globex" } } } });
  const p = payloadOf(c);
  assert.equal(p.type, "company.created");
  const body = JSON.parse(p.body) as { type: string; data: { event_id: string; tenant_version: string; record: { company: { name: string } } } };
  assert.equal(body.type, "company.created");
  assert.equal(body.data.event_id, p.eventId);
  assert.equal(body.data.tenant_version, "42");
  assert.equal(body.data.record.company.name, "Globex");
  assert.equal(payloadOf(c).eventId, p.eventId, "the same change has the same id");
});

test("endpointViolations (the store's re-check) names each bad field under the given prefix, and passes what the service sends", () => {
  const secret = `whsec_${Buffer.alloc(32, 7).toString("base64")}`;
  assert.deepEqual(endpointViolations({ url: "https://hooks.example.com/crm", eventTypes: ["*"], description: "", secret }), []);
  const bad = endpointViolations({ url: "x".repeat(1 << 20), eventTypes: [], description: "d".repeat(501), secret: "'; DROP TABLE wh_endpoints; --" }, "update.");
  assert.deepEqual(bad.map((v) => v.field), ["update.url", "update.eventTypes", "update.description", "update.secret"]);
  assert.deepEqual(endpointViolations({}), [], "fields not sent are not checked");
});

import assert from "node:assert/strict";
import { test } from "node:test";
import { create, toBinary } from "@bufbuild/protobuf";
import { ObjectType } from "@crm/gen/crm/records/v1/common_pb";
import { ChangeAction, RecordChangeSchema } from "@crm/gen/crm/records/v1/stream_pb";
import { UserChange, UserEventSchema } from "@crm/gen/crm/admin/v1/admin_pb";
import { MessageSchema } from "@crm/gen/crm/chat/v1/chat_pb";
import { ImportFinishedSchema, ImportState } from "@crm/gen/crm/records/v1/import_pb";
import { chatMessagePayload, endpointViolations, eventTypeOf, eventTypeViolations, importFinishedPayload, limits, nextAttemptAt, patternsFor, payloadOf, peekEvent, urlViolations, userEventPayload } from "./rules.js";

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

test("user, import and chat events: their types, and chat messages only for endpoints that name them", () => {
  assert.deepEqual(eventTypeViolations(["user.added", "user.deactivated", "user.*", "import.finished", "import.*", "chat.message", "chat.*"]), []);
  assert.deepEqual(eventTypeViolations(["user.created", "import.started", "chat.read"]).map((v) => v.field), ["eventTypes[0]", "eventTypes[1]", "eventTypes[2]"]);
  assert.deepEqual(patternsFor("user.added"), ["user.added", "user.*", "*"]);
  assert.deepEqual(patternsFor("import.finished"), ["import.finished", "import.*", "*"]);
  assert.deepEqual(patternsFor("chat.message"), ["chat.message", "chat.*"], "\"*\" does not bring chat messages");
});

test("a user event's payload: its own id as the webhook-id, the tenant version it was queued at, the user and who acted", () => {
  const e = create(UserEventSchema, {
    eventId: "5b0f3c1e-8d2a-4f6b-9c7d-0e1f2a3b4c5d",
    companyId: "0e6c1a4c-9d7b-4c1e-9b8a-1f2e3d4c5b6a",
    change: UserChange.DEACTIVATED,
    user: { userId: "u1", email: "ann@example.com", name: "Ann" },
    actorName: "Olga",
  });
  const p = userEventPayload(e, 7n);
  assert.equal(p.type, "user.deactivated");
  assert.equal(p.eventId, "evt_5b0f3c1e8d2a4f6b9c7d0e1f2a3b4c5d");
  const body = JSON.parse(p.body) as { type: string; data: Record<string, unknown> & { user: { email: string } } };
  assert.equal(body.data.event_id, p.eventId, "the body's event_id is the webhook-id, not the event's UUID");
  assert.equal(body.data.tenant_version, "7");
  assert.equal(body.data.user.email, "ann@example.com");
  assert.equal(body.data.actor_name, "Olga");
  assert.equal(userEventPayload(create(UserEventSchema, { ...e, change: UserChange.ADDED }), 7n).type, "user.added");
});

test("an import's and a chat message's payloads", () => {
  const imp = importFinishedPayload(create(ImportFinishedSchema, { eventId: "5b0f3c1e-8d2a-4f6b-9c7d-0e1f2a3b4c5d", tenantId: "t", import: { id: "i1", state: ImportState.SUCCEEDED, createdCount: 3n } }), 12n);
  assert.equal(imp.type, "import.finished");
  const ib = JSON.parse(imp.body) as { data: { tenant_version: string; import: { state: string; created_count: string } } };
  assert.deepEqual([ib.data.tenant_version, ib.data.import.state, ib.data.import.created_count], ["12", "IMPORT_STATE_SUCCEEDED", "3"]);
  const msg = chatMessagePayload("c1", create(MessageSchema, { messageId: "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d", chatId: "chat1", content: "hi", seq: 4n }), 0n);
  assert.equal(msg.type, "chat.message");
  assert.equal(msg.eventId, "evt_9a8b7c6d5e4f4a3b8c2d1e0f9a8b7c6d", "made from the message id: a redelivered ChatEvent is the same event");
  const mb = JSON.parse(msg.body) as { data: { chat_id: string; company_id: string; message: { content: string; seq: string } } };
  assert.deepEqual([mb.data.chat_id, mb.data.company_id, mb.data.message.content, mb.data.message.seq], ["chat1", "c1", "hi", "4"]);
});

test("peekEvent reads an event's tenant and type from its wire form, and nothing from other bytes", () => {
  const tenantId = "3f9c2a4e-8a51-4a51-9c3e-2f1f5d6e7a8b";
  const change = create(RecordChangeSchema, { version: 7n, tenantId, objectType: ObjectType.DEAL, action: ChangeAction.STAGE_CHANGED, recordId: "r", record: { record: { case: "deal", value: { name: "Big" } } }, changes: [{ field: "stage" }] });
  assert.deepEqual(peekEvent("record", toBinary(RecordChangeSchema, change)), { tenantId, type: "deal.stage_changed" });
  const user = create(UserEventSchema, { eventId: "e", companyId: tenantId, change: UserChange.DEACTIVATED, user: { userId: "u", email: "a@example.com" } });
  assert.deepEqual(peekEvent("user", toBinary(UserEventSchema, user)), { tenantId, type: "user.deactivated" });
  assert.deepEqual(peekEvent("user", toBinary(UserEventSchema, { ...user, change: UserChange.ADDED })), { tenantId, type: "user.added" });
  assert.deepEqual(peekEvent("user", toBinary(UserEventSchema, { ...user, change: UserChange.ACTIVATED })), { tenantId, type: "user.activated" });
  assert.deepEqual(eventTypeViolations(["user.activated"]), [], "an endpoint may name it");
  assert.ok(patternsFor("user.activated").includes("user.*") && patternsFor("user.activated").includes("*"));
  const imp = create(ImportFinishedSchema, { eventId: "e", tenantId, import: { state: ImportState.SUCCEEDED } });
  assert.deepEqual(peekEvent("import", toBinary(ImportFinishedSchema, imp)), { tenantId, type: "import.finished" });
  assert.equal(peekEvent("record", new Uint8Array([0xff, 0xff, 0xff])), undefined, "not a message");
  assert.equal(peekEvent("record", new Uint8Array()), undefined, "no tenant");
});

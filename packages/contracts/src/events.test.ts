import assert from "node:assert/strict";
import { test } from "node:test";
import { fromBinary } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { ChatEventSchema } from "@crm/gen/crm/chat/v1/chat_pb";
import { EmailTaskSchema } from "@crm/gen/crm/email/v1/email_pb";
import {
  chatEvent, decodeChatEvent, decodeRecordChange, encodeEvent, EVENT_CONTENT_TYPE, EVENT_TYPE_HEADER, RECORD_CHANGE_VERSION_FIELD, recordChangeEvent, recordChangeVersionField,
  unversionedRecordChange,
} from "./events.js";

const chatId = "6f1c2f4e-8a55-4a43-9d55-0d2b0c7e1a11";
const companyId = "0b8d9a3c-6e0f-4f0e-8a8e-5f4f2b1d7c22";
const message = {
  messageId: "9d2f0c1a-3b4c-4d5e-8f60-718293a4b5c6",
  chatId,
  seq: 42n,
  senderId: "1a2b3c4d-5e6f-4a1b-8c2d-3e4f5a6b7c8d",
  content: "привет \"quoted\" \\ <b>",
  createdAt: timestampFromDate(new Date("2026-11-25T10:11:12.345Z")),
  clientMessageId: "c-1",
};

test("a ChatEvent goes to chat.events under its chat's key, as binary protobuf naming its type", () => {
  const e = chatEvent({ chatId, companyId, event: { case: "message", value: message } });
  assert.equal(e.exchange, "chat.events");
  assert.equal(e.routingKey, `chat.${chatId}`);
  assert.equal(e.contentType, EVENT_CONTENT_TYPE);
  assert.deepEqual(e.headers, { [EVENT_TYPE_HEADER]: "crm.chat.v1.ChatEvent" });
  const back = decodeChatEvent(e.payload, e.contentType);
  assert.equal(back.companyId, companyId);
  assert.ok(back.event.case === "message");
  assert.equal(back.event.value.seq, 42n);
  assert.equal(back.event.value.content, message.content);
  assert.equal(back.event.value.createdAt?.nanos, 345_000_000);
});

test("any event message encodes the same way", () => {
  const e = encodeEvent(EmailTaskSchema, { emailId: "e", companyId, to: "a@b.co", attempt: 1 });
  assert.equal(e.contentType, "application/protobuf");
  assert.deepEqual(e.headers, { "x-crm-type": "crm.email.v1.EmailTask" });
  assert.equal(fromBinary(EmailTaskSchema, e.payload).to, "a@b.co");
});

test("for one release: the proto JSON older chat stores built in SQL still decodes", () => {
  // Exactly what the SQL wrote (json_build_object; seq as text, createdAt to the millisecond).
  const json = JSON.stringify({
    chatId,
    companyId,
    message: { messageId: message.messageId, chatId, seq: "42", senderId: message.senderId, content: message.content, createdAt: "2026-11-25T10:11:12.345Z", clientMessageId: "" },
  });
  const ev = decodeChatEvent(new TextEncoder().encode(json), "application/json");
  assert.ok(ev.event.case === "message");
  assert.equal(ev.event.value.seq, 42n);
  assert.equal(ev.event.value.content, message.content);
  assert.equal(ev.companyId, companyId);
});

test("bytes that are not a ChatEvent throw", () => {
  assert.throws(() => decodeChatEvent(new TextEncoder().encode("{not json"), "application/json"));
  assert.throws(() => decodeChatEvent(Uint8Array.of(0xff, 0xff, 0xff), EVENT_CONTENT_TYPE));
  // No content type: binary, as every producer now writes.
  assert.equal(decodeChatEvent(chatEvent({ chatId, companyId }).payload, undefined).chatId, chatId);
  assert.equal(fromBinary(ChatEventSchema, chatEvent({ chatId, companyId }).payload).companyId, companyId);
});

test("an unversioned RecordChange with its version's bytes put before it decodes as the versioned event", () => {
  const init = { tenantId: companyId, recordId: chatId, objectType: 3, action: 2, changeTime: message.createdAt };
  for (const version of [1n, 127n, 128n, 300n, 16_384n, 9_007_199_254_740_993n]) {
    const bare = unversionedRecordChange(init);
    const whole = recordChangeEvent({ ...init, version });
    assert.equal(bare.routingKey, whole.routingKey);
    assert.equal(bare.exchange, whole.exchange);
    const spliced = Uint8Array.from([...recordChangeVersionField(version), ...bare.payload]);
    assert.deepEqual(spliced, whole.payload, `version ${version}: the same bytes as the event built whole`);
    const back = decodeRecordChange(spliced);
    assert.equal(back.version, version);
    assert.equal(back.tenantId, companyId);
    assert.equal(back.recordId, chatId);
  }
  assert.equal(RECORD_CHANGE_VERSION_FIELD, 1);
});

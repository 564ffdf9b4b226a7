import assert from "node:assert/strict";
import { test } from "node:test";
import { create, toBinary } from "@bufbuild/protobuf";
import { createLogger, memoryBus } from "@crm/kit";
import { ChatEventSchema } from "@crm/gen/crm/chat/v1/chat_pb";
import { CHAT_EVENTS_EXCHANGE, chatRoutingKey } from "@crm/contracts";
import { createHub, type LiveEvent } from "./hub.js";

const log = createLogger("test", "silent");
const event = (chatId: string, companyId: string, seq: number) =>
  toBinary(ChatEventSchema, create(ChatEventSchema, { chatId, companyId, event: { case: "message", value: { chatId, seq: BigInt(seq), content: `m${seq}` } } }));

async function settle(cond: () => boolean) {
  for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setTimeout(r, 5));
  assert.ok(cond());
}

test("hub: one binding per chat shared by its watchers, events only to the right chat and company, released after the grace period", async () => {
  const bus = memoryBus(log);
  const hub = await createHub({ bus, log, unbindGraceMs: 20 });
  const got: Record<string, LiveEvent[]> = { a1: [], a2: [], b: [] };
  const stopA1 = await hub.watch("chat-a", "co-1", (e) => void got.a1!.push(e));
  const stopA2 = await hub.watch("chat-a", "co-1", (e) => void got.a2!.push(e));
  const stopB = await hub.watch("chat-b", "co-1", (e) => void got.b!.push(e));
  assert.equal(hub.boundChats(), 2);
  await bus.publish(CHAT_EVENTS_EXCHANGE, chatRoutingKey("chat-a"), event("chat-a", "co-1", 1));
  await bus.publish(CHAT_EVENTS_EXCHANGE, chatRoutingKey("chat-a"), event("chat-a", "co-2", 2)); // another company's event: ignored
  await bus.publish(CHAT_EVENTS_EXCHANGE, chatRoutingKey("chat-b"), event("chat-b", "co-1", 7));
  await settle(() => got.a1!.length === 1 && got.a2!.length === 1 && got.b!.length === 1);
  assert.equal(got.a1![0]!.kind === "message" && got.a1![0]!.message.seq, 1n);
  stopA1();
  stopA1(); // idempotent
  await bus.publish(CHAT_EVENTS_EXCHANGE, chatRoutingKey("chat-a"), event("chat-a", "co-1", 3));
  await settle(() => got.a2!.length === 2);
  assert.equal(got.a1!.length, 1);
  stopA2();
  stopB();
  await settle(() => hub.boundChats() === 0);
  // Watching again binds again.
  const again: LiveEvent[] = [];
  await hub.watch("chat-a", "co-1", (e) => void again.push(e));
  await bus.publish(CHAT_EVENTS_EXCHANGE, chatRoutingKey("chat-a"), event("chat-a", "co-1", 4));
  await settle(() => again.length === 1);
  await hub.close();
  await bus.close();
});

test("hub: for one release, a message event in the JSON older dbservices wrote still reaches the watchers; garbage is dropped", async () => {
  const bus = memoryBus(log);
  const hub = await createHub({ bus, log, unbindGraceMs: 20 });
  const got: LiveEvent[] = [];
  const stop = await hub.watch("chat-j", "co-1", (e) => void got.push(e));
  const legacy = JSON.stringify({ chatId: "chat-j", companyId: "co-1", message: { messageId: "m", chatId: "chat-j", seq: "5", senderId: "u", content: "old", createdAt: "2026-11-25T10:11:12.345Z", clientMessageId: "" } });
  await bus.publish(CHAT_EVENTS_EXCHANGE, chatRoutingKey("chat-j"), Buffer.from("not an event"), { contentType: "application/json" });
  await bus.publish(CHAT_EVENTS_EXCHANGE, chatRoutingKey("chat-j"), Buffer.from(legacy), { contentType: "application/json" });
  await bus.publish(CHAT_EVENTS_EXCHANGE, chatRoutingKey("chat-j"), event("chat-j", "co-1", 6), { contentType: "application/protobuf" });
  await settle(() => got.length === 2);
  assert.deepEqual(got.map((e) => e.kind === "message" && [e.message.seq, e.message.content]), [[5n, "old"], [6n, "m6"]]);
  stop();
  await hub.close();
  await bus.close();
});

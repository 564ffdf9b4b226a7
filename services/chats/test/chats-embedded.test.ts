/**
 * Chats in the all-in-one with nothing installed: PGlite and the in-memory event bus. The relay
 * cannot LISTEN there; it is woken in-process after each commit, so live delivery stays immediate.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { Code } from "@connectrpc/connect";
import { AuthService } from "@crm/gen/crm/auth/v1/auth_pb";
import { ChatService } from "@crm/gen/crm/chat/v1/chat_pb";
import { type TestApp } from "@crm/testkit";
import { startTestApp } from "@crm/all/test-app";
import { assertSeqs, expectCode, watch } from "./helpers.js";

let app: TestApp;
before(async () => {
  app = await startTestApp({ DATABASE_URL: "", AMQP_URL: "", REDIS_URL: "", CHAT_HEARTBEAT_MS: "60000" });
});
after(async () => {
  await app?.close();
});

test("embedded: create, send, live stream (memory bus), history, unread, idempotent send, bad input", { timeout: 120_000 }, async () => {
  const reg = await app.client(AuthService).registerCompany({ companyName: "Pocket Ltd", email: "pocket@example.com", password: "correct horse battery staple", ownerName: "Pia" });
  const chat = app.client(ChatService, { token: reg.accessToken, protocol: "grpc" });
  const { chat: c } = await chat.createChat({ name: "Notes to self" });
  const id = c!.chatId;
  const live = watch(chat, id, 0n);
  await live.live();
  const started = performance.now();
  for (let i = 1; i <= 30; i++) await chat.sendMessage({ chatId: id, content: `note ${i}`, clientMessageId: `n${i}` });
  assertSeqs(await live.count(30, 10_000), 1, 30);
  assert.ok(performance.now() - started < 10_000);
  assert.equal(live.heartbeats, 1, "delivered live, not by a heartbeat catch-up");
  const again = await chat.sendMessage({ chatId: id, content: "note 1", clientMessageId: "n1" });
  assert.equal(again.replayed, true);
  assert.equal(again.message!.seq, 1n);
  const page = await chat.listMessages({ chatId: id, limit: 10 });
  assert.deepEqual(page.messages.map((m) => Number(m.seq)), [21, 22, 23, 24, 25, 26, 27, 28, 29, 30]);
  assert.equal((await chat.listChats({})).chats[0]!.unreadCount, 0n, "your own messages are never unread");
  await expectCode(chat.sendMessage({ chatId: id, content: "   " }), Code.InvalidArgument, /content/);
  await live.close();
});

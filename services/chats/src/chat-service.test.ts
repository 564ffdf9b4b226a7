/**
 * ChatService's handlers in memory: the service built by its factory, served through the kit's
 * interceptors, over an in-memory DbChatService (../test/fake-store.ts) whose outbox feeds an
 * in-memory hub (../test/fake-hub.ts). The same rules on real servers: ../test/chats-*.test.ts.
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { test } from "node:test";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { Code, createClient, type Client } from "@connectrpc/connect";
import { AppError, type Principal } from "@crm/kit";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { ChatService, type SubscribeRequestSchema, type SubscribeResponse } from "@crm/gen/crm/chat/v1/chat_pb";
import { DbChatService } from "@crm/gen/crm/db/v1/db_chat_pb";
import { expectError, inMemory, tap } from "@crm/testkit";
import { fakeHub } from "../test/fake-hub.js";
import { fakeChatStore } from "../test/fake-store.js";
import { chatService } from "./chat-service.js";

const NOW = Date.parse("2026-03-04T12:00:00.000Z");

function setup(o: { heartbeatMs?: number } = {}) {
  const clock = { now: NOW };
  const world = inMemory();
  const hub = fakeHub();
  const store = fakeChatStore(() => clock.now, hub.emit);
  const storeCalls = tap();
  const db = createClient(DbChatService, world.serve((r) => r.service(DbChatService, store.impl), { from: "chats", tap: storeCalls }));
  // No heartbeat unless a test asks for one: nothing in these tests waits on a timer.
  const impl = chatService({ db, hub, heartbeatMs: o.heartbeatMs ?? 3_600_000, now: () => clock.now });
  const api = world.serve((r) => r.service(ChatService, impl));
  const company = randomUUID();
  const owner = world.user({ companyId: company, role: "owner" });
  const ann = world.user({ companyId: company });
  const bob = world.user({ companyId: company });
  const cy = world.user({ companyId: company });
  const stranger = world.user({ role: "owner" });
  store.addUsers(owner, ann, bob, cy, stranger);
  const chats = (p: Principal | undefined) => world.client(ChatService, api, p ? { user: p } : {});
  return { clock, world, hub, store, storeCalls, owner, ann, bob, cy, stranger, chats };
}

type Setup = ReturnType<typeof setup>;

/** A chat of ann's with bob, holding `n` messages from bob. */
async function chatWith(s: Setup, n = 0) {
  const { chat } = await s.chats(s.ann).createChat({ name: "Launch", memberIds: [s.bob.userId] });
  for (let i = 1; i <= n; i++) await s.chats(s.bob).sendMessage({ chatId: chat!.chatId, content: `m${i}` });
  return chat!.chatId;
}

/** A subscription read one event at a time. */
function subscribe(client: Client<typeof ChatService>, req: MessageInitShape<typeof SubscribeRequestSchema>) {
  const abort = new AbortController();
  const it = client.subscribe(req, { signal: abort.signal })[Symbol.asyncIterator]();
  return {
    /** The next event as "m<seq>" (a message) or "hb<lastSeq>" (a heartbeat). */
    async next(): Promise<string> {
      const r = await it.next();
      assert.ok(!r.done, "the stream ended");
      return label(r.value);
    },
    raw: () => it.next(),
    close: () => abort.abort(),
  };
}

const label = (e: SubscribeResponse) => (e.event.case === "message" ? `m${e.event.value.seq}` : e.event.case === "heartbeat" ? `hb${e.event.value.lastSeq}` : "?");

test("CreateChat: the caller becomes a member, names are trimmed, duplicates ignored", async () => {
  const s = setup();
  const { chat } = await s.chats(s.ann).createChat({ name: "  Launch  ", memberIds: [s.bob.userId, s.bob.userId, s.ann.userId, s.cy.userId] });
  assert.equal(chat?.name, "Launch");
  assert.deepEqual(chat?.memberIds, [s.ann.userId, s.bob.userId, s.cy.userId]);
  assert.equal(chat?.createdBy, s.ann.userId);
  assert.equal(timestampMs(chat!.createdAt!), NOW);
  assert.equal(chat?.lastSeq, 0n);
  const alone = await s.chats(s.bob).createChat({ name: "Notes", memberIds: [] });
  assert.deepEqual(alone.chat?.memberIds, [s.bob.userId]);
});

test("CreateChat refuses bad input naming every field, and users of another company, creating nothing", async () => {
  const s = setup();
  const ann = s.chats(s.ann);
  await expectError(ann.createChat({ name: "   ", memberIds: [s.bob.userId, "bob"] }), Code.InvalidArgument, { reason: "invalid_argument", fields: ["name", "memberIds"], message: /\[1\] "bob"/ });
  await expectError(ann.createChat({ name: "x".repeat(201) }), Code.InvalidArgument, { fields: ["name"], message: /at most 200 characters/ });
  await expectError(ann.createChat({ name: "Big", memberIds: Array.from({ length: 1001 }, () => randomUUID()) }), Code.InvalidArgument, { fields: ["memberIds"], message: /at most 1000/ });
  await expectError(ann.createChat({ name: "Two\nlines" }), Code.InvalidArgument, { fields: ["name"], message: /control character/ });
  assert.deepEqual(s.storeCalls.calls, [], "refused before the store");
  // The store knows who works where: another company's user (or nobody) is named in the refusal.
  const ghost = randomUUID();
  const e = await expectError(ann.createChat({ name: "Leak", memberIds: [s.stranger.userId, ghost] }), Code.InvalidArgument, { fields: ["memberIds"] });
  assert.match(e.violations[0]!.description, new RegExp(`not users of your company: ${s.stranger.userId}, ${ghost}`));
  assert.equal(s.store.chats.size, 0);
});

test("AddMembers adds users of the company once; new members start with the history read", async () => {
  const s = setup();
  const chatId = await chatWith(s, 3);
  const added = await s.chats(s.bob).addMembers({ chatId, userIds: [s.cy.userId, s.cy.userId, s.bob.userId] });
  assert.deepEqual(added.chat?.memberIds, [s.ann.userId, s.bob.userId, s.cy.userId]);
  const again = await s.chats(s.bob).addMembers({ chatId, userIds: [s.cy.userId] });
  assert.deepEqual(again.chat?.memberIds, [s.ann.userId, s.bob.userId, s.cy.userId], "idempotent");
  const [cyView] = (await s.chats(s.cy).listChats({})).chats;
  assert.deepEqual([cyView?.lastReadSeq, cyView?.unreadCount], [3n, 0n]);

  await expectError(s.chats(s.owner).addMembers({ chatId, userIds: [s.owner.userId] }), Code.NotFound, { reason: "not_found", message: /not found, or you are not a member/ });
  await expectError(s.chats(s.stranger).addMembers({ chatId, userIds: [s.stranger.userId] }), Code.NotFound);
  await expectError(s.chats(s.ann).addMembers({ chatId, userIds: [s.stranger.userId] }), Code.InvalidArgument, { fields: ["userIds"], message: /not users of your company/ });
  const calls = s.storeCalls.calls.length;
  await expectError(s.chats(s.ann).addMembers({ chatId: "", userIds: [] }), Code.InvalidArgument, { fields: ["chatId", "userIds"] });
  await expectError(s.chats(s.ann).addMembers({ chatId: "c1", userIds: ["u1"] }), Code.InvalidArgument, { fields: ["chatId", "userIds"] });
  assert.equal(s.storeCalls.calls.length, calls);
  assert.equal(s.store.chats.get(chatId)!.members.size, 3);
});

test("RemoveMember: anyone may leave; removing someone else needs the creator or an owner or admin; a non-member is a no-op", async () => {
  const s = setup();
  const chatId = await chatWith(s);
  await s.chats(s.ann).addMembers({ chatId, userIds: [s.cy.userId, s.owner.userId] });
  await expectError(s.chats(s.bob).removeMember({ chatId, userId: s.cy.userId }), Code.PermissionDenied, { reason: "permission_denied" });
  assert.equal(s.store.chats.get(chatId)!.members.has(s.cy.userId), true);

  const left = await s.chats(s.bob).removeMember({ chatId, userId: s.bob.userId });
  assert.deepEqual(left.chat?.memberIds, [s.ann.userId, s.cy.userId, s.owner.userId], "bob left");
  assert.deepEqual((await s.chats(s.owner).removeMember({ chatId, userId: s.cy.userId })).chat?.memberIds, [s.ann.userId, s.owner.userId], "an owner removes anyone");
  assert.deepEqual((await s.chats(s.ann).removeMember({ chatId, userId: s.owner.userId })).chat?.memberIds, [s.ann.userId], "the creator removes anyone");
  assert.deepEqual((await s.chats(s.ann).removeMember({ chatId, userId: s.bob.userId })).chat?.memberIds, [s.ann.userId], "not a member: nothing changes");
  await expectError(s.chats(s.bob).removeMember({ chatId, userId: s.bob.userId }), Code.NotFound, { message: /not a member/ });
  await expectError(s.chats(s.ann).removeMember({ chatId, userId: "me" }), Code.InvalidArgument, { fields: ["userId"] });
});

test("SendMessage stores gap-free seqs; a repeated clientMessageId returns the first message and stores nothing", async () => {
  const s = setup();
  const chatId = await chatWith(s);
  const ann = s.chats(s.ann);
  const one = await ann.sendMessage({ chatId, content: "  hello\n  world  ", clientMessageId: "k1" });
  assert.deepEqual([one.message?.seq, one.message?.content, one.message?.senderId, one.replayed], [1n, "hello\n  world", s.ann.userId, false]);
  assert.equal((await s.chats(s.bob).sendMessage({ chatId, content: "hi" })).message?.seq, 2n);
  const again = await ann.sendMessage({ chatId, content: "hello (retry)", clientMessageId: "k1" });
  assert.deepEqual([again.replayed, again.message?.messageId, again.message?.content], [true, one.message?.messageId, "hello\n  world"]);
  const bobs = await s.chats(s.bob).sendMessage({ chatId, content: "mine", clientMessageId: "k1" });
  assert.deepEqual([bobs.replayed, bobs.message?.seq], [false, 3n], "the key is per sender");
  assert.deepEqual(s.store.chats.get(chatId)!.messages.map((m) => m.seq), [1n, 2n, 3n]);

  await expectError(s.chats(s.cy).sendMessage({ chatId, content: "let me in" }), Code.NotFound);
  await expectError(s.chats(s.stranger).sendMessage({ chatId, content: "hi" }), Code.NotFound);
});

test("SendMessage refuses bad input naming every field, and stores nothing", async () => {
  const s = setup();
  const chatId = await chatWith(s);
  const ann = s.chats(s.ann);
  const calls = s.storeCalls.calls.length;
  await expectError(ann.sendMessage({ chatId: "general", content: " \n\t ", clientMessageId: "k".repeat(65) }), Code.InvalidArgument, {
    fields: ["chatId", "content", "clientMessageId"],
    message: /content: must not be only whitespace/,
  });
  await expectError(ann.sendMessage({ chatId, content: "" }), Code.InvalidArgument, { fields: ["content"], message: /is required/ });
  await expectError(ann.sendMessage({ chatId, content: "x".repeat(4001) }), Code.InvalidArgument, { fields: ["content"], message: /at most 4000 characters/ });
  await expectError(ann.sendMessage({ chatId, content: "bell\u0007" }), Code.InvalidArgument, { fields: ["content"], message: /U\+0007/ });
  assert.equal(s.storeCalls.calls.length, calls);
  assert.equal(s.store.chats.get(chatId)!.messages.length, 0);
  // 4000 characters (not UTF-16 units) fit.
  assert.equal((await ann.sendMessage({ chatId, content: "😀".repeat(4000) })).message?.seq, 1n);
});

test("ListMessages pages backwards from the newest and forwards from a seq, always in ascending order", async () => {
  const s = setup();
  const chatId = await chatWith(s, 7);
  const ann = s.chats(s.ann);
  const seqs = (r: { messages: { seq: bigint }[] }) => r.messages.map((m) => Number(m.seq));
  const newest = await ann.listMessages({ chatId, limit: 3 });
  assert.deepEqual([seqs(newest), newest.hasMore, newest.nextBeforeSeq, newest.nextAfterSeq, newest.lastSeq], [[5, 6, 7], true, 5n, undefined, 7n]);
  const older = await ann.listMessages({ chatId, limit: 3, beforeSeq: newest.nextBeforeSeq! });
  assert.deepEqual(seqs(older), [2, 3, 4]);
  const oldest = await ann.listMessages({ chatId, limit: 3, beforeSeq: older.nextBeforeSeq! });
  assert.deepEqual([seqs(oldest), oldest.hasMore, oldest.nextBeforeSeq], [[1], false, undefined]);
  const forward = await ann.listMessages({ chatId, limit: 4, afterSeq: 0n });
  assert.deepEqual([seqs(forward), forward.hasMore, forward.nextAfterSeq], [[1, 2, 3, 4], true, 4n]);
  assert.deepEqual(seqs(await ann.listMessages({ chatId })), [1, 2, 3, 4, 5, 6, 7], "0 means 50");

  const calls = s.storeCalls.calls.length;
  await expectError(ann.listMessages({ chatId, beforeSeq: 0n, afterSeq: -1n, limit: 201 }), Code.InvalidArgument, { fields: ["beforeSeq", "beforeSeq", "afterSeq", "limit"] });
  assert.equal(s.storeCalls.calls.length, calls);
  await expectError(s.chats(s.cy).listMessages({ chatId }), Code.NotFound);
});

test("ListChats: the caller's chats, most recent activity first, with their unread counts, paged", async () => {
  const s = setup();
  const a = await chatWith(s, 2);
  s.clock.now += 1000;
  const { chat: b } = await s.chats(s.bob).createChat({ name: "Later", memberIds: [s.ann.userId] });
  s.clock.now += 1000;
  const { chat: c } = await s.chats(s.ann).createChat({ name: "Solo" });
  s.clock.now += 1000;
  await s.chats(s.bob).sendMessage({ chatId: a, content: "bump" });
  await s.chats(s.stranger).createChat({ name: "Elsewhere" });

  const list = await s.chats(s.ann).listChats({});
  assert.deepEqual(list.chats.map((x) => x.chatId), [a, c!.chatId, b!.chatId]);
  assert.deepEqual(list.chats.map((x) => x.unreadCount), [3n, 0n, 0n], "bob's three messages are unread for ann");
  assert.deepEqual((await s.chats(s.bob).listChats({})).chats.map((x) => [x.chatId, x.unreadCount]), [[a, 0n], [b!.chatId, 0n]], "your own messages are never unread");

  const first = await s.chats(s.ann).listChats({ pageSize: 2 });
  const second = await s.chats(s.ann).listChats({ pageSize: 2, pageToken: first.nextPageToken });
  assert.deepEqual([...first.chats, ...second.chats].map((x) => x.chatId), list.chats.map((x) => x.chatId));
  assert.equal(second.nextPageToken, "");
  await expectError(s.chats(s.ann).listChats({ pageSize: 201, pageToken: "x".repeat(513) }), Code.InvalidArgument, { fields: ["pageSize", "pageToken"] });
  await expectError(s.chats(s.ann).listChats({ pageToken: "bm9wZQ" }), Code.InvalidArgument, { fields: ["pageToken"], message: /not a token from ListChats/ });
});

test("MarkRead moves the read marker forward only, clamped to the last message", async () => {
  const s = setup();
  const chatId = await chatWith(s, 5);
  const ann = s.chats(s.ann);
  assert.deepEqual(await ann.markRead({ chatId, seq: 3n }).then((r) => [r.lastReadSeq, r.unreadCount]), [3n, 2n]);
  assert.deepEqual(await ann.markRead({ chatId, seq: 1n }).then((r) => [r.lastReadSeq, r.unreadCount]), [3n, 2n], "never backwards");
  assert.deepEqual(await ann.markRead({ chatId, seq: 99n }).then((r) => [r.lastReadSeq, r.unreadCount]), [5n, 0n], "clamped to last_seq");
  await expectError(ann.markRead({ chatId: "x", seq: -1n }), Code.InvalidArgument, { fields: ["chatId", "seq"] });
  await expectError(s.chats(s.cy).markRead({ chatId, seq: 1n }), Code.NotFound);
});

test("Subscribe replays after afterSeq, goes live with a heartbeat, then streams new messages once each, in order", async () => {
  const s = setup();
  const chatId = await chatWith(s, 3);
  const stream = subscribe(s.chats(s.ann), { chatId, afterSeq: 1n });
  assert.deepEqual([await stream.next(), await stream.next(), await stream.next()], ["m2", "m3", "hb3"]);
  await s.chats(s.bob).sendMessage({ chatId, content: "live" });
  assert.equal(await stream.next(), "m4");
  // A duplicate delivery of an event is dropped; an event ahead of a missed one is filled from the store.
  const m4 = s.store.chats.get(chatId)!.messages[3]!;
  s.hub.emit(chatId, s.ann.companyId, { kind: "message", message: m4 });
  s.store.storeSilently(chatId, s.bob.userId, "lost event");
  await s.chats(s.bob).sendMessage({ chatId, content: "after the loss" });
  assert.deepEqual([await stream.next(), await stream.next()], ["m5", "m6"]);
  stream.close();
});

test("Subscribe without afterSeq goes live at once; a resync reads what was missed; removal ends the stream with not_found", async () => {
  const s = setup();
  const chatId = await chatWith(s, 2);
  const stream = subscribe(s.chats(s.bob), { chatId });
  assert.equal(await stream.next(), "hb2", "no replay: the heartbeat says where the chat stands");
  s.store.storeSilently(chatId, s.ann.userId, "while the broker was away");
  s.hub.emit(chatId, s.ann.companyId, { kind: "resync" });
  assert.equal(await stream.next(), "m3");
  await s.chats(s.ann).removeMember({ chatId, userId: s.bob.userId });
  await expectError(stream.raw(), Code.NotFound, { reason: "not_found", message: /no longer a member of chat/ });
  assert.equal(s.hub.watching(), 0);
});

test("Subscribe is refused before watching for bad input, and not_found for non-members and other companies", async () => {
  const s = setup();
  const chatId = await chatWith(s);
  await expectError(subscribe(s.chats(s.ann), { chatId: "nope", afterSeq: -1n }).raw(), Code.InvalidArgument, { fields: ["chatId", "afterSeq"] });
  await expectError(subscribe(s.chats(s.cy), { chatId }).raw(), Code.NotFound);
  await expectError(subscribe(s.chats(s.stranger), { chatId }).raw(), Code.NotFound);
  await expectError(subscribe(s.chats(undefined), { chatId }).raw(), Code.Unauthenticated);
  assert.equal(s.hub.watching(), 0);
});

test("an idle stream checks the store: it catches up what no event announced, and ends when the caller was removed unseen", async () => {
  const s = setup({ heartbeatMs: 5 });
  const chatId = await chatWith(s, 1);
  const stream = subscribe(s.chats(s.ann), { chatId, afterSeq: 1n });
  assert.equal(await stream.next(), "hb1");
  s.store.storeSilently(chatId, s.bob.userId, "quiet");
  assert.equal(await stream.next(), "m2", "found on the idle check");
  assert.equal(await stream.next(), "hb2", "idle again: a heartbeat");
  s.store.chats.get(chatId)!.members.delete(s.ann.userId); // removed, the event lost
  await expectError(stream.raw(), Code.NotFound);
});

test("a stream ends with unauthenticated when the access token expires", async () => {
  const s = setup();
  const chatId = await chatWith(s);
  const shortLived = s.world.user({ userId: s.ann.userId, companyId: s.ann.companyId, expiresAt: NOW / 1000 + 60 });
  const stream = subscribe(s.chats(shortLived), { chatId });
  assert.equal(await stream.next(), "hb0");
  s.clock.now = NOW + 61_000;
  await s.chats(s.bob).sendMessage({ chatId, content: "wake up" });
  await expectError(stream.raw(), Code.Unauthenticated, { reason: "unauthenticated", message: /subscribe again with after_seq/ });
});

test("store failures reach the caller with their code; a store bug is internal and says nothing of it", async () => {
  const s = setup();
  const chatId = await chatWith(s);
  s.storeCalls.failNext(new AppError("unavailable", "a concurrent send with the same clientMessageId is in progress; retry"), "SaveMessage");
  await expectError(s.chats(s.ann).sendMessage({ chatId, content: "x", clientMessageId: "k" }), Code.Unavailable, { reason: "unavailable", message: /retry$/ });
  s.storeCalls.failNext(new RangeError("invalid array length at row 7"));
  const e = await expectError(s.chats(s.ann).listChats({}), Code.Internal);
  assert.doesNotMatch(e.message, /array length/);
  assert.equal(s.store.chats.get(chatId)!.messages.length, 0);
});

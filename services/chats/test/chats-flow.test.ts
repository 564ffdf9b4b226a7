/**
 * Chats end to end on the real PostgreSQL and RabbitMQ (all-in-one in this process, AMQP_URL set):
 * the full flow, membership and tenant isolation for every RPC, bad inputs, idempotent and
 * gap-free sends under concurrency, and reconnecting with after_seq across 1,000 messages.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { Code } from "@connectrpc/connect";
import { TEST_AMQP_URL, freshDatabase, installHint, need, postgresUp, rabbitUp, until, type TestApp, type TestDatabase } from "@crm/testkit";
import { startTestApp } from "@crm/all/test-app";
import { assertSeqs, company, counts, expectCode, sql, watch } from "./helpers.js";

const skip = need("PostgreSQL", await postgresUp(), installHint.postgres) || need("RabbitMQ", await rabbitUp(), installHint.rabbitmq);

let db: TestDatabase;
let app: TestApp;
before(async () => {
  if (skip) return;
  db = await freshDatabase();
  app = await startTestApp({ DATABASE_URL: db.url, AMQP_URL: TEST_AMQP_URL, DB_POOL_MAX: "20", CHAT_HEARTBEAT_MS: "300" });
});
after(async () => {
  await app?.close();
  await db?.drop();
});

const outboxEmpty = async () => (await sql<{ n: string }>(db.url, "SELECT count(*) AS n FROM outbox"))[0]!.n === "0";

test("full flow: create, list with unread counts, send, page history, live stream, mark read, add and remove members", { skip, timeout: 60_000 }, async () => {
  const { owner, users } = await company(app, db.url, 3);
  const [ann, bob, cid] = users as [typeof owner, typeof owner, typeof owner];

  const { chat } = await owner.chat.createChat({ name: "  Sales  ", memberIds: [ann.userId, ann.userId] });
  assert.ok(chat);
  assert.equal(chat.name, "Sales");
  assert.deepEqual([...chat.memberIds].sort(), [owner.userId, ann.userId].sort(), "creator is a member; duplicates ignored");
  assert.equal(chat.createdBy, owner.userId);
  assert.equal(chat.lastSeq, 0n);

  // Ann subscribes live (no after_seq); the owner sends 3 messages.
  const live = watch(ann.chat, chat.chatId);
  await live.live();
  const sent = [];
  for (const text of ["hello", "  how are you?  ", "bye"]) sent.push((await owner.chat.sendMessage({ chatId: chat.chatId, content: text, clientMessageId: `c-${text.trim()}` })).message!);
  assert.deepEqual(sent.map((m) => m.seq), [1n, 2n, 3n]);
  assert.equal(sent[1]!.content, "how are you?", "content is stored trimmed");
  assert.equal(sent[0]!.senderId, owner.userId);
  const got = await live.count(3);
  assert.deepEqual(got.map((m) => [m.seq, m.content, m.messageId]), sent.map((m) => [m.seq, m.content, m.messageId]));

  // Ann answers once: her unread count is 3 (her own message does not count), the owner's is 1.
  await ann.chat.sendMessage({ chatId: chat.chatId, content: "hi!" });
  await live.count(4);
  const annChats = (await ann.chat.listChats({})).chats;
  assert.equal(annChats[0]!.lastSeq, 4n);
  assert.equal(annChats[0]!.unreadCount, 3n);
  assert.equal((await owner.chat.listChats({})).chats[0]!.unreadCount, 1n);

  // MarkRead: forward only, clamped to the last message.
  assert.deepEqual(await ann.chat.markRead({ chatId: chat.chatId, seq: 2n }).then((r) => [r.lastReadSeq, r.unreadCount]), [2n, 1n]);
  assert.deepEqual(await ann.chat.markRead({ chatId: chat.chatId, seq: 1n }).then((r) => [r.lastReadSeq, r.unreadCount]), [2n, 1n], "never backwards");
  assert.deepEqual(await ann.chat.markRead({ chatId: chat.chatId, seq: 99n }).then((r) => [r.lastReadSeq, r.unreadCount]), [4n, 0n], "clamped to last_seq");
  assert.equal((await ann.chat.listChats({})).chats[0]!.unreadCount, 0n);

  // History pages: newest first page, then backwards and forwards with the cursors.
  for (let i = 5; i <= 12; i++) await owner.chat.sendMessage({ chatId: chat.chatId, content: `m${i}` });
  const newest = await ann.chat.listMessages({ chatId: chat.chatId, limit: 5 });
  assert.deepEqual(newest.messages.map((m) => m.seq), [8n, 9n, 10n, 11n, 12n]);
  assert.equal(newest.hasMore, true);
  assert.equal(newest.nextBeforeSeq, 8n);
  assert.equal(newest.nextAfterSeq, undefined);
  assert.equal(newest.lastSeq, 12n);
  const older = await ann.chat.listMessages({ chatId: chat.chatId, beforeSeq: newest.nextBeforeSeq, limit: 5 });
  assert.deepEqual(older.messages.map((m) => m.seq), [3n, 4n, 5n, 6n, 7n]);
  const oldest = await ann.chat.listMessages({ chatId: chat.chatId, beforeSeq: 3n, limit: 5 });
  assert.deepEqual(oldest.messages.map((m) => m.seq), [1n, 2n]);
  assert.equal(oldest.hasMore, false);
  assert.equal(oldest.nextBeforeSeq, undefined);
  const forward = await ann.chat.listMessages({ chatId: chat.chatId, afterSeq: 0n, limit: 4 });
  assert.deepEqual(forward.messages.map((m) => m.seq), [1n, 2n, 3n, 4n]);
  assert.equal(forward.nextAfterSeq, 4n);
  const rest = await ann.chat.listMessages({ chatId: chat.chatId, afterSeq: 4n, limit: 200 });
  assert.equal(rest.messages.length, 8);
  assert.equal(rest.hasMore, false);
  await live.count(12);

  // Bob is not a member yet: not_found; after AddMembers he can read and his unread starts at 0.
  await expectCode(bob.chat.listMessages({ chatId: chat.chatId }), Code.NotFound);
  const added = await ann.chat.addMembers({ chatId: chat.chatId, userIds: [bob.userId, ann.userId] });
  assert.equal(added.chat!.memberIds.length, 3, "existing members are skipped");
  const bobChats = (await bob.chat.listChats({})).chats;
  assert.equal(bobChats[0]!.unreadCount, 0n);
  assert.equal((await bob.chat.listMessages({ chatId: chat.chatId })).messages.length, 12);

  // Removing someone else needs the creator (or owner/admin): bob cannot remove ann; the owner can.
  await expectCode(bob.chat.removeMember({ chatId: chat.chatId, userId: ann.userId }), Code.PermissionDenied);
  const removed = await owner.chat.removeMember({ chatId: chat.chatId, userId: ann.userId });
  assert.ok(!removed.chat!.memberIds.includes(ann.userId));
  // Ann's live stream ends with not_found, and she can no longer read.
  await live.end();
  assert.equal(live.error?.code, Code.NotFound);
  await expectCode(ann.chat.listMessages({ chatId: chat.chatId }), Code.NotFound);
  // Anyone may leave; removing a non-member is a no-op.
  await bob.chat.removeMember({ chatId: chat.chatId, userId: bob.userId });
  await owner.chat.removeMember({ chatId: chat.chatId, userId: cid.userId });
  assert.deepEqual((await owner.chat.listChats({})).chats[0]!.memberIds, [owner.userId]);

  // ListChats: most recent activity first, paged.
  const second = (await owner.chat.createChat({ name: "Second" })).chat!;
  const third = (await owner.chat.createChat({ name: "Third" })).chat!;
  await owner.chat.sendMessage({ chatId: second.chatId, content: "bump" });
  const page1 = await owner.chat.listChats({ pageSize: 2 });
  assert.deepEqual(page1.chats.map((c) => c.name), ["Second", "Third"]);
  assert.ok(page1.nextPageToken);
  const page2 = await owner.chat.listChats({ pageSize: 2, pageToken: page1.nextPageToken });
  assert.deepEqual(page2.chats.map((c) => c.name), ["Sales"]);
  assert.equal(page2.nextPageToken, "");
  assert.equal(third.lastSeq, 0n);

  await until("the relay to empty the outbox", outboxEmpty, 10_000);
});

test("membership and tenant isolation: every RPC answers not_found for a chat of another company or one you are not in", { skip, timeout: 60_000 }, async () => {
  const a = await company(app, db.url, 1);
  const b = await company(app, db.url, 0);
  const { chat } = await a.owner.chat.createChat({ name: "A only" });
  const id = chat!.chatId;
  await a.owner.chat.sendMessage({ chatId: id, content: "secret" });
  await until("the relay to publish the message's event", outboxEmpty, 10_000); // so the counts below are stable
  const before = await counts(db.url);
  const outsiders = [b.owner, a.users[0]!]; // another tenant; a colleague who is not a member
  for (const u of outsiders) {
    await expectCode(u.chat.sendMessage({ chatId: id, content: "intrusion" }), Code.NotFound, /not found/);
    await expectCode(u.chat.sendMessage({ chatId: id, content: "intrusion", clientMessageId: "x" }), Code.NotFound);
    await expectCode(u.chat.listMessages({ chatId: id }), Code.NotFound);
    await expectCode(u.chat.markRead({ chatId: id, seq: 1n }), Code.NotFound);
    await expectCode(u.chat.addMembers({ chatId: id, userIds: [u.userId] }), Code.NotFound);
    await expectCode(u.chat.removeMember({ chatId: id, userId: a.owner.userId }), Code.NotFound);
    const s = watch(u.chat, id, 0n);
    await s.end();
    assert.equal(s.error?.code, Code.NotFound);
    assert.equal(s.messages.length, 0);
    assert.ok(!(await u.chat.listChats({})).chats.some((c) => c.chatId === id));
  }
  // Unknown chat ids too.
  await expectCode(a.owner.chat.sendMessage({ chatId: "00000000-0000-4000-8000-000000000000", content: "x" }), Code.NotFound);
  // Users of another company cannot be made members.
  await expectCode(a.owner.chat.createChat({ name: "mixed", memberIds: [b.owner.userId] }), Code.InvalidArgument, new RegExp(`memberIds: not users of your company: ${b.owner.userId}`));
  await expectCode(a.owner.chat.addMembers({ chatId: id, userIds: [b.owner.userId] }), Code.InvalidArgument, /userIds: not users of your company/);
  assert.deepEqual(await counts(db.url), before, "nothing was stored");
});

test("bad inputs: invalid_argument naming the field, nothing stored", { skip, timeout: 60_000 }, async () => {
  const { owner } = await company(app, db.url, 0);
  const { chat } = await owner.chat.createChat({ name: "Inputs" });
  const id = chat!.chatId;
  await until("outbox empty", outboxEmpty, 10_000);
  const before = await counts(db.url);
  const c = owner.chat;
  const cases: [string, () => Promise<unknown>, RegExp][] = [
    ["empty content", () => c.sendMessage({ chatId: id, content: "" }), /content: is required/],
    ["blank content", () => c.sendMessage({ chatId: id, content: " \n\t " }), /content: must not be only whitespace/],
    ["4001 characters", () => c.sendMessage({ chatId: id, content: "x".repeat(4001) }), /content: must be at most 4000 characters/],
    ["4001 emoji", () => c.sendMessage({ chatId: id, content: "😀".repeat(4001) }), /content: must be at most 4000/],
    ["NUL", () => c.sendMessage({ chatId: id, content: "a\u0000b" }), /content: contains the control character U\+0000/],
    ["long client id", () => c.sendMessage({ chatId: id, content: "ok", clientMessageId: "k".repeat(65) }), /clientMessageId: must be at most 64/],
    ["bad chat id", () => c.sendMessage({ chatId: "chat-1", content: "ok" }), /chatId: must be a chat id \(UUID\)/],
    ["missing chat id", () => c.sendMessage({ chatId: "", content: "ok" }), /chatId: is required/],
    ["limit 201", () => c.listMessages({ chatId: id, limit: 201 }), /limit: must be 1..200/],
    ["limit -1", () => c.listMessages({ chatId: id, limit: -1 }), /limit: must be 1..200/],
    ["both cursors", () => c.listMessages({ chatId: id, beforeSeq: 5n, afterSeq: 1n }), /beforeSeq: set at most one/],
    ["negative after", () => c.listMessages({ chatId: id, afterSeq: -1n }), /afterSeq: must not be negative/],
    ["bad list chat id", () => c.listMessages({ chatId: "nope" }), /chatId: must be a chat id/],
    ["page size 500", () => c.listChats({ pageSize: 500 }), /pageSize: must be 1..200/],
    ["forged page token", () => c.listChats({ pageToken: "garbage" }), /pageToken: is not a token from ListChats/],
    ["empty chat name", () => c.createChat({ name: "   " }), /name: is required/],
    ["long chat name", () => c.createChat({ name: "n".repeat(201) }), /name: must be at most 200/],
    ["bad member id", () => c.createChat({ name: "ok", memberIds: ["not-a-uuid"] }), /memberIds: must be user ids \(UUID\)/],
    ["no users to add", () => c.addMembers({ chatId: id, userIds: [] }), /userIds: needs at least 1/],
    ["bad user to remove", () => c.removeMember({ chatId: id, userId: "x" }), /userId: must be a user id/],
    ["negative read", () => c.markRead({ chatId: id, seq: -1n }), /seq: must not be negative/],
  ];
  for (const [what, call, message] of cases) {
    await expectCode(call, Code.InvalidArgument, message).catch((err: Error) => assert.fail(`${what}: ${err.message}`));
  }
  // Several bad fields at once are all named.
  await expectCode(c.sendMessage({ chatId: "x", content: "", clientMessageId: "k".repeat(65) }), Code.InvalidArgument, /chatId: .*; content: .*; clientMessageId: /);
  const s = watch(c, "not-a-uuid");
  await s.end();
  assert.equal(s.error?.code, Code.InvalidArgument);
  // Exactly 4000 characters is fine, and so is a message made of emoji (characters, not UTF-16 units).
  await c.sendMessage({ chatId: id, content: "😀".repeat(4000) });
  const after = await counts(db.url);
  assert.deepEqual({ ...after, messages: String(Number(after.messages) - 1), outbox: before.outbox }, before, "only the valid message was stored");
});

test("idempotent send: 20 concurrent duplicates store one message and all get it back", { skip, timeout: 60_000 }, async () => {
  const { owner } = await company(app, db.url, 0);
  const { chat } = await owner.chat.createChat({ name: "Retry" });
  const id = chat!.chatId;
  const results = await Promise.all(Array.from({ length: 20 }, () => owner.chat.sendMessage({ chatId: id, content: "only once", clientMessageId: "retry-key-1" })));
  assert.equal(new Set(results.map((r) => r.message!.messageId)).size, 1);
  assert.equal(results.filter((r) => !r.replayed).length, 1, "exactly one call stored it");
  assert.ok(results.every((r) => r.message!.seq === 1n && r.message!.clientMessageId === "retry-key-1"));
  const next = await owner.chat.sendMessage({ chatId: id, content: "next", clientMessageId: "retry-key-2" });
  assert.equal(next.message!.seq, 2n, "the replays left no gap in seq");
  const again = await owner.chat.sendMessage({ chatId: id, content: "different text, same key", clientMessageId: "retry-key-1" });
  assert.equal(again.replayed, true);
  assert.equal(again.message!.content, "only once", "the first message is returned unchanged");
  const rows = await sql(db.url, "SELECT seq FROM messages WHERE chat_id = $1 ORDER BY seq", [id]);
  assert.deepEqual(rows.map((r) => Number(r.seq)), [1, 2]);
});

test("gap-free seq: 50 concurrent senders, 500 messages, seqs 1..500 each once, live subscriber sees them in order", { skip, timeout: 120_000 }, async () => {
  const { owner, users } = await company(app, db.url, 9);
  const people = [owner, ...users];
  const { chat } = await owner.chat.createChat({ name: "Busy", memberIds: users.map((u) => u.userId) });
  const id = chat!.chatId;
  const live = watch(users[0]!.chat, id, 0n);
  // 50 concurrent senders (5 per user), 10 messages each.
  await Promise.all(
    Array.from({ length: 50 }, async (_, s) => {
      const who = people[s % people.length]!;
      for (let i = 0; i < 10; i++) await who.chat.sendMessage({ chatId: id, content: `sender ${s} message ${i}`, clientMessageId: `${s}-${i}` });
    }),
  );
  const rows = await sql(db.url, "SELECT seq FROM messages WHERE chat_id = $1 ORDER BY seq", [id]);
  assert.deepEqual(rows.map((r) => Number(r.seq)), Array.from({ length: 500 }, (_, i) => i + 1));
  assertSeqs(await live.count(500, 30_000), 1, 500);
  await live.close();
});

test("reconnect with after_seq: 1,000 messages sent while disconnected arrive once each, then live continues without a seam", { skip, timeout: 120_000 }, async () => {
  const { owner, users } = await company(app, db.url, 1);
  const reader = users[0]!;
  const { chat } = await owner.chat.createChat({ name: "Reconnect", memberIds: [reader.userId] });
  const id = chat!.chatId;
  const first = watch(reader.chat, id);
  await first.live();
  for (let i = 1; i <= 5; i++) await owner.chat.sendMessage({ chatId: id, content: `before ${i}` });
  await first.count(5);
  await first.close();
  const last = first.messages[first.messages.length - 1]!.seq;
  assert.equal(last, 5n);

  // While disconnected: 1,000 messages from 8 concurrent senders.
  let n = 0;
  await Promise.all(Array.from({ length: 8 }, async () => {
    while (n < 1000) await owner.chat.sendMessage({ chatId: id, content: `away ${++n}` });
  }));
  // Reconnect with the last seq while 200 more are being sent: replay and live meet at a seam.
  const second = watch(reader.chat, id, last);
  const during = (async () => {
    for (let i = 1; i <= 200; i++) await owner.chat.sendMessage({ chatId: id, content: `during ${i}` });
  })();
  await during;
  const total = Number((await owner.chat.listMessages({ chatId: id, limit: 1 })).lastSeq);
  assert.ok(total >= 1205, `at least 1,205 messages stored (have ${total})`);
  assertSeqs(await second.count(total - 5, 60_000), 6, total);
  // Heartbeats keep the idle stream open, and nothing more arrives.
  const hb = second.heartbeats;
  await until("a heartbeat on the idle stream", () => second.heartbeats > hb, 5_000);
  assert.equal(second.messages.length, total - 5);
  await second.close();
});

test("content and retry keys with quotes, backslashes, SQL and any Unicode are stored exactly as sent", { skip, timeout: 60_000 }, async () => {
  const { owner } = await company(app, db.url, 0);
  const { chat } = await owner.chat.createChat({ name: "O'Brien \\ \"quotes\"" });
  const id = chat!.chatId;
  const tricky = ["it's", "back\\slash \\' \\\\", "'); DROP TABLE messages; --", "$$ $1 E'\\x41' \\0", "\u{1F600} ẞ 中文 \u202Eright-to-left", "line\nbreak\ttab"];
  for (const [i, text] of tricky.entries()) {
    const r = await owner.chat.sendMessage({ chatId: id, content: text, clientMessageId: `k'${i}\\` });
    assert.equal(r.message!.content, text);
    assert.equal(r.message!.clientMessageId, `k'${i}\\`);
  }
  const again = await owner.chat.sendMessage({ chatId: id, content: "other", clientMessageId: "k'0\\" });
  assert.equal(again.replayed, true);
  const page = await owner.chat.listMessages({ chatId: id, afterSeq: 0n });
  assert.deepEqual(page.messages.map((m) => m.content), tricky);
  assert.equal(chat!.name, "O'Brien \\ \"quotes\"");
});

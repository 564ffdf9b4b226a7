/**
 * SaveMessage stores what arrives for one chat while its previous batch runs in ONE transaction
 * (chat-store.ts saveBatch): each item still gets exactly what a lone send would.
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, test } from "node:test";
import pg from "pg";
import { create, fromBinary } from "@bufbuild/protobuf";
import { ChatEventSchema } from "@crm/gen/crm/chat/v1/chat_pb";
import { createContextValues, createHandlerContext } from "@connectrpc/connect";
import { DbChatService, SaveMessageRequestSchema } from "@crm/gen/crm/db/v1/db_chat_pb";
import { principalKey } from "@crm/kit";
import { installHint, need, postgresUp } from "@crm/testkit";
import { chatStore, quote, saveBatch } from "./chat-store.js";
import { createDb, type Db } from "@crm/dbservice/db";
import { migratedDatabase, type MigratedDatabase } from "../../dbservice/test/helpers.js";

const skip = need("PostgreSQL", await postgresUp(), installHint.postgres);

let m: MigratedDatabase;
let pool: pg.Pool;
let db: Db;
const company = randomUUID();
const [alice, bob, stranger] = [randomUUID(), randomUUID(), randomUUID()];
const chat = randomUUID();
/** A sender's trace context: each event carries its own sender's. */
const traced = (n: number) => ({ traceparent: `00-${String(n).padStart(32, "0")}-00000000000000a1-01` });
const headers = traced(0);

before(async () => {
  if (skip) return;
  m = await migratedDatabase();
  ({ pool, db } = m);
  await pool.query("INSERT INTO companies (id, name) VALUES ($1, 'Co')", [company]);
  for (const u of [alice, bob, stranger]) await pool.query("INSERT INTO users (id, company_id, email, name, role) VALUES ($1, $2, $3, 'U', 'member')", [u, company, `${u}@x.io`]);
  await db.tenant(company, async (sql) => {
    await sql.query("INSERT INTO chats (id, company_id, name, created_by) VALUES ($1, $2, 'chat', $3)", [chat, company, alice]);
    for (const u of [alice, bob]) await sql.query("INSERT INTO chat_members (chat_id, user_id, company_id) VALUES ($1, $2, $3)", [chat, u, company]);
  });
});
after(async () => {
  await m?.drop();
});

test("one batch: new messages take consecutive seqs; non-members, earlier and in-batch duplicates get what a lone send would", { skip }, async () => {
  const [committed] = await saveBatch(db, company, chat, [{ userId: bob, text: "first", clientId: "b-1", headers }]);
  assert.ok(committed && !(committed instanceof Error) && committed.message.seq === 1n);
  const { rows: before } = await pool.query<{ id: string }>("SELECT coalesce(max(id), 0) AS id FROM outbox");

  const results = await saveBatch(db, company, chat, [
    { userId: alice, text: "one", clientId: "a-1", headers: traced(1) },
    { userId: stranger, text: "not a member", clientId: "", headers: traced(2) },
    { userId: alice, text: "one, sent twice", clientId: "a-1", headers: traced(3) },
    { userId: bob, text: "two", clientId: "", headers: traced(4) },
    { userId: bob, text: "first, retried", clientId: "b-1", headers: traced(5) },
    { userId: bob, text: "a-1 is alice's id, not bob's", clientId: "a-1", headers: traced(6) },
  ]);
  const ok = results.map((r) => (r instanceof Error ? r.message : { seq: r.message.seq, content: r.message.content, replayed: r.replayed }));
  assert.deepEqual(ok, [
    { seq: 2n, content: "one", replayed: false },
    `chat ${chat} not found, or you are not a member of it`,
    { seq: 2n, content: "one", replayed: true },
    { seq: 3n, content: "two", replayed: false },
    { seq: 1n, content: "first", replayed: true },
    { seq: 4n, content: "a-1 is alice's id, not bob's", replayed: false },
  ]);
  const { rows: chats } = await pool.query<{ last_seq: string }>("SELECT last_seq FROM chats WHERE id = $1", [chat]);
  assert.equal(chats[0]!.last_seq, "4");
  const { rows: stored } = await pool.query<{ seq: string }>("SELECT seq FROM messages WHERE chat_id = $1 ORDER BY seq", [chat]);
  assert.deepEqual(stored.map((r) => r.seq), ["1", "2", "3", "4"]);
  // One event per new message, none for replays: binary ChatEvents, in seq order, each with the
  // stored message as the RPC answered it and its own sender's trace context.
  const { rows: events } = await pool.query<{ exchange: string; routing_key: string; payload: Buffer; content_type: string; headers: Record<string, string>; company_id: string }>(
    "SELECT exchange, routing_key, payload, content_type, headers, company_id FROM outbox WHERE id > $1 ORDER BY id",
    [before[0]!.id],
  );
  const answered = results.filter((r) => !(r instanceof Error) && !r.replayed).map((r) => (r as Exclude<typeof r, Error>).message);
  assert.equal(events.length, 3);
  events.forEach((e, i) => {
    assert.deepEqual([e.exchange, e.routing_key, e.content_type, e.company_id], ["chat.events", `chat.${chat}`, "application/protobuf", company]);
    assert.equal(e.headers["x-crm-type"], "crm.chat.v1.ChatEvent");
    assert.equal(e.headers.traceparent, traced([1, 4, 6][i]!).traceparent);
    const ev = fromBinary(ChatEventSchema, e.payload);
    assert.deepEqual([ev.chatId, ev.companyId], [chat, company]);
    assert.ok(ev.event.case === "message");
    assert.deepEqual(ev.event.value, answered[i]);
  });
});

test("a batch of non-members changes nothing", { skip }, async () => {
  const { rows: before } = await pool.query<{ last_seq: string }>("SELECT last_seq FROM chats WHERE id = $1", [chat]);
  const [r] = await saveBatch(db, company, chat, [{ userId: stranger, text: "hi", clientId: "", headers }]);
  assert.ok(r instanceof Error && /not found/.test(r.message));
  const { rows: after } = await pool.query<{ last_seq: string }>("SELECT last_seq FROM chats WHERE id = $1", [chat]);
  assert.equal(after[0]!.last_seq, before[0]!.last_seq);
});

test("one send PostgreSQL refuses fails alone: the rest of its group-commit batch is stored", { skip }, async () => {
  const service = chatStore({ db });
  const send = (userId: string, content: string) => {
    const values = createContextValues().set(principalKey, { userId, companyId: company, role: "member", sessionId: "s", expiresAt: 0, token: "t" });
    const ctx = createHandlerContext({ service: DbChatService, method: DbChatService.method.saveMessage, protocolName: "test", requestMethod: "POST", url: "/", contextValues: values });
    return Promise.resolve(service.saveMessage(create(SaveMessageRequestSchema, { chatId: chat, content }), ctx));
  };
  const { rows: before } = await pool.query<{ last_seq: string }>("SELECT last_seq FROM chats WHERE id = $1", [chat]);
  // The first send runs alone; the ones made meanwhile go together in the next batch. The sender id
  // comes from the token, not the request, so no request validation sees it: PostgreSQL refuses
  // it (not a uuid), which rolls back that whole batch's transaction.
  const first = send(alice, "first");
  const batch = [send(alice, "a"), send(bob, "b"), send("not-a-uuid", "bad"), send(alice, "c"), send(bob, "d")].map((p) =>
    p.then((r) => r.message?.content ?? "?", (e: Error) => `failed: ${e.message}`),
  );
  await first;
  const out = await Promise.all(batch);
  assert.deepEqual(out.filter((x) => !x.startsWith("failed")), ["a", "b", "c", "d"], out.join(" | "));
  assert.match(out[2]!, /^failed: .*uuid/);
  const { rows: after } = await pool.query<{ last_seq: string }>("SELECT last_seq FROM chats WHERE id = $1", [chat]);
  assert.equal(Number(after[0]!.last_seq) - Number(before[0]!.last_seq), 5, "first + the four innocent sends, gap-free");
});

test("a chat this process wrote to last: ONE round trip; another writer meanwhile costs a retry, not a wrong seq", { skip }, async () => {
  const room = randomUUID();
  await db.tenant(company, async (sql) => {
    await sql.query("INSERT INTO chats (id, company_id, name, created_by) VALUES ($1, $2, 'room', $3)", [room, company, alice]);
    for (const u of [alice, bob]) await sql.query("INSERT INTO chat_members (chat_id, user_id, company_id) VALUES ($1, $2, $3)", [room, u, company]);
  });
  // Round trips to PostgreSQL: the queries this pool's connections send.
  const counted = new pg.Pool({ connectionString: m.tdb.url, max: 2 });
  let trips = 0;
  const seen = new WeakSet<pg.PoolClient>();
  counted.on("acquire", (client) => {
    if (seen.has(client)) return;
    seen.add(client);
    const query = client.query.bind(client) as (...a: unknown[]) => unknown;
    (client as unknown as { query: (...a: unknown[]) => unknown }).query = (...a: unknown[]) => (trips++, query(...a));
  });
  const here = createDb(counted);
  const other = createDb(pool); // another replica: the chat's seqs move on without `here` knowing
  const send = async (on: Db, items: Parameters<typeof saveBatch>[3]) => {
    trips = 0;
    const out = (await saveBatch(on, company, room, items)).map((r) => (r instanceof Error ? r.message : { seq: r.message.seq, content: r.message.content, replayed: r.replayed }));
    return { out, trips };
  };
  const { rows: outboxBefore } = await pool.query<{ id: string }>("SELECT coalesce(max(id), 0) AS id FROM outbox");
  try {
    // The first batch learns the chat's seq the checked way (two round trips).
    assert.deepEqual(await send(here, [{ userId: alice, text: "one", clientId: "", headers: traced(1) }]), { out: [{ seq: 1n, content: "one", replayed: false }], trips: 2 });
    // Then: the messages and their events in one round trip.
    const fast = await saveBatch(here, company, room, [
      { userId: bob, text: "two", clientId: "b-2", headers: traced(2) },
      { userId: alice, text: "three", clientId: "", headers: traced(3) },
    ]);
    assert.deepEqual((await send(here, [{ userId: alice, text: "four", clientId: "", headers: traced(4) }])).trips, 1);
    // Another writer, then this one again: it retries once with the seq PostgreSQL answered.
    assert.deepEqual((await send(other, [{ userId: bob, text: "five", clientId: "", headers: traced(5) }])).out, [{ seq: 5n, content: "five", replayed: false }]);
    assert.deepEqual(await send(here, [{ userId: alice, text: "six", clientId: "", headers: traced(6) }]), { out: [{ seq: 6n, content: "six", replayed: false }], trips: 2 });
    // A retried message and a non-member: the checked way, same answers as ever.
    assert.deepEqual((await send(here, [{ userId: bob, text: "two, retried", clientId: "b-2", headers: traced(7) }, { userId: alice, text: "seven", clientId: "", headers: traced(8) }])).out, [
      { seq: 2n, content: "two", replayed: true },
      { seq: 7n, content: "seven", replayed: false },
    ]);
    assert.deepEqual((await send(here, [{ userId: stranger, text: "hi", clientId: "", headers }])).out, [`chat ${room} not found, or you are not a member of it`]);

    // What the one-round-trip way answered is what was stored, and its events carry exactly that.
    const answered = fast.map((r) => (r instanceof Error ? assert.fail(r) : r.message));
    const { rows: stored } = await pool.query<{ id: string; seq: string; sender_id: string; content: string; client_message_id: string | null; created_at: Date }>(
      "SELECT id, seq, sender_id, content, client_message_id, created_at FROM messages WHERE chat_id = $1 ORDER BY seq",
      [room],
    );
    assert.deepEqual(stored.map((r) => r.seq), ["1", "2", "3", "4", "5", "6", "7"]);
    for (const a of answered) {
      const row = stored.find((r) => r.seq === String(a.seq))!;
      assert.deepEqual([row.id, row.sender_id, row.content, row.client_message_id ?? "", row.created_at.getTime()], [a.messageId, a.senderId, a.content, a.clientMessageId, Number(a.createdAt!.seconds) * 1000 + a.createdAt!.nanos / 1e6]);
    }
    const { rows: events } = await pool.query<{ payload: Buffer; headers: Record<string, string>; company_id: string; routing_key: string }>(
      "SELECT payload, headers, company_id, routing_key FROM outbox WHERE id > $1 AND routing_key = $2 ORDER BY id",
      [outboxBefore[0]!.id, `chat.${room}`],
    );
    const decoded = events.map((e) => fromBinary(ChatEventSchema, e.payload));
    assert.deepEqual(decoded.map((e) => (e.event.case === "message" ? e.event.value.seq : -1n)), [1n, 2n, 3n, 4n, 5n, 6n, 7n], "one event per new message, in seq order");
    assert.deepEqual(decoded[1]!.event.value, answered[0]);
    assert.deepEqual(decoded[2]!.event.value, answered[1]);
    assert.deepEqual([events[1]!.headers.traceparent, events[1]!.company_id, decoded[1]!.companyId], [traced(2).traceparent, company, company]);
  } finally {
    await counted.end();
  }
});

test("quote gives the literal pg's escapeLiteral gives", () => {
  const escape = new pg.Client().escapeLiteral;
  for (const v of ["", "plain", "it's", "back\\slash", `{"c":"say \\"hi\\"\\n","k":"o'k"}`, "\\'\\\\''", "ünïcødé ✓"]) assert.equal(quote(v), escape(v), v);
});

/**
 * The reads every chat stream and every history page make (ListMessages, GetMembership): ONE
 * round trip each (the start, the statement, COMMIT), with the membership checked in the same
 * statement (issue 21: round trips are what the all-in-one waits on under load).
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, test } from "node:test";
import pg from "pg";
import { create, type DescMethod } from "@bufbuild/protobuf";
import { createContextValues, createHandlerContext } from "@connectrpc/connect";
import { DbChatService, GetMembershipRequestSchema, ListMessagesRequestSchema } from "@crm/gen/crm/db/v1/db_chat_pb";
import { principalKey } from "@crm/kit";
import { installHint, need, postgresUp } from "@crm/testkit";
import { chatStore, saveBatch } from "./chat-store.js";
import { createDb } from "@crm/dbservice/db";
import { migratedDatabase, type MigratedDatabase } from "../../dbservice/test/helpers.js";

const skip = need("PostgreSQL", await postgresUp(), installHint.postgres);

let m: MigratedDatabase;
const company = randomUUID();
const [alice, stranger] = [randomUUID(), randomUUID()];
const chat = randomUUID();
const empty = randomUUID();
const headers = { traceparent: `00-${"0".repeat(31)}1-00000000000000a1-01` };

before(async () => {
  if (skip) return;
  m = await migratedDatabase();
  await m.pool.query("INSERT INTO companies (id, name) VALUES ($1, 'Co')", [company]);
  for (const u of [alice, stranger]) await m.pool.query("INSERT INTO users (id, company_id, email, name, role) VALUES ($1, $2, $3, 'U', 'member')", [u, company, `${u}@x.io`]);
  await m.db.tenant(company, async (sql) => {
    for (const c of [chat, empty]) {
      await sql.query("INSERT INTO chats (id, company_id, name, created_by) VALUES ($1, $2, 'chat', $3)", [c, company, alice]);
      await sql.query("INSERT INTO chat_members (chat_id, user_id, company_id) VALUES ($1, $2, $3)", [c, alice, company]);
    }
  });
  for (let i = 1; i <= 5; i++) await saveBatch(m.db, company, chat, [{ userId: alice, text: `m${i}`, clientId: "", headers }]);
});
after(async () => {
  await m?.drop();
});

test("ListMessages and GetMembership: one round trip each; pages both ways; a non-member is not_found / not a member", { skip }, async () => {
  // Round trips: the queries this pool's connections send.
  const counted = new pg.Pool({ connectionString: m.tdb.url, max: 1 });
  let trips = 0;
  counted.on("connect", (client) => {
    const query = client.query.bind(client) as (...a: unknown[]) => unknown;
    (client as unknown as { query: (...a: unknown[]) => unknown }).query = (...a: unknown[]) => (trips++, query(...a));
  });
  const store = chatStore({ db: createDb(counted) });
  const ctx = (userId: string, method: DescMethod = DbChatService.method.listMessages) =>
    createHandlerContext({ service: DbChatService, method, protocolName: "test", requestMethod: "POST", url: "/", contextValues: createContextValues().set(principalKey, { userId, companyId: company, role: "member", sessionId: "s", expiresAt: 0, token: "t" }) });
  const list = async (userId: string, req: { chatId?: string; afterSeq?: bigint; beforeSeq?: bigint; limit?: number }) => {
    trips = 0;
    const r = await store.listMessages!(create(ListMessagesRequestSchema, { chatId: chat, ...req }), ctx(userId));
    return { seqs: (r.messages ?? []).map((x) => Number(x.seq)), hasMore: r.hasMore, lastSeq: r.lastSeq, before: r.nextBeforeSeq, after: r.nextAfterSeq, trips };
  };
  try {
    assert.deepEqual(await list(alice, { limit: 2 }), { seqs: [4, 5], hasMore: true, lastSeq: 5n, before: 4n, after: undefined, trips: 1 });
    assert.deepEqual(await list(alice, { beforeSeq: 4n, limit: 2 }), { seqs: [2, 3], hasMore: true, lastSeq: 5n, before: 2n, after: 3n, trips: 1 });
    assert.deepEqual(await list(alice, { afterSeq: 1n, limit: 3 }), { seqs: [2, 3, 4], hasMore: true, lastSeq: 5n, before: 2n, after: 4n, trips: 1 });
    assert.deepEqual(await list(alice, { afterSeq: 3n }), { seqs: [4, 5], hasMore: false, lastSeq: 5n, before: 4n, after: undefined, trips: 1 });
    assert.deepEqual(await list(alice, { afterSeq: 5n }), { seqs: [], hasMore: false, lastSeq: 5n, before: undefined, after: undefined, trips: 1 });
    assert.deepEqual(await list(alice, { chatId: empty }), { seqs: [], hasMore: false, lastSeq: 0n, before: undefined, after: undefined, trips: 1 });
    await assert.rejects(list(stranger, {}), /not found, or you are not a member/);

    const membership = async (userId: string) => {
      trips = 0;
      const r = await store.getMembership!(create(GetMembershipRequestSchema, { chatId: chat }), ctx(userId, DbChatService.method.getMembership));
      return { member: r.member, lastSeq: r.lastSeq, trips };
    };
    assert.deepEqual(await membership(alice), { member: true, lastSeq: 5n, trips: 1 });
    assert.deepEqual(await membership(stranger), { member: false, lastSeq: 0n, trips: 1 });
  } finally {
    await counted.end();
  }
});

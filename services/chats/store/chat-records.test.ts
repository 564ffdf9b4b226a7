/**
 * Chats attached to records on the real PostgreSQL, through the store (DbChatService): the record
 * must exist in the chat's company (composite foreign keys, also for SQL that skips the store),
 * one record per chat, a purged record detaches its chats, and ListChats filters by record.
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, test } from "node:test";
import { Code } from "@connectrpc/connect";
import { DbChatService } from "@crm/gen/crm/db/v1/db_chat_pb";
import { ObjectType } from "@crm/gen/crm/records/v1/common_pb";
import type { Principal } from "@crm/kit";
import { expectError, inMemory, installHint, need, postgresUp } from "@crm/testkit";
import { migratedDatabase, type MigratedDatabase } from "../../dbservice/test/helpers.js";
import { chatStore } from "./chat-store.js";

const skip = need("PostgreSQL", await postgresUp(), installHint.postgres);

let m: MigratedDatabase;
const world = inMemory();
let transport: ReturnType<typeof world.serve>;
before(async () => {
  if (skip) return;
  m = await migratedDatabase();
  transport = world.serve((r) => r.service(DbChatService, chatStore({ db: m.db })), { from: "chats" });
});
after(async () => {
  await m?.drop();
});

async function tenant() {
  const companyId = randomUUID();
  await m.pool.query("INSERT INTO companies (id, name) VALUES ($1, 'Attached')", [companyId]);
  const user = async () => {
    const { rows } = await m.pool.query<{ id: string }>("INSERT INTO users (company_id, email, name, role) VALUES ($1, $2, 'U', 'member') RETURNING id", [companyId, `${randomUUID()}@example.com`]);
    const p: Principal = world.user({ userId: rows[0]!.id, companyId, role: "member" });
    return { ...p, store: world.client(DbChatService, transport, p) };
  };
  const ann = await user();
  const bob = await user();
  const one = async (sql: string, params: unknown[]) => (await m.pool.query<{ id: string }>(sql, params)).rows[0]!.id;
  const customer = await one("INSERT INTO rec_companies (company_id, name, owner_id) VALUES ($1, 'Globex', $2) RETURNING id", [companyId, ann.userId]);
  const person = await one("INSERT INTO rec_people (company_id, first_name, owner_id) VALUES ($1, 'Ann', $2) RETURNING id", [companyId, ann.userId]);
  const pipeline = await one("INSERT INTO rec_pipelines (company_id, name) VALUES ($1, 'Sales') RETURNING id", [companyId]);
  const stage = await one("INSERT INTO rec_stages (company_id, pipeline_id, name, sort_order) VALUES ($1, $2, 'Lead', 0) RETURNING id", [companyId, pipeline]);
  const deal = await one("INSERT INTO rec_deals (company_id, name, pipeline_id, stage_id, position, owner_id) VALUES ($1, 'Rollout', $2, $3, 'a0', $4) RETURNING id", [companyId, pipeline, stage, ann.userId]);
  return { companyId, ann, bob, customer, person, deal };
}

const ref = (objectType: ObjectType, id: string) => ({ objectType, id });
const attachedRows = async (chatId: string) => (await m.pool.query("SELECT rec_company_id, rec_person_id, rec_deal_id FROM chat_records WHERE chat_id = $1", [chatId])).rows;

test("attach to a company, person or deal of the same company, replace, detach; ListChats by record", { skip }, async () => {
  const a = await tenant();
  const b = await tenant();
  const { chat } = await a.ann.store.createChat({ name: "Deal room", memberIds: [a.bob.userId] });
  const id = chat!.chatId;
  await a.ann.store.createChat({ name: "Other" });
  for (const [type, rec] of [[ObjectType.COMPANY, a.customer], [ObjectType.PERSON, a.person], [ObjectType.DEAL, a.deal]] as const) {
    const res = await a.bob.store.setChatRecordDB({ chatId: id, record: ref(type, rec) });
    assert.deepEqual([res.chat?.record?.objectType, res.chat?.record?.id], [type, rec]);
    const listed = await a.ann.store.listChats({ pageSize: 10, record: ref(type, rec) });
    assert.deepEqual(listed.chats.map((c) => [c.chatId, c.record?.id]), [[id, rec]]);
  }
  assert.equal((await attachedRows(id)).length, 1, "one record per chat");
  assert.equal((await a.ann.store.listChats({ pageSize: 10, record: ref(ObjectType.COMPANY, a.customer) })).chats.length, 0, "replaced");
  assert.equal((await a.ann.store.listChats({ pageSize: 10 })).chats.length, 2);

  await expectError(a.ann.store.setChatRecordDB({ chatId: id, record: ref(ObjectType.DEAL, b.deal) }), Code.NotFound, { fields: ["record.id"], message: /no deal with this id/ });
  await expectError(a.ann.store.setChatRecordDB({ chatId: id, record: ref(ObjectType.PERSON, a.deal) }), Code.NotFound, { message: /no person/ });
  await expectError(b.ann.store.setChatRecordDB({ chatId: id, record: ref(ObjectType.DEAL, b.deal) }), Code.NotFound, { message: /not a member/ });
  await expectError(a.ann.store.setChatRecordDB({ chatId: id, record: ref(ObjectType.TASK, a.deal) }), Code.InvalidArgument, { fields: ["record.objectType"] });
  assert.deepEqual(await attachedRows(id), [{ rec_company_id: null, rec_person_id: null, rec_deal_id: a.deal }], "unchanged");
  assert.equal((await b.ann.store.listChats({ pageSize: 10, record: ref(ObjectType.DEAL, a.deal) })).chats.length, 0);

  assert.equal((await a.ann.store.setChatRecordDB({ chatId: id, record: {} })).chat?.record, undefined);
  assert.deepEqual(await attachedRows(id), []);
});

test("schema: another tenant's record or chat is refused for SQL that skips the store; a purged record detaches", { skip }, async () => {
  const a = await tenant();
  const b = await tenant();
  const { chat } = await a.ann.store.createChat({ name: "Room" });
  const bChat = (await b.ann.store.createChat({ name: "Theirs" })).chat!.chatId;
  const c = await m.pool.connect();
  try {
    await c.query(`BEGIN; SET LOCAL ROLE crm_app; SELECT set_config('app.company_id', '${a.companyId}', true)`);
    const insert = async (chatId: string, deal: string | null, person: string | null) => {
      await c.query("SAVEPOINT s");
      return c.query("INSERT INTO chat_records (chat_id, company_id, rec_deal_id, rec_person_id, attached_by) VALUES ($1, $2, $3, $4, $5)", [chatId, a.companyId, deal, person, a.ann.userId]).then(
        () => "ok",
        async (e: { code: string; constraint: string }) => {
          await c.query("ROLLBACK TO SAVEPOINT s");
          return `${e.code} ${e.constraint}`;
        },
      );
    };
    assert.equal(await insert(chat!.chatId, b.deal, null), "23503 chat_records_rec_deal_fkey");
    assert.equal(await insert(bChat, a.deal, null), "23503 chat_records_chat_fkey");
    assert.equal(await insert(chat!.chatId, a.deal, a.person), "23514 chat_records_one_record");
    assert.equal(await insert(chat!.chatId, null, a.person), "ok");
    await c.query("COMMIT");
  } finally {
    c.release();
  }
  await m.pool.query("DELETE FROM rec_people WHERE id = $1", [a.person]);
  assert.deepEqual(await attachedRows(chat!.chatId), []);
  assert.equal((await a.ann.store.listChats({ pageSize: 10 })).chats.length, 1, "the chat stays");
});

/**
 * Chats attached to records (issue 16, "links into what exists"): SetChatRecord attaches a chat
 * to a company, person or deal of the caller's company, replaces or removes it; ListChats lists a
 * record's chats (the record page). The handlers in memory over ../test/fake-store.ts (its
 * records map plays the foreign keys); on real PostgreSQL: ../store/chat-records.test.ts.
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { test } from "node:test";
import { Code, createClient } from "@connectrpc/connect";
import type { Principal } from "@crm/kit";
import { ChatService } from "@crm/gen/crm/chat/v1/chat_pb";
import { DbChatService } from "@crm/gen/crm/db/v1/db_chat_pb";
import { ObjectType } from "@crm/gen/crm/records/v1/common_pb";
import { expectError, inMemory } from "@crm/testkit";
import { fakeHub } from "../test/fake-hub.js";
import { fakeChatStore } from "../test/fake-store.js";
import { chatService } from "./chat-service.js";

function setup() {
  const world = inMemory();
  const hub = fakeHub();
  const store = fakeChatStore(() => Date.parse("2026-03-04T12:00:00.000Z"), hub.emit);
  const db = createClient(DbChatService, world.serve((r) => r.service(DbChatService, store.impl), { from: "chats" }));
  const api = world.serve((r) => r.service(ChatService, chatService({ db, hub, heartbeatMs: 3_600_000 })));
  const company = randomUUID();
  const ann = world.user({ companyId: company });
  const bob = world.user({ companyId: company });
  const cy = world.user({ companyId: company });
  const stranger = world.user({ role: "owner" });
  store.addUsers(ann, bob, cy, stranger);
  const deal = randomUUID();
  const person = randomUUID();
  const strangersDeal = randomUUID();
  store.records.set(deal, { companyId: company, type: "deal" });
  store.records.set(person, { companyId: company, type: "person" });
  store.records.set(strangersDeal, { companyId: stranger.companyId, type: "deal" });
  const chats = (p: Principal) => world.client(ChatService, api, { user: p });
  return { store, ann, bob, cy, stranger, deal, person, strangersDeal, chats };
}

const ref = (objectType: ObjectType, id: string) => ({ objectType, id });

test("a member attaches a chat to a deal, moves it to a person and detaches it; ListChats filters by record", async () => {
  const s = setup();
  const { chat } = await s.chats(s.ann).createChat({ name: "Globex deal", memberIds: [s.bob.userId] });
  const other = (await s.chats(s.ann).createChat({ name: "Lunch" })).chat!;
  const attached = await s.chats(s.bob).setChatRecord({ chatId: chat!.chatId, record: ref(ObjectType.DEAL, s.deal) });
  assert.deepEqual([attached.chat?.record?.objectType, attached.chat?.record?.id], [ObjectType.DEAL, s.deal]);

  const onDeal = await s.chats(s.ann).listChats({ record: ref(ObjectType.DEAL, s.deal) });
  assert.deepEqual(onDeal.chats.map((c) => c.chatId), [chat!.chatId]);
  assert.equal(onDeal.chats[0]?.record?.id, s.deal);
  // Without a filter every chat is listed, each with its record (or none).
  const all = await s.chats(s.ann).listChats({});
  assert.deepEqual(all.chats.map((c) => [c.chatId, c.record?.id]).sort(), [[chat!.chatId, s.deal], [other.chatId, undefined]].sort());
  // Only the caller's chats: cy is not in it.
  assert.equal((await s.chats(s.cy).listChats({ record: ref(ObjectType.DEAL, s.deal) })).chats.length, 0);

  const moved = await s.chats(s.ann).setChatRecord({ chatId: chat!.chatId, record: ref(ObjectType.PERSON, s.person) });
  assert.equal(moved.chat?.record?.objectType, ObjectType.PERSON);
  assert.equal((await s.chats(s.ann).listChats({ record: ref(ObjectType.DEAL, s.deal) })).chats.length, 0);
  const detached = await s.chats(s.ann).setChatRecord({ chatId: chat!.chatId, record: {} });
  assert.equal(detached.chat?.record, undefined);
  assert.equal((await s.chats(s.ann).setChatRecord({ chatId: chat!.chatId })).chat?.record, undefined);
});

test("bad references, non-members and another company's records are refused, and nothing changes", async () => {
  const s = setup();
  const { chat } = await s.chats(s.ann).createChat({ name: "Deal room" });
  const id = chat!.chatId;
  await expectError(s.chats(s.ann).setChatRecord({ chatId: id, record: ref(ObjectType.TASK, s.deal) }), Code.InvalidArgument, { fields: ["record.objectType"] });
  await expectError(s.chats(s.ann).setChatRecord({ chatId: "x", record: ref(ObjectType.DEAL, "nope") }), Code.InvalidArgument, { fields: ["chatId", "record.id"] });
  await expectError(s.chats(s.ann).setChatRecord({ chatId: id, record: ref(ObjectType.DEAL, s.strangersDeal) }), Code.NotFound, { fields: ["record.id"] });
  await expectError(s.chats(s.ann).setChatRecord({ chatId: id, record: ref(ObjectType.COMPANY, s.deal) }), Code.NotFound);
  await expectError(s.chats(s.bob).setChatRecord({ chatId: id, record: ref(ObjectType.DEAL, s.deal) }), Code.NotFound, { message: /not a member/ });
  await expectError(s.chats(s.stranger).setChatRecord({ chatId: id, record: ref(ObjectType.DEAL, s.strangersDeal) }), Code.NotFound);
  await expectError(s.chats(s.ann).listChats({ record: ref(ObjectType.NOTE, s.deal) }), Code.InvalidArgument, { fields: ["record.objectType"] });
  assert.equal(s.store.chats.get(id)?.record, undefined);
  // Another company's record as a filter matches nothing.
  assert.equal((await s.chats(s.ann).listChats({ record: ref(ObjectType.DEAL, s.strangersDeal) })).chats.length, 0);
});

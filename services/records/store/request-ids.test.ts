/**
 * Retry-safe creates on the real PostgreSQL (request-ids.ts, migration 290): the same request id
 * answers with the record the first create made and creates nothing; ids are per user and per
 * tenant; one id cannot serve two object types; racing creates with one id make one record; an id
 * past its window creates again and the change-log trimming pass forgets it.
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, test } from "node:test";
import { Code } from "@connectrpc/connect";
import { installHint, need, postgresUp } from "@crm/testkit";
import { expectCode, fieldsOf, storeHarness, type StoreHarness, type Tenant } from "../test/harness.js";

const skip = need("PostgreSQL", await postgresUp(), installHint.postgres);

let h: StoreHarness;
let A: Tenant;
let B: Tenant;
let stage: string;
before(async () => {
  if (skip) return;
  h = await storeHarness();
  A = await h.tenant("Retries");
  B = await h.tenant("Other");
  const p = (await A.admin.store.createPipelineDB({ request: { pipeline: { name: "Sales", stages: [{ name: "Open" }] } } })).response!.pipeline!;
  stage = p.stages[0]!.id;
});
after(async () => {
  await h?.close();
});

const count = async (table: string, companyId: string) => Number((await h.pool.query<{ n: string }>(`SELECT count(*) AS n FROM ${table} WHERE company_id = $1`, [companyId])).rows[0]!.n);

test("a create sent again with its request id answers with the first record, as it is now, and creates nothing", { skip }, async () => {
  const requestId = randomUUID();
  const first = (await A.member.store.createDealDB({ request: { requestId, deal: { name: "Retried deal", stageId: stage } } })).response!.deal!;
  const deals = await count("rec_deals", A.companyId);
  const timeline = await count("rec_timeline", A.companyId);
  const again = (await A.member.store.createDealDB({ request: { requestId, deal: { name: "Retried deal", stageId: stage } } })).response!.deal!;
  assert.equal(again.id, first.id);
  assert.equal(await count("rec_deals", A.companyId), deals, "no second deal");
  assert.equal(await count("rec_timeline", A.companyId), timeline, "no second timeline entry");
  // Changed since: the retry answers with the record as it is now.
  await A.member.store.updateDealDB({ request: { deal: { id: first.id, name: "Renamed since" }, updateMask: { paths: ["name"] } } });
  const later = (await A.member.store.createDealDB({ request: { requestId, deal: { name: "Retried deal", stageId: stage } } })).response!.deal!;
  assert.equal(later.name, "Renamed since");
  // The upper-case form of the same UUID is the same id.
  assert.equal((await A.member.store.createDealDB({ request: { requestId: requestId.toUpperCase(), deal: { name: "x", stageId: stage } } })).response!.deal!.id, first.id);
});

test("every object type's create takes a request id", { skip }, async () => {
  const ids = { company: randomUUID(), person: randomUUID(), task: randomUUID(), note: randomUUID() };
  const c1 = (await A.member.store.createCompanyDB({ request: { requestId: ids.company, company: { name: "Once Ltd" } } })).response!.company!;
  const c2 = (await A.member.store.createCompanyDB({ request: { requestId: ids.company, company: { name: "Once Ltd" } } })).response!.company!;
  assert.equal(c2.id, c1.id);
  const p1 = (await A.member.store.createPersonDB({ request: { requestId: ids.person, person: { firstName: "Una", lastName: "Vez" } } })).response!.person!;
  assert.equal((await A.member.store.createPersonDB({ request: { requestId: ids.person, person: { firstName: "Una", lastName: "Vez" } } })).response!.person!.id, p1.id);
  const t1 = (await A.member.store.createTaskDB({ request: { requestId: ids.task, task: { title: "Call back once" } } })).response!.task!;
  assert.equal((await A.member.store.createTaskDB({ request: { requestId: ids.task, task: { title: "Call back once" } } })).response!.task!.id, t1.id);
  const n1 = (await A.member.store.createNoteDB({ request: { requestId: ids.note, note: { text: "Said once", links: [{ objectType: 1, id: c1.id }] } } })).response!.note!;
  assert.equal((await A.member.store.createNoteDB({ request: { requestId: ids.note, note: { text: "Said once", links: [{ objectType: 1, id: c1.id }] } } })).response!.note!.id, n1.id);
  assert.equal(Number((await h.pool.query<{ n: string }>("SELECT count(*) AS n FROM rec_companies WHERE company_id = $1 AND name = 'Once Ltd'", [A.companyId])).rows[0]!.n), 1);
});

test("a request id belongs to its user and tenant; another user's same id creates their own record", { skip }, async () => {
  const requestId = randomUUID();
  const mine = (await A.member.store.createCompanyDB({ request: { requestId, company: { name: "Mine Inc" } } })).response!.company!;
  const theirs = (await A.member2.store.createCompanyDB({ request: { requestId, company: { name: "Theirs Inc" } } })).response!.company!;
  const elsewhere = (await B.member.store.createCompanyDB({ request: { requestId, company: { name: "Elsewhere Inc" } } })).response!.company!;
  assert.equal(new Set([mine.id, theirs.id, elsewhere.id]).size, 3);
  // The app role sees only its own user's ids (row-level security), even without a WHERE.
  const seen = await h.asApp(A.member2, async (c) => (await c.query<{ user_id: string }>("SELECT user_id FROM rec_request_ids")).rows);
  assert.ok(seen.length >= 1 && seen.every((r) => r.user_id === A.member2.userId), JSON.stringify(seen));
});

test("bad request ids are refused naming the field, and one id cannot serve two object types", { skip }, async () => {
  const err = await expectCode(A.member.store.createDealDB({ request: { requestId: "not-a-uuid", deal: { name: "Bad", stageId: stage } } }), Code.InvalidArgument);
  assert.deepEqual(fieldsOf(err), ["requestId"]);
  const requestId = randomUUID();
  await A.member.store.createCompanyDB({ request: { requestId, company: { name: "Typed Co" } } });
  const deals = await count("rec_deals", A.companyId);
  const mixed = await expectCode(A.member.store.createDealDB({ request: { requestId, deal: { name: "Other type", stageId: stage } } }), Code.InvalidArgument, /company create/);
  assert.deepEqual(fieldsOf(mixed), ["requestId"]);
  assert.equal(await count("rec_deals", A.companyId), deals, "nothing was created");
});

test("creates racing with one request id make one record and all answer with it", { skip }, async () => {
  const requestId = randomUUID();
  const before = await count("rec_deals", A.companyId);
  const answers = await Promise.all(Array.from({ length: 8 }, () => A.member.store.createDealDB({ request: { requestId, deal: { name: "Raced deal", stageId: stage } } })));
  assert.equal(new Set(answers.map((r) => r.response!.deal!.id)).size, 1);
  assert.equal(await count("rec_deals", A.companyId), before + 1);
});

test("an id past its 24 hours creates again; the trimming pass forgets old ids", { skip }, async () => {
  const requestId = randomUUID();
  const first = (await A.member.store.createTaskDB({ request: { requestId, task: { title: "Yesterday's" } } })).response!.task!;
  await h.pool.query("UPDATE rec_request_ids SET created_at = now() - interval '25 hours' WHERE request_id = $1", [requestId]);
  const second = (await A.member.store.createTaskDB({ request: { requestId, task: { title: "Today's" } } })).response!.task!;
  assert.notEqual(second.id, first.id);
  const again = (await A.member.store.createTaskDB({ request: { requestId, task: { title: "Today's" } } })).response!.task!;
  assert.equal(again.id, second.id, "the new create owns the id now");
  const old = randomUUID();
  await A.member.store.createTaskDB({ request: { requestId: old, task: { title: "Old one" } } });
  await h.pool.query("UPDATE rec_request_ids SET created_at = now() - interval '2 days' WHERE request_id = $1", [old]);
  await h.db.system((sql) => sql.query("SELECT crm_forget_request_ids(make_interval(hours => 24), 1000)"));
  const left = await h.pool.query("SELECT request_id FROM rec_request_ids WHERE request_id = ANY($1::uuid[])", [[old, requestId]]);
  assert.deepEqual(left.rows.map((r: { request_id: string }) => r.request_id), [requestId]);
});

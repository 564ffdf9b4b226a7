/**
 * The benchmark generator (bulk.ts) on a fresh database: COPY writes a tenant's companies, people
 * and deals that the store then reads as its own (lists, custom filters, kanban order, e-mails
 * unique), and nothing of another tenant changes.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { Code } from "@connectrpc/connect";
import { Operator, type Filter } from "@crm/gen/crm/records/v1/common_pb";
import { installHint, need, postgresUp } from "@crm/testkit";
import { expectCode, storeHarness, type StoreHarness, type Tenant } from "../test/harness.js";
import { generate } from "./bulk.js";

const skip = need("PostgreSQL", await postgresUp(), installHint.postgres);

let h: StoreHarness;
let A: Tenant;
let B: Tenant;
before(async () => {
  if (skip) return;
  h = await storeHarness();
  A = await h.tenant("A");
  B = await h.tenant("B");
});
after(async () => {
  await h?.close();
});

const cond = (field: string, operator: Operator, ...values: string[]): Filter => ({ node: { case: "condition", value: { field, operator, values } } }) as Filter;
const listReq = (o: { filter?: Filter; orderBy?: string; pageSize?: number }) => ({ request: { orderBy: "", pageSize: 0, pageToken: "", showDeleted: false, exactTotal: true, ...o } });

test("COPY writes a tenant's records that the store reads as its own", { skip }, async () => {
  const r = await generate({ databaseUrl: h.tdb.url, companyId: A.companyId, companies: 30, people: 300, deals: 600 });
  assert.deepEqual([r.companies, r.people, r.deals], [30, 300, 600]);
  const u = A.member;
  assert.equal((await u.store.listCompaniesDB(listReq({}))).response!.totalSize, 30n);
  assert.equal((await u.store.listPeopleDB(listReq({}))).response!.totalSize, 300n);
  assert.equal((await u.store.listDealsDB(listReq({}))).response!.totalSize, 600n);
  assert.equal((await u.store.listDealsDB(listReq({ filter: cond("custom.segment", Operator.EQUALS, "smb") }))).response!.totalSize, 200n);
  const board = (await u.store.listDealsDB(listReq({ filter: cond("stage_id", Operator.EQUALS, (await u.store.getDealDB({ request: { id: (await u.store.listDealsDB(listReq({ pageSize: 1 }))).response!.deals[0]!.id } })).response!.deal!.stageId), orderBy: "position", pageSize: 500 }))).response!.deals;
  assert.equal(board.length, 100);
  assert.deepEqual(board.map((d) => d.position), board.map((d) => d.position).sort(), "kanban keys in order");
  // The e-mails are taken in the tenant.
  const taken = (await u.store.listPeopleDB(listReq({ pageSize: 1 }))).response!.people[0]!.emails[0]!;
  await expectCode(u.store.createPersonDB({ request: { person: { firstName: "Dup", emails: [taken.toUpperCase()] } } }), Code.AlreadyExists);
  assert.equal((await B.owner.store.listDealsDB(listReq({}))).response!.totalSize, 0n, "another tenant sees none of it");
});

test("a tenant that does not exist is refused before anything is written", { skip }, async () => {
  await assert.rejects(generate({ databaseUrl: h.tdb.url, companyId: "00000000-0000-4000-8000-000000000000", companies: 1, people: 1, deals: 1 }), /no tenant/);
});

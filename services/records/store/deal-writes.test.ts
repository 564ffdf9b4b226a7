/**
 * What the deals' writes keep doing now that they take few round trips (deals.ts): the vocabulary
 * trigger on a renamed deal (a row trigger on UPDATE OF name, migration 1700000000201), a created
 * deal's people, stage history and timeline written in its transaction, and the event carrying
 * the deal as the call answered it.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { decodeRecordChange } from "@crm/contracts/events";
import { installHint, need, postgresUp } from "@crm/testkit";
import { storeHarness, type StoreHarness, type Tenant } from "../test/harness.js";

const skip = need("PostgreSQL", await postgresUp(), installHint.postgres);

let h: StoreHarness;
let A: Tenant;
let open: string;
let won: string;
before(async () => {
  if (skip) return;
  h = await storeHarness();
  A = await h.tenant("Writes");
  const p = (await A.admin.store.createPipelineDB({ request: { pipeline: { name: "Sales", stages: [{ name: "Open" }, { name: "Won", kind: 2 }] } } })).response!.pipeline!;
  [open, won] = p.stages.map((s) => s.id) as [string, string];
});
after(async () => {
  await h?.close();
});

const words = async () =>
  (await h.pool.query<{ word: string }>("SELECT word FROM rec_search_words WHERE company_id = $1", [A.companyId])).rows.map((r) => r.word);

test("a renamed deal's new words join the tenant's vocabulary; a move and an amount add none", { skip }, async () => {
  const d = (await A.member.store.createDealDB({ request: { deal: { name: "Plain beginning", stageId: open } } })).response!.deal!;
  assert.ok((await words()).includes("beginning"));
  const renamed = (await A.member.store.updateDealDB({ request: { deal: { id: d.id, name: "Quokka Zanzibarish" }, updateMask: { paths: ["name"] } } })).response!.deal!;
  assert.equal(renamed.name, "Quokka Zanzibarish");
  const after = await words();
  assert.ok(after.includes("quokka") && after.includes("zanzibarish"), `the new words are in the vocabulary: ${after}`);
  await A.member.store.moveDealDB({ request: { id: d.id, stageId: won } });
  await A.member.store.updateDealDB({ request: { deal: { id: d.id, amountMinor: 500n, currencyCode: "EUR" }, updateMask: { paths: ["amount_minor", "currency_code"] } } });
  assert.deepEqual((await words()).sort(), [...after].sort());
});

test("a created deal: its people, its stage history, its timeline entry and its event, as the call answered", { skip }, async () => {
  const person = (await A.member.store.createPersonDB({ request: { person: { firstName: "Ann", lastName: "Lee" } } })).response!.person!;
  const d = (await A.member.store.createDealDB({ request: { deal: { name: "With people", stageId: won, personIds: [person.id], amountMinor: 1200n, currencyCode: "EUR" } } })).response!.deal!;
  assert.deepEqual(d.personIds, [person.id]);
  assert.ok(d.closeTime, "a deal created in a won stage is closed");
  const { rows: history } = await h.pool.query("SELECT stage_id, actor_id FROM rec_deal_stage_history WHERE deal_id = $1", [d.id]);
  assert.deepEqual(history, [{ stage_id: won, actor_id: A.member.userId }]);
  const { rows: timeline } = await h.pool.query<{ action: string; actor_id: string; id: string }>("SELECT action, actor_id, id::text FROM rec_timeline WHERE record_id = $1", [d.id]);
  assert.deepEqual(timeline.map((t) => [t.action, t.actor_id]), [["created", A.member.userId]]);
  const { rows: changes } = await h.pool.query<{ event: Buffer }>("SELECT event FROM rec_changes WHERE record_id = $1", [d.id]);
  assert.equal(changes.length, 1);
  const e = decodeRecordChange(changes[0]!.event);
  assert.ok(e.record?.record.case === "deal");
  assert.deepEqual(e.record.record.value.personIds, [person.id]);
  assert.equal(e.record.record.value.etag, d.etag);
  assert.equal(e.record.record.value.position, d.position);
  // Read back, the deal is what the call answered.
  const read = (await A.member.store.getDealDB({ request: { id: d.id } })).response!.deal!;
  assert.deepEqual({ ...read, updateTime: undefined }, { ...d, updateTime: undefined });
});

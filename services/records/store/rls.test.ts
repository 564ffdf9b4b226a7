/**
 * Permissions live in PostgreSQL, not only in the store's code: SQL that forgets its WHERE, run as
 * the app role with a tenant, an acting user and their role set as the store sets them, still sees
 * only its tenant and changes only what the role may.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { installHint, need, postgresUp } from "@crm/testkit";
import { storeHarness, type StoreHarness, type Tenant } from "../test/harness.js";

const skip = need("PostgreSQL", await postgresUp(), installHint.postgres);

let h: StoreHarness;
let A: Tenant;
let B: Tenant;
let pipelineA: { stageId: string };
before(async () => {
  if (skip) return;
  h = await storeHarness();
  A = await h.tenant("A");
  B = await h.tenant("B");
  const p = (await A.admin.store.createPipelineDB({ request: { pipeline: { name: "P", stages: [{ name: "S" }] } } })).response!.pipeline!;
  pipelineA = { stageId: p.stages[0]!.id };
  for (const u of [A.member, A.member, A.member2, A.admin]) await u.store.createDealDB({ request: { deal: { name: `deal of ${u.role}`, stageId: pipelineA.stageId } } });
  const pB = (await B.owner.store.createPipelineDB({ request: { pipeline: { name: "P", stages: [{ name: "S" }] } } })).response!.pipeline!;
  await B.owner.store.createDealDB({ request: { deal: { name: "B's deal", stageId: pB.stages[0]!.id } } });
  await A.member.store.createCompanyDB({ request: { company: { name: "A company" } } });
  await B.owner.store.createCompanyDB({ request: { company: { name: "B company" } } });
});
after(async () => {
  await h?.close();
});

const count = async (c: import("pg").PoolClient, sql: string) => Number((await c.query<{ n: string }>(sql)).rows[0]!.n);
const sqlState = (p: Promise<unknown>) => p.then(() => "ok", (e: { code?: string }) => e.code ?? String(e));

test("a member's UPDATE without WHERE changes only the deals they own", { skip }, async () => {
  await h.asApp(A.member, async (c) => {
    const res = await c.query("UPDATE rec_deals SET name = 'hijacked'");
    assert.equal(res.rowCount, 2, "the member owns two deals");
    assert.equal(await count(c, "SELECT count(*) AS n FROM rec_deals WHERE name = 'hijacked' AND owner_id <> crm_user()"), 0);
    assert.equal(await count(c, "SELECT count(*) AS n FROM rec_deals"), 4, "but reads every deal of the tenant");
    assert.equal((await c.query("DELETE FROM rec_deals")).rowCount, 0, "erasing is for owners and admins");
    assert.equal((await c.query("UPDATE rec_stages SET name = 'mine'")).rowCount, 0, "stages are the admins'");
    assert.equal((await c.query("UPDATE rec_companies SET name = 'mine'")).rowCount, 1);
  });
  await h.asApp(A.admin, async (c) => {
    assert.equal((await c.query("UPDATE rec_deals SET name = 'admin'")).rowCount, 4, "admins change everything of their tenant");
  });
});

test("a query without company_id sees only its tenant, whatever the role", { skip }, async () => {
  for (const [u, deals, companies] of [[A.member, 4, 1], [A.owner, 4, 1], [B.owner, 1, 1]] as const) {
    await h.asApp(u, async (c) => {
      assert.equal(await count(c, "SELECT count(*) AS n FROM rec_deals"), deals);
      assert.equal(await count(c, "SELECT count(*) AS n FROM rec_companies"), companies);
      assert.equal(await count(c, "SELECT count(DISTINCT company_id) AS n FROM rec_timeline"), 1);
      assert.equal((await c.query("UPDATE rec_deals SET name = 'everyone' WHERE company_id <> crm_company()")).rowCount, 0);
    });
  }
});

test("rows of another owner, tenant or actor cannot be written; the timeline is never rewritten", { skip }, async () => {
  await h.asApp(A.member, async (c) => {
    await c.query("SAVEPOINT s");
    assert.equal(await sqlState(c.query("INSERT INTO rec_companies (company_id, name, owner_id) VALUES ($1, 'for them', $2)", [A.companyId, A.member2.userId])), "42501");
    await c.query("ROLLBACK TO SAVEPOINT s");
    assert.equal(await sqlState(c.query("INSERT INTO rec_companies (company_id, name, owner_id) VALUES ($1, 'elsewhere', $2)", [B.companyId, B.owner.userId])), "42501");
    await c.query("ROLLBACK TO SAVEPOINT s");
    assert.equal(await sqlState(c.query("INSERT INTO rec_timeline (company_id, object_type, record_id, action, actor_type, actor_id) VALUES ($1, 'deal', gen_random_uuid(), 'updated', 'user', $2)", [A.companyId, A.member2.userId])), "42501", "entries only under one's own name");
    await c.query("ROLLBACK TO SAVEPOINT s");
    assert.equal(await sqlState(c.query("UPDATE rec_timeline SET changes = '[]'")), "42501", "no UPDATE grant");
    await c.query("ROLLBACK TO SAVEPOINT s");
    assert.equal(await sqlState(c.query("UPDATE rec_companies SET owner_id = $1", [A.member2.userId])), "42501", "a member cannot hand a record away");
  });
});

test("without an acting user (or with a deactivated one) nothing is visible", { skip }, async () => {
  const c = await h.pool.connect();
  try {
    await c.query(`BEGIN; SET LOCAL ROLE crm_app; SELECT set_config('app.company_id', '${A.companyId}', true)`);
    assert.equal(await count(c, "SELECT count(*) AS n FROM rec_deals"), 0);
    assert.equal((await c.query("UPDATE rec_deals SET name = 'x'")).rowCount, 0);
  } finally {
    await c.query("ROLLBACK");
    c.release();
  }
  await h.pool.query("UPDATE users SET status = 'deactivated' WHERE id = $1", [A.member2.userId]);
  try {
    await assert.rejects(A.member2.store.listDealsDB({ request: { orderBy: "", pageSize: 0, pageToken: "", showDeleted: false, exactTotal: false } }), /not active/);
  } finally {
    await h.pool.query("UPDATE users SET status = 'active' WHERE id = $1", [A.member2.userId]);
  }
});

/**
 * Row-level security of tasks, notes, their links and custom field definitions, proven with SQL
 * that forgets its WHERE, run as the app role with a tenant, an acting user and their role set as
 * the store sets them: members change the tasks they own or are assigned and the notes they
 * wrote; an assignee cannot pass a task to a third user; only owners and admins erase, and define
 * fields; another tenant sees nothing.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { ObjectType } from "@crm/gen/crm/records/v1/common_pb";
import { FieldType } from "@crm/gen/crm/records/v1/field_pb";
import { installHint, need, postgresUp } from "@crm/testkit";
import { storeHarness, type StoreHarness, type Tenant } from "../test/harness.js";

const skip = need("PostgreSQL", await postgresUp(), installHint.postgres);

let h: StoreHarness;
let A: Tenant;
let B: Tenant;
let dealA: string;
before(async () => {
  if (skip) return;
  h = await storeHarness();
  A = await h.tenant("A");
  B = await h.tenant("B");
  const stageId = (await A.admin.store.createPipelineDB({ request: { pipeline: { name: "P", stages: [{ name: "S" }] } } })).response!.pipeline!.stages[0]!.id;
  dealA = (await A.admin.store.createDealDB({ request: { deal: { name: "D", stageId } } })).response!.deal!.id;
  const link = [{ objectType: ObjectType.DEAL, id: dealA }];
  // member: owns one task, is assigned one of member2's; member2 owns two; the admin one.
  await A.member.store.createTaskDB({ request: { task: { title: "member's", links: link } } });
  await A.member2.store.createTaskDB({ request: { task: { title: "assigned to member", assigneeId: A.member.userId, links: link } } });
  await A.member2.store.createTaskDB({ request: { task: { title: "member2's" } } });
  await A.admin.store.createTaskDB({ request: { task: { title: "admin's" } } });
  await A.member.store.createNoteDB({ request: { note: { text: "member's note", links: link } } });
  await A.member2.store.createNoteDB({ request: { note: { text: "member2's note", links: link } } });
  await A.admin.store.createFieldDB({ request: { field: { objectType: ObjectType.DEAL, key: "tier", label: "Tier", type: FieldType.TEXT } } });
  await B.owner.store.createTaskDB({ request: { task: { title: "B's" } } });
  await B.owner.store.createNoteDB({ request: { note: { text: "B's note" } } });
});
after(async () => {
  await h?.close();
});

const count = async (c: import("pg").PoolClient, sql: string) => Number((await c.query<{ n: string }>(sql)).rows[0]!.n);
const sqlState = (p: Promise<unknown>) => p.then(() => "ok", (e: { code?: string }) => e.code ?? String(e));

test("a member's UPDATE without WHERE changes the tasks they own or are assigned, the notes they wrote; DELETE nothing", { skip }, async () => {
  await h.asApp(A.member, async (c) => {
    assert.equal((await c.query("UPDATE rec_tasks SET title = 'mine'")).rowCount, 2, "owned + assigned");
    assert.equal(await count(c, "SELECT count(*) AS n FROM rec_tasks"), 4, "reads every task of the tenant");
    assert.equal((await c.query("UPDATE rec_notes SET text = 'mine'")).rowCount, 1);
    assert.equal(await count(c, "SELECT count(*) AS n FROM rec_notes"), 2);
    assert.equal((await c.query("DELETE FROM rec_tasks")).rowCount, 0, "erasing is for owners and admins");
    assert.equal((await c.query("DELETE FROM rec_notes")).rowCount, 0);
    assert.equal((await c.query("DELETE FROM rec_task_links")).rowCount, 2, "links of the tasks they may change only");
    assert.equal((await c.query("DELETE FROM rec_note_links")).rowCount, 1);
    assert.equal((await c.query("UPDATE rec_fields SET label = 'x'")).rowCount, 0, "fields are the admins'");
  });
  await h.asApp(A.admin, async (c) => {
    assert.equal((await c.query("UPDATE rec_tasks SET title = 'admin'")).rowCount, 4);
    assert.equal((await c.query("UPDATE rec_notes SET text = 'admin'")).rowCount, 2);
    assert.equal((await c.query("UPDATE rec_fields SET label = 'Tier'")).rowCount, 1);
  });
});

test("rows for another owner, author, assignee or tenant cannot be written", { skip }, async () => {
  await h.asApp(A.member, async (c) => {
    await c.query("SAVEPOINT s");
    const bad = async (sql: string, params: unknown[] = []) => {
      const state = await sqlState(c.query(sql, params));
      await c.query("ROLLBACK TO SAVEPOINT s");
      return state;
    };
    assert.equal(await bad("INSERT INTO rec_tasks (company_id, title, owner_id) VALUES ($1, 'for them', $2)", [A.companyId, A.member2.userId]), "42501");
    assert.equal(await bad("INSERT INTO rec_notes (company_id, text, author_id) VALUES ($1, 'as them', $2)", [A.companyId, A.member2.userId]), "42501");
    assert.equal(await bad("INSERT INTO rec_tasks (company_id, title, owner_id) VALUES ($1, 'elsewhere', $2)", [B.companyId, B.owner.userId]), "42501");
    assert.equal(await bad("UPDATE rec_tasks SET assignee_id = $1 WHERE title = 'assigned to member'", [A.admin.userId]), "42501", "an assignee cannot pass the task on");
    assert.equal(await bad("UPDATE rec_notes SET author_id = $1", [A.member2.userId]), "42501", "nor hand a note to another author");
    assert.equal(await bad("INSERT INTO rec_fields (company_id, object_type, key, label, type) VALUES ($1, 'deal', 'x', 'X', 'text')", [A.companyId]), "42501");
    assert.equal(
      await bad("INSERT INTO rec_task_links (company_id, task_id, object_type, record_id, ord) SELECT $1, id, 'deal', $2, 9 FROM rec_tasks WHERE title = 'member2''s'", [A.companyId, dealA]),
      "42501",
      "nor link a task they may not change",
    );
  });
});

test("a query without company_id sees only its tenant's tasks, notes and fields", { skip }, async () => {
  for (const [u, tasks, notes, fields] of [[A.member, 4, 2, 1], [B.owner, 1, 1, 0]] as const) {
    await h.asApp(u, async (c) => {
      assert.equal(await count(c, "SELECT count(*) AS n FROM rec_tasks"), tasks);
      assert.equal(await count(c, "SELECT count(*) AS n FROM rec_notes"), notes);
      assert.equal(await count(c, "SELECT count(*) AS n FROM rec_fields"), fields);
      assert.equal((await c.query("UPDATE rec_tasks SET title = 'x' WHERE company_id <> crm_company()")).rowCount, 0);
    });
  }
});

/**
 * The CRM end to end through the all-in-one over real HTTP (Connect JSON over HTTP/1.1 and gRPC
 * over HTTP/2), on the machine's PostgreSQL: an owner sets up a pipeline, a member adds a company,
 * a person and deals, moves them on the board and reads the timeline; another company sees none of
 * it. Then the newcomer's path: the same on PGlite (nothing installed), where the migrations run too.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, test } from "node:test";
import pg from "pg";
import { Code } from "@connectrpc/connect";
import { AuthService } from "@crm/gen/crm/auth/v1/auth_pb";
import { ObjectType, Operator } from "@crm/gen/crm/records/v1/common_pb";
import { CompanyService } from "@crm/gen/crm/records/v1/company_pb";
import { DealService, DealStatus } from "@crm/gen/crm/records/v1/deal_pb";
import { PersonService } from "@crm/gen/crm/records/v1/person_pb";
import { PipelineService, StageKind } from "@crm/gen/crm/records/v1/pipeline_pb";
import { TimelineAction, TimelineService } from "@crm/gen/crm/records/v1/timeline_pb";
import { FieldService, FieldType } from "@crm/gen/crm/records/v1/field_pb";
import { NoteService } from "@crm/gen/crm/records/v1/note_pb";
import { TaskService } from "@crm/gen/crm/records/v1/task_pb";
import { hashPassword } from "@crm/auth/passwords";
import { freshDatabase, installHint, need, postgresUp, type TestApp, type TestDatabase } from "@crm/testkit";
import { startTestApp } from "@crm/all/test-app";
import { expectCode, fieldsOf } from "./harness.js";

const skip = need("PostgreSQL", await postgresUp(), installHint.postgres);
const PASSWORD = "correct horse battery staple";

let db: TestDatabase;
let app: TestApp;
before(async () => {
  if (skip) return;
  db = await freshDatabase();
  app = await startTestApp({ DATABASE_URL: db.url });
});
after(async () => {
  await app?.close();
  await db?.drop();
});

function clients(a: TestApp, token: string, protocol: "connect" | "grpc" = "connect") {
  return {
    companies: a.client(CompanyService, { token, protocol }),
    people: a.client(PersonService, { token, protocol }),
    pipelines: a.client(PipelineService, { token, protocol }),
    deals: a.client(DealService, { token, protocol }),
    timeline: a.client(TimelineService, { token, protocol }),
    fields: a.client(FieldService, { token, protocol }),
    tasks: a.client(TaskService, { token, protocol }),
    notes: a.client(NoteService, { token, protocol }),
  };
}

async function register(a: TestApp) {
  const t = randomBytes(4).toString("hex");
  const reg = await a.client(AuthService).registerCompany({ companyName: `CRM ${t}`, email: `owner-${t}@example.com`, password: PASSWORD, ownerName: "Owner" });
  return { ...reg, t };
}

test("a company's CRM through the all-in-one: pipeline, company, person, deals on the board, timeline; another tenant sees nothing", { skip }, async () => {
  const owner = await register(app);
  // A member, added below the service (the admin service is not what this test is about).
  const email = `member-${owner.t}@example.com`;
  const c = new pg.Client({ connectionString: db.url });
  await c.connect();
  try {
    await c.query("INSERT INTO users (company_id, email, name, role, status, password_hash) VALUES ($1, $2, 'Member', 'member', 'active', $3)", [owner.companyId, email, await hashPassword(PASSWORD)]);
  } finally {
    await c.end();
  }
  const login = await app.client(AuthService).login({ email, password: PASSWORD });
  const admin = clients(app, owner.accessToken, "grpc");
  const me = clients(app, login.accessToken);

  const pipeline = (await admin.pipelines.createPipeline({
    pipeline: { name: "Sales", stages: [{ name: "Lead", probability: 10 }, { name: "Proposal", probability: 50 }, { name: "Won", probability: 100, kind: StageKind.WON }] },
  })).pipeline!;
  await expectCode(me.pipelines.createPipeline({ pipeline: { name: "Mine" } }), Code.PermissionDenied);
  const [lead, proposal, won] = pipeline.stages;

  const acme = (await me.companies.createCompany({ company: { name: "Acme", domain: "www.acme.example", tags: ["vip"] } })).company!;
  const ann = (await me.people.createPerson({ person: { firstName: "Ann", emails: ["ann@acme.example"], phones: ["+1 415 555 0100"], companies: [{ companyId: acme.id, role: "CTO" }] } })).person!;
  const big = (await me.deals.createDeal({ deal: { name: "Big", stageId: lead!.id, amountMinor: 500000n, currencyCode: "USD", companyId: acme.id, personIds: [ann.id] } })).deal!;
  const small = (await me.deals.createDeal({ deal: { name: "Small", pipelineId: pipeline.id, amountMinor: 1000n, currencyCode: "USD" } })).deal!;

  // Drag "Small" above "Big", then "Big" to Proposal and on to Won.
  await me.deals.moveDeal({ id: small.id, beforeDealId: big.id, etag: small.etag });
  const column = await me.deals.listDeals({ filter: { node: { case: "condition", value: { field: "stage_id", operator: Operator.EQUALS, values: [lead!.id] } } }, orderBy: "position" });
  assert.deepEqual(column.deals.map((d) => d.name), ["Small", "Big"]);
  await me.deals.moveDeal({ id: big.id, stageId: proposal!.id });
  const closed = (await me.deals.moveDeal({ id: big.id, stageId: won!.id })).deal!;
  assert.equal(closed.status, DealStatus.WON);
  await expectCode(me.deals.updateDeal({ deal: { id: big.id, name: "stale", etag: big.etag }, updateMask: { paths: ["name"] } }), Code.Aborted);

  const tl = (await me.timeline.listTimeline({ objectType: ObjectType.DEAL, recordId: big.id, pageSize: 2 }));
  assert.deepEqual(tl.entries.map((e) => e.action), [TimelineAction.STAGE_CHANGED, TimelineAction.STAGE_CHANGED]);
  assert.equal(tl.entries[0]!.actor?.id, login.userId);
  const rest = await me.timeline.listTimeline({ objectType: ObjectType.DEAL, recordId: big.id, pageSize: 2, pageToken: tl.nextPageToken });
  assert.deepEqual(rest.entries.map((e) => e.action), [TimelineAction.CREATED]);

  const bad = await expectCode(me.companies.createCompany({ company: { name: "", domain: "nope" } }), Code.InvalidArgument);
  assert.match(bad.rawMessage, /company.name.*company.domain|company.domain.*company.name/);

  // Another company: nothing of the first is visible or reachable.
  const other = clients(app, (await register(app)).accessToken);
  await expectCode(other.deals.getDeal({ id: big.id }), Code.NotFound);
  await expectCode(other.companies.updateCompany({ company: { id: acme.id, name: "x" }, updateMask: { paths: ["name"] } }), Code.NotFound);
  assert.equal((await other.deals.listDeals({ exactTotal: true })).totalSize, 0n);
  assert.equal((await admin.deals.listDeals({ exactTotal: true })).totalSize, 2n);
});

test("custom fields, tasks and notes through the all-in-one: a member's day on a deal; the trash and its purge", { skip }, async () => {
  const owner = await register(app);
  const admin = clients(app, owner.accessToken);
  const email = `member2-${owner.t}@example.com`;
  const c = new pg.Client({ connectionString: db.url });
  await c.connect();
  try {
    await c.query("INSERT INTO users (company_id, email, name, role, status, password_hash) VALUES ($1, $2, 'Member', 'member', 'active', $3)", [owner.companyId, email, await hashPassword(PASSWORD)]);
  } finally {
    await c.end();
  }
  const login = await app.client(AuthService).login({ email, password: PASSWORD });
  const me = clients(app, login.accessToken, "grpc");

  // The owner defines fields; a member may not.
  await admin.fields.createField({ field: { objectType: ObjectType.DEAL, key: "source", label: "Source", type: FieldType.SELECT, options: [{ value: "Web" }, { value: "Referral" }] } });
  await admin.fields.createField({ field: { objectType: ObjectType.DEAL, key: "budget", label: "Budget", type: FieldType.MONEY, currencyCode: "EUR", required: true } });
  await expectCode(me.fields.createField({ field: { objectType: ObjectType.DEAL, key: "x", label: "X", type: FieldType.TEXT } }), Code.PermissionDenied);

  const p = (await admin.pipelines.createPipeline({ pipeline: { name: "Sales", stages: [{ name: "Lead" }, { name: "Won", kind: StageKind.WON }] } })).pipeline!;
  const bad = await expectCode(me.deals.createDeal({ deal: { name: "", pipelineId: p.id, custom: { source: "TV" } } }), Code.InvalidArgument);
  assert.deepEqual(fieldsOf(bad).sort(), ["deal.custom.budget", "deal.custom.source", "deal.name"]);
  const d = (await me.deals.createDeal({ deal: { name: "Rollout", pipelineId: p.id, custom: { source: "referral", budget: "2500000" } } })).deal!;
  assert.deepEqual(d.custom, { source: "Referral", budget: 2500000 });
  const found = await me.deals.listDeals({ filter: { node: { case: "condition", value: { field: "custom.source", operator: Operator.EQUALS, values: ["referral"] } } }, orderBy: "custom.budget desc" });
  assert.deepEqual(found.deals.map((x) => x.id), [d.id]);

  // A task for the member and a note on the deal; my open tasks; done.
  const task = (await me.tasks.createTask({ task: { title: "Send the contract", links: [{ objectType: ObjectType.DEAL, id: d.id }] } })).task!;
  await me.notes.createNote({ note: { text: "They want **SSO**.", links: [{ objectType: ObjectType.DEAL, id: d.id }] } });
  const mine = { filter: { node: { case: "and" as const, value: { filters: [
    { node: { case: "condition" as const, value: { field: "assignee_id", operator: Operator.EQUALS, values: ["me"] } } },
    { node: { case: "condition" as const, value: { field: "done", operator: Operator.EQUALS, values: ["false"] } } },
  ] } } }, orderBy: "due_time" };
  assert.deepEqual((await me.tasks.listTasks(mine)).tasks.map((x) => x.id), [task.id]);
  await me.tasks.updateTask({ task: { id: task.id, done: true, etag: task.etag }, updateMask: { paths: ["done"] } });
  assert.deepEqual((await me.tasks.listTasks(mine)).tasks, []);
  const tl = (await me.timeline.listTimeline({ objectType: ObjectType.DEAL, recordId: d.id })).entries;
  assert.deepEqual(tl.map((e) => [TimelineAction[e.action], e.subject ? ObjectType[e.subject.objectType] : ""]), [["UPDATED", "TASK"], ["CREATED", "NOTE"], ["CREATED", "TASK"], ["CREATED", ""]]);

  // The trash: the deal leaves lists, keeps its timeline; a member may not purge, the owner may.
  await me.deals.deleteDeal({ id: d.id });
  assert.equal((await me.deals.listDeals({ exactTotal: true })).totalSize, 0n);
  assert.equal((await me.timeline.listTimeline({ objectType: ObjectType.DEAL, recordId: d.id })).entries[0]!.action, TimelineAction.DELETED);
  await expectCode(me.deals.purgeDeal({ id: d.id }), Code.PermissionDenied);
  await admin.deals.purgeDeal({ id: d.id });
  await expectCode(me.timeline.listTimeline({ objectType: ObjectType.DEAL, recordId: d.id }), Code.NotFound);
  assert.deepEqual((await me.tasks.getTask({ id: task.id })).task!.links, [], "a purged deal leaves its tasks' links");
});

test("nothing installed: the same on PGlite, migrations and row-level security included", async () => {
  const embedded = await startTestApp({});
  try {
    const owner = await register(embedded);
    const me = clients(embedded, owner.accessToken);
    const p = (await me.pipelines.createPipeline({ pipeline: { name: "P", stages: [{ name: "A" }, { name: "B", kind: StageKind.LOST }] } })).pipeline!;
    const d = (await me.deals.createDeal({ deal: { name: "D", pipelineId: p.id } })).deal!;
    const moved = (await me.deals.moveDeal({ id: d.id, stageId: p.stages[1]!.id, lostReason: "budget" })).deal!;
    assert.equal(moved.status, DealStatus.LOST);
    assert.equal((await me.timeline.listTimeline({ objectType: ObjectType.DEAL, recordId: d.id })).entries.length, 2);
    const other = clients(embedded, (await register(embedded)).accessToken);
    await expectCode(other.deals.getDeal({ id: d.id }), Code.NotFound);
  } finally {
    await embedded.close();
  }
});

/**
 * Live lists, search and saved views end to end through the all-in-one over real HTTP: a member
 * watches a kanban column while deals are created and moved (replay, then live, in version order,
 * each once, entering and leaving the view), searches across companies, people and deals with
 * typos, prefixes, accents, Cyrillic, an e-mail domain and phone digits, and saves views; another
 * company sees none of it. On the machine's PostgreSQL, and on PGlite (nothing installed): its
 * pg_trgm, unaccent and btree_gin serve the same search.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, test } from "node:test";
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import { AuthService } from "@crm/gen/crm/auth/v1/auth_pb";
import { ObjectType, Operator, type Filter } from "@crm/gen/crm/records/v1/common_pb";
import { CompanyService } from "@crm/gen/crm/records/v1/company_pb";
import { DealService } from "@crm/gen/crm/records/v1/deal_pb";
import { PersonService } from "@crm/gen/crm/records/v1/person_pb";
import { PipelineService } from "@crm/gen/crm/records/v1/pipeline_pb";
import { SearchService } from "@crm/gen/crm/records/v1/search_pb";
import { TaskService } from "@crm/gen/crm/records/v1/task_pb";
import { ChangeAction, RecordStreamService, type WatchedChange } from "@crm/gen/crm/records/v1/stream_pb";
import { ViewService } from "@crm/gen/crm/records/v1/view_pb";
import { freshDatabase, installHint, need, postgresUp, until, type TestApp, type TestDatabase } from "@crm/testkit";
import { startTestApp } from "@crm/all/test-app";
import { expectCode } from "./harness.js";

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

async function register(a: TestApp) {
  const t = randomBytes(4).toString("hex");
  const reg = await a.client(AuthService).registerCompany({ companyName: `Live ${t}`, email: `owner-${t}@example.com`, password: PASSWORD, ownerName: "Owner" });
  const token = reg.accessToken;
  return {
    companies: a.client(CompanyService, { token }),
    people: a.client(PersonService, { token }),
    pipelines: a.client(PipelineService, { token }),
    deals: a.client(DealService, { token }),
    search: a.client(SearchService, { token }),
    views: a.client(ViewService, { token }),
    tasks: a.client(TaskService, { token }),
    stream: a.client(RecordStreamService, { token }),
    grpcStream: a.client(RecordStreamService, { token, protocol: "grpc" }),
  };
}

/** A WatchRecords stream read in the background. */
function watch(client: Client<typeof RecordStreamService>, req: { objectType: ObjectType; filter?: Filter; afterVersion?: bigint }) {
  const ac = new AbortController();
  const w = { changes: [] as WatchedChange[], heartbeats: [] as bigint[], error: undefined as ConnectError | undefined, ended: false };
  const done = (async () => {
    try {
      for await (const ev of client.watchRecords(req, { signal: ac.signal })) {
        if (ev.event.case === "change") w.changes.push(ev.event.value);
        else if (ev.event.case === "heartbeat") w.heartbeats.push(ev.event.value.lastVersion);
      }
    } catch (err) {
      if (!ac.signal.aborted) w.error = ConnectError.from(err);
    } finally {
      w.ended = true;
    }
  })();
  return {
    w,
    live: () => until("the stream to go live", () => w.heartbeats.length > 0 || w.ended, 15_000),
    count: (n: number) => until(`${n} changes (have ${w.changes.length})`, () => w.changes.length >= n || w.ended, 15_000),
    close: async () => (ac.abort(), await done),
  };
}

const cond = (field: string, value: string) => ({ node: { case: "condition", value: { field, operator: Operator.EQUALS, values: [value] } } }) as Filter;
const stageIs = (id: string): Filter => ({ node: { case: "condition", value: { field: "stage_id", operator: Operator.EQUALS, values: [id] } } }) as Filter;

async function liveFlow(a: TestApp) {
  const me = await register(a);
  const p = (await me.pipelines.createPipeline({ pipeline: { name: "Sales", stages: [{ name: "Lead" }, { name: "Proposal" }] } })).pipeline!;
  const [lead, proposal] = p.stages;
  const first = (await me.deals.createDeal({ deal: { name: "Before the watch", stageId: lead!.id } })).deal!;

  // Replay from 0, then live: the Lead column.
  const column = watch(me.stream, { objectType: ObjectType.DEAL, filter: stageIs(lead!.id), afterVersion: 0n });
  await column.live();
  assert.equal(column.w.changes.length, 1, "the replay: the deal created before");
  const second = (await me.deals.createDeal({ deal: { name: "While watching", stageId: lead!.id } })).deal!;
  await me.companies.createCompany({ company: { name: "Not a deal" } });
  await me.deals.createDeal({ deal: { name: "Another column", stageId: proposal!.id } });
  await me.deals.moveDeal({ id: first.id, stageId: proposal!.id });
  await column.count(3);
  const seen = column.w.changes.map((c) => [c.change!.recordId, ChangeAction[c.change!.action], c.inView]);
  assert.deepEqual(seen, [
    [first.id, "CREATED", true],
    [second.id, "CREATED", true],
    [first.id, "STAGE_CHANGED", false], // it left the column
  ]);
  const versions = column.w.changes.map((c) => Number(c.change!.version));
  assert.deepEqual(versions, [1, 2, 5], "versions are the tenant's: the company and the other column's deal took 3 and 4");
  await column.close();

  // Reconnect after the last version seen (here over gRPC): only what came after, once.
  await me.deals.deleteDeal({ id: second.id });
  const again = watch(me.grpcStream, { objectType: ObjectType.DEAL, filter: stageIs(lead!.id), afterVersion: 5n });
  await again.live();
  assert.deepEqual(again.w.changes.map((c) => [ChangeAction[c.change!.action], c.inView]), [["DELETED", false]]);
  assert.equal(again.w.heartbeats[0], 6n, "the going-live heartbeat names where to resume");
  await again.close();

  await expectCode(
    (async () => {
      for await (const _ of me.stream.watchRecords({ objectType: ObjectType.DEAL, afterVersion: 99n })) void _;
    })(),
    Code.FailedPrecondition,
    /ahead/,
  );
  await expectCode(
    (async () => {
      for await (const _ of me.stream.watchRecords({ objectType: ObjectType.UNSPECIFIED })) void _;
    })(),
    Code.InvalidArgument,
    /objectType/,
  );

  // Tasks too: "my open tasks" sees a task of mine enter with the task itself, and leave when done.
  const open: Filter = { node: { case: "and", value: { filters: [cond("assignee_id", "me"), cond("done", "false")] } } } as Filter;
  const tasks = watch(me.stream, { objectType: ObjectType.TASK, filter: open });
  await tasks.live();
  const task = (await me.tasks.createTask({ task: { title: "Call Ann" } })).task!;
  await me.tasks.updateTask({ task: { id: task.id, done: true }, updateMask: { paths: ["done"] } });
  await until("the task in and out", () => tasks.w.changes.length >= 2 || tasks.w.ended, 20_000);
  assert.deepEqual(tasks.w.changes.map((c) => [ChangeAction[c.change!.action], c.inView]), [["CREATED", true], ["UPDATED", false]]);
  const made = tasks.w.changes[0]!.change!.record?.record;
  assert.ok(made?.case === "task" && made.value.title === "Call Ann", "the event carries the task");
  await tasks.close();
}

async function searchFlow(a: TestApp) {
  const me = await register(a);
  const globex = (await me.companies.createCompany({ company: { name: "Globex Corporation", domain: "globex.example", tags: ["enterprise"] } })).company!;
  await me.companies.createCompany({ company: { name: "Zürich Versicherung" } });
  await me.companies.createCompany({ company: { name: "Ёлочные игрушки" } });
  const ann = (await me.people.createPerson({ person: { firstName: "Ann", lastName: "Petrova", emails: ["ann@globex.example"], phones: ["+1 415 555 0100"], jobTitle: "CTO" } })).person!;
  const ivan = (await me.people.createPerson({ person: { firstName: "Иван", lastName: "Петров", emails: ["ivan@initech.example"] } })).person!;
  const deal = (await me.pipelines.createPipeline({ pipeline: { name: "P", stages: [{ name: "S" }] } })).pipeline!;
  await me.deals.createDeal({ deal: { name: "Globex rollout", pipelineId: deal.id, amountMinor: 1250000n, currencyCode: "EUR" } });
  const gone = (await me.companies.createCompany({ company: { name: "Globex Trash" } })).company!;
  await me.companies.deleteCompany({ id: gone.id });

  const titles = async (query: string, objectTypes: ObjectType[] = []) => (await me.search.search({ query, objectTypes })).results.map((r) => r.title);
  assert.deepEqual((await titles("globex")).slice(0, 2).sort(), ["Globex Corporation", "Globex rollout"], "prefix, across types; the trash is left out");
  assert.ok(!(await titles("globex")).includes("Globex Trash"));
  assert.equal((await titles("glob", [ObjectType.COMPANY]))[0], "Globex Corporation", "a prefix");
  assert.equal((await titles("globx corp", [ObjectType.COMPANY]))[0], "Globex Corporation", "a typo");
  assert.equal((await titles("zurich"))[0], "Zürich Versicherung", "without accents");
  assert.equal((await titles("елочные"))[0], "Ёлочные игрушки", "Cyrillic, ё as е");
  assert.equal((await titles("петров"))[0], "Иван Петров");
  assert.equal((await titles("petrva", [ObjectType.PERSON]))[0], "Ann Petrova", "a typo in a name");
  const byDomain = await me.search.search({ query: "globex.example", objectTypes: [ObjectType.PERSON] });
  assert.equal(byDomain.results[0]?.recordId, ann.id, "an e-mail domain");
  assert.equal(byDomain.results[0]?.subtitle, "ann@globex.example");
  for (const q of ["555 0100", "(415) 555-0100", "+14155550100"]) assert.equal((await me.search.search({ query: q })).results[0]?.recordId, ann.id, `phone digits: ${q}`);
  const rollout = (await me.search.search({ query: "rollout" })).results[0]!;
  assert.equal(rollout.record?.record.case, "deal");
  assert.equal(rollout.subtitle, "€12,500.00");
  assert.ok(rollout.score > 0);
  assert.notEqual(ivan.id, globex.id);
  await expectCode(me.search.search({ query: "a" }), Code.InvalidArgument, /query/);

  // Another company finds none of it.
  const other = await register(a);
  assert.deepEqual((await other.search.search({ query: "globex" })).results, []);
}

async function viewFlow(a: TestApp) {
  const me = await register(a);
  const view = (await me.views.createView({ view: { name: "Big deals", objectType: ObjectType.DEAL, orderBy: "amount_minor desc", columns: ["name", "amount_minor"], shared: true,
    filter: { node: { case: "condition", value: { field: "amount_minor", operator: Operator.GREATER_THAN, values: ["100000"] } } } as Filter } })).view!;
  assert.equal(view.shared, true);
  assert.equal(view.filter?.node.case, "condition");
  const renamed = (await me.views.updateView({ view: { id: view.id, name: "Biggest deals", etag: view.etag }, updateMask: { paths: ["name"] } })).view!;
  assert.equal(renamed.name, "Biggest deals");
  await expectCode(me.views.updateView({ view: { id: view.id, name: "x", etag: view.etag }, updateMask: { paths: ["name"] } }), Code.Aborted);
  const bad = await expectCode(me.views.createView({ view: { name: "", objectType: ObjectType.COMPANY, columns: ["nope"], orderBy: "nope" } }), Code.InvalidArgument);
  assert.match(bad.rawMessage, /view.name/);
  assert.match(bad.rawMessage, /view.columns\[0\]/);
  assert.match(bad.rawMessage, /view.orderBy/);
  assert.deepEqual((await me.views.listViews({ objectType: ObjectType.DEAL })).views.map((v) => v.name), ["Biggest deals"]);
  await me.views.deleteView({ id: view.id });
  await expectCode(me.views.getView({ id: view.id }), Code.NotFound);
}

test("WatchRecords through the all-in-one: replay then live, a column's deals entering and leaving, a reconnect", { skip }, () => liveFlow(app));

test("WatchRecords ends with unauthenticated the moment its session is logged out", { skip }, async () => {
  const t = randomBytes(4).toString("hex");
  const reg = await app.client(AuthService).registerCompany({ companyName: `Ends ${t}`, email: `owner-${t}@example.com`, password: PASSWORD, ownerName: "Owner" });
  const s = watch(app.client(RecordStreamService, { token: reg.accessToken }), { objectType: ObjectType.COMPANY });
  await s.live();
  await app.client(AuthService, { token: reg.accessToken }).logout({});
  await until("the stream to end", () => s.w.ended, 10_000);
  assert.equal(s.w.error?.code, Code.Unauthenticated);
  assert.match(s.w.error!.rawMessage, /session has ended/);
});
test("Search through the all-in-one: typos, prefixes, accents, Cyrillic, e-mail domains, phone digits, tenants", { skip }, () => searchFlow(app));
test("Saved views through the all-in-one", { skip }, () => viewFlow(app));

test("nothing installed: live lists, search and views on PGlite", async () => {
  const embedded = await startTestApp({});
  try {
    await liveFlow(embedded);
    await searchFlow(embedded);
    await viewFlow(embedded);
  } finally {
    await embedded.close();
  }
});

/**
 * `npm run demo` (demo.ts) as a newcomer runs it, against the all-in-one over real HTTP on the
 * machine's PostgreSQL: a new account gets a company full of records; a second run changes
 * nothing; a company that has a "Sales" pipeline of its own keeps it.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { after, before, test } from "node:test";
import { AuthService } from "@crm/gen/crm/auth/v1/auth_pb";
import { CompanyService } from "@crm/gen/crm/records/v1/company_pb";
import { DealService, DealStatus } from "@crm/gen/crm/records/v1/deal_pb";
import { NoteService } from "@crm/gen/crm/records/v1/note_pb";
import { PersonService } from "@crm/gen/crm/records/v1/person_pb";
import { PipelineService } from "@crm/gen/crm/records/v1/pipeline_pb";
import { TaskService } from "@crm/gen/crm/records/v1/task_pb";
import { freshDatabase, installHint, need, postgresUp, type TestApp, type TestDatabase } from "@crm/testkit";
import { startTestApp } from "@crm/all/test-app";

const skip = need("PostgreSQL", await postgresUp(), installHint.postgres);
const demo = fileURLToPath(new URL("./demo.ts", import.meta.url));
const repo = fileURLToPath(new URL("../../../", import.meta.url));

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

/** demo.ts as `npm run demo -- …` runs it (from the repository's root). */
async function runDemo(...args: string[]) {
  const r = await promisify(execFile)(process.execPath, ["--conditions=source", "--import", "tsx", demo, "--url", app.baseUrl, ...args], { cwd: repo });
  return r.stdout.trim();
}

async function counts(token: string) {
  const total = async (list: () => Promise<{ totalSize: bigint }>) => Number((await list()).totalSize);
  return {
    companies: await total(() => app.client(CompanyService, { token }).listCompanies({ exactTotal: true })),
    people: await total(() => app.client(PersonService, { token }).listPeople({ exactTotal: true })),
    deals: await total(() => app.client(DealService, { token }).listDeals({ exactTotal: true })),
    tasks: await total(() => app.client(TaskService, { token }).listTasks({ exactTotal: true })),
    notes: await total(() => app.client(NoteService, { token }).listNotes({ exactTotal: true })),
  };
}

test("a new account gets a living CRM in a pipeline called Sales; a second run changes nothing", { skip }, async () => {
  const email = `demo-${randomBytes(4).toString("hex")}@example.com`;
  const out = await runDemo("--email", email);
  assert.match(out, /^registered Demo Inc with the owner /m);
  assert.match(out, new RegExp(`demo ready: 12 companies, \\d+ people, 16 deals in "Sales", \\d+ tasks, \\d+ notes — open ${app.baseUrl} and log in as ${email}`));

  const { accessToken: token } = await app.client(AuthService).login({ email, password: "demo password 2468" });
  const made = await counts(token);
  assert.equal(made.companies, 12);
  assert.ok(made.people >= 24 && made.tasks > 0 && made.notes > 0, JSON.stringify(made));
  const { pipelines } = await app.client(PipelineService, { token }).listPipelines({});
  assert.deepEqual(pipelines.map((p) => p.name), ["Sales"]);
  const { deals } = await app.client(DealService, { token }).listDeals({ pageSize: 100 });
  const statuses = new Set(deals.map((d) => d.status));
  assert.ok(statuses.has(DealStatus.OPEN) && statuses.has(DealStatus.WON) && statuses.has(DealStatus.LOST), "open, won and lost deals");
  assert.ok(new Set(deals.map((d) => d.stageId)).size >= 4, "deals across the stages");

  assert.match(await runDemo("--email", email), /this company has the demo already \(Globex exists\): nothing to do/);
  assert.deepEqual(await counts(token), made, "the second run wrote nothing");
});

test("a company with its own Sales pipeline keeps it: the demo's is Demo sales", { skip }, async () => {
  const t = randomBytes(4).toString("hex");
  const email = `own-${t}@example.com`;
  const password = "correct horse battery staple";
  const me = await app.client(AuthService).registerCompany({ companyName: `Own ${t}`, email, password, ownerName: "Owner" });
  await app.client(PipelineService, { token: me.accessToken }).createPipeline({ pipeline: { name: "Sales", stages: [{ name: "Call" }] } });
  assert.match(await runDemo("--email", email, "--password", password), /16 deals in "Demo sales"/);
  const { pipelines } = await app.client(PipelineService, { token: me.accessToken }).listPipelines({});
  assert.deepEqual(pipelines.map((p) => p.name).sort(), ["Demo sales", "Sales"]);
  assert.deepEqual(pipelines.find((p) => p.name === "Sales")!.stages.map((s) => s.name), ["Call"], "its own pipeline untouched");
});

/**
 * Records linked into what exists, and a person's privacy requests, end to end through the
 * all-in-one over real HTTP on the machine's PostgreSQL (issue 16 "links into what exists", issue
 * 18 "privacy"): time booked on a deal and a company, billable, listed and totalled on the
 * record's page; a chat attached to a person; another company's records refused; then the owner
 * exports the person, erases them, and both appear in the audit log.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, test } from "node:test";
import pg from "pg";
import { durationMs, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { AuditService } from "@crm/gen/crm/admin/v1/audit_pb";
import { AuthService } from "@crm/gen/crm/auth/v1/auth_pb";
import { ChatService } from "@crm/gen/crm/chat/v1/chat_pb";
import { ObjectType } from "@crm/gen/crm/records/v1/common_pb";
import { CompanyService } from "@crm/gen/crm/records/v1/company_pb";
import { DealService } from "@crm/gen/crm/records/v1/deal_pb";
import { NoteService } from "@crm/gen/crm/records/v1/note_pb";
import { PersonService } from "@crm/gen/crm/records/v1/person_pb";
import { PipelineService } from "@crm/gen/crm/records/v1/pipeline_pb";
import { PrivacyService } from "@crm/gen/crm/records/v1/privacy_pb";
import { TimerService } from "@crm/gen/crm/timer/v1/timer_pb";
import { freshDatabase, installHint, need, postgresUp, type TestApp, type TestDatabase } from "@crm/testkit";
import { startTestApp } from "@crm/all/test-app";
import { expectCode } from "./harness.js";

const skip = need("PostgreSQL", await postgresUp(), installHint.postgres);
const H = 3_600_000;

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

async function company(name: string, on: TestApp = app) {
  const app = on;
  const t = randomBytes(4).toString("hex");
  const reg = await app.client(AuthService).registerCompany({ companyName: `${name} ${t}`, email: `owner-${t}@example.com`, password: "correct horse battery staple", ownerName: "Owner" });
  const token = reg.accessToken;
  return {
    reg,
    companies: app.client(CompanyService, { token }),
    people: app.client(PersonService, { token }),
    pipelines: app.client(PipelineService, { token }),
    deals: app.client(DealService, { token }),
    timers: app.client(TimerService, { token }),
    chats: app.client(ChatService, { token }),
    privacy: app.client(PrivacyService, { token }),
    notes: app.client(NoteService, { token }),
    audit: app.client(AuditService, { token }),
  };
}

test("time on a deal and a company, a chat on a person, another company refused; export and erase the person, audited", { skip }, async () => {
  const a = await company("Acme");
  const b = await company("Other");
  const stage = (await a.pipelines.createPipeline({ pipeline: { name: "Sales", stages: [{ name: "Lead" }] } })).pipeline!.stages[0]!.id;
  const globex = (await a.companies.createCompany({ company: { name: "Globex" } })).company!.id;
  const deal = (await a.deals.createDeal({ deal: { name: "Rollout", pipelineId: "", stageId: stage, companyId: globex } })).deal!.id;
  const person = (await a.people.createPerson({ person: { firstName: "Wilhelmina", lastName: "Oyelaran", emails: ["wil@globex.example"] } })).person!.id;
  const theirs = await b.companies.createCompany({ company: { name: "Initech" } });

  // Time: a running timer on the deal, switched to the company, and a billable manual entry.
  const now = Date.now();
  await a.timers.addTimer({ startTime: timestampFromMs(now - 3 * H), endTime: timestampFromMs(now - 2 * H), record: { objectType: ObjectType.DEAL, id: deal }, billable: true });
  await a.timers.startTimer({ description: "call", record: { objectType: ObjectType.DEAL, id: deal } });
  const switched = await a.timers.startTimer({ record: { objectType: ObjectType.COMPANY, id: globex } });
  assert.equal(switched.stopped?.record?.id, deal);
  await a.timers.endTimer({ billable: true });
  await expectCode(a.timers.startTimer({ record: { objectType: ObjectType.COMPANY, id: theirs.company!.id } }), Code.NotFound, /no company with this id in your company/);
  const onDeal = await a.timers.listTimers({ record: { objectType: ObjectType.DEAL, id: deal }, allUsers: true });
  assert.equal(onDeal.timers.length, 2);
  const report = await a.timers.getReport({ from: timestampFromMs(now - 24 * H), to: timestampFromMs(now + H) });
  assert.equal(durationMs(report.billableTotal!) >= H, true);
  assert.deepEqual(new Set(report.records.map((r) => r.record?.id)), new Set([deal, globex]));

  // A chat on the person; the person's page lists it.
  const chat = (await a.chats.createChat({ name: "Wilhelmina's onboarding" })).chat!;
  await a.chats.setChatRecord({ chatId: chat.chatId, record: { objectType: ObjectType.PERSON, id: person } });
  assert.deepEqual((await a.chats.listChats({ record: { objectType: ObjectType.PERSON, id: person } })).chats.map((c) => c.chatId), [chat.chatId]);
  await expectCode(a.chats.setChatRecord({ chatId: chat.chatId, record: { objectType: ObjectType.COMPANY, id: theirs.company!.id } }), Code.NotFound);

  // Privacy: the export has the person; the erasure leaves no trace of them; both audited.
  await expectCode(b.privacy.exportPersonData({ personId: person }), Code.NotFound);
  const exported = await a.privacy.exportPersonData({ personId: person });
  assert.deepEqual(exported.person?.emails, ["wil@globex.example"]);
  assert.ok(exported.timeline.length >= 1);
  await a.privacy.erasePerson({ personId: person });
  await expectCode(a.people.getPerson({ id: person }), Code.NotFound);
  assert.equal((await a.chats.listChats({ record: { objectType: ObjectType.PERSON, id: person } })).chats.length, 0, "the chat was detached");
  const c = new pg.Client({ connectionString: db.url });
  await c.connect();
  try {
    const { rows } = await c.query("SELECT count(*)::int AS n FROM rec_people p WHERE p::text ILIKE '%Wilhelmina%'");
    assert.equal(rows[0].n, 0);
    const { rows: timeline } = await c.query("SELECT count(*)::int AS n FROM rec_timeline WHERE record_id = $1 AND changes::text NOT ILIKE '%Wilhelmina%'", [person]);
    assert.ok(timeline[0].n >= 1, "the timeline stays, anonymized");
  } finally {
    await c.end();
  }
  const events = await a.audit.listAuditEvents({ actions: ["records.person_exported", "records.person_erased"], pageSize: 10 });
  assert.deepEqual(events.events.map((e) => [e.action, e.targetId]).sort(), [["records.person_erased", person], ["records.person_exported", person]]);
});

test("nothing installed (PGlite): book time on a deal, attach a chat, erase a person with a note", async () => {
  const embedded = await startTestApp({});
  try {
    const a = await company("Embedded", embedded);
    const stage = (await a.pipelines.createPipeline({ pipeline: { name: "Sales", stages: [{ name: "Lead" }] } })).pipeline!.stages[0]!.id;
    const deal = (await a.deals.createDeal({ deal: { name: "Rollout", pipelineId: "", stageId: stage } })).deal!.id;
    const now = Date.now();
    const t = await a.timers.addTimer({ startTime: timestampFromMs(now - 2 * H), endTime: timestampFromMs(now - H), record: { objectType: ObjectType.DEAL, id: deal }, billable: true });
    assert.equal(t.timer?.record?.id, deal);
    await expectCode(a.timers.startTimer({ record: { objectType: ObjectType.DEAL, id: stage } }), Code.NotFound);
    const person = (await a.people.createPerson({ person: { firstName: "Philippa", lastName: "Quennell" } })).person!.id;
    const chat = (await a.chats.createChat({ name: "Onboarding" })).chat!;
    assert.equal((await a.chats.setChatRecord({ chatId: chat.chatId, record: { objectType: ObjectType.PERSON, id: person } })).chat?.record?.id, person);
    const note = (await a.notes.createNote({ note: { text: "Philippa Quennell prefers mornings", links: [{ objectType: ObjectType.PERSON, id: person }, { objectType: ObjectType.DEAL, id: deal }] } })).note!.id;
    const erased = await a.privacy.erasePerson({ personId: person });
    assert.equal(erased.notesScrubbed, 1);
    assert.equal((await a.notes.getNote({ id: note })).note?.text, "[erased] prefers mornings");
    assert.equal((await a.chats.listChats({})).chats[0]?.record, undefined);
    const events = await a.audit.listAuditEvents({ actions: ["records.person_erased"], pageSize: 10 });
    assert.deepEqual(events.events.map((e) => e.targetId), [person]);
  } finally {
    await embedded.close();
  }
});

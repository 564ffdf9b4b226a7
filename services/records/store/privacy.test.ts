/**
 * PrivacyService in the store on the real PostgreSQL: the export holds everything about a person;
 * after the erasure nothing personal is left anywhere in the database (every table searched as
 * the superuser), the timeline entries remain with anonymized values, deals keep their amounts,
 * and both are audited; members and other tenants are refused.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { fromBinary, toJson, toJsonString } from "@bufbuild/protobuf";
import { ValueSchema, timestampMs } from "@bufbuild/protobuf/wkt";
import { decodeRecordChange } from "@crm/contracts/events";
import { Code, type Client } from "@connectrpc/connect";
import { DbPrivacyService } from "@crm/gen/crm/db/v1/db_privacy_pb";
import { ActorType, ObjectType } from "@crm/gen/crm/records/v1/common_pb";
import { FieldType } from "@crm/gen/crm/records/v1/field_pb";
import { ChangeAction, RecordChangeSchema, type RecordChange } from "@crm/gen/crm/records/v1/stream_pb";
import { TimelineAction } from "@crm/gen/crm/records/v1/timeline_pb";
import { installHint, need, postgresUp } from "@crm/testkit";
import { expectCode, inMemory, storeHarness, type StoreHarness, type Tenant, type User } from "../test/harness.js";
import type { ExportAudit } from "./export-store.js";
import { privacyStore } from "./privacy.js";

const skip = need("PostgreSQL", await postgresUp(), installHint.postgres);

let h: StoreHarness;
let A: Tenant;
let B: Tenant;
const audited: { action: string; target?: { type: string; id: string }; details?: Record<string, string> }[] = [];
const audit: ExportAudit = { record: async (_sql, events) => void audited.push(...events), afterCommit: () => {} };
let privacy: (u: User) => Client<typeof DbPrivacyService>;

before(async () => {
  if (skip) return;
  h = await storeHarness();
  A = await h.tenant("A");
  B = await h.tenant("B");
  const mem = inMemory((r) => r.service(DbPrivacyService, privacyStore(h.db, { audit })));
  privacy = (u) => mem.client(DbPrivacyService, u.token);
});
after(async () => {
  await h?.close();
});

/** Every table's rows that mention `needle` (as text, without regard to case), as the superuser: "table: n". */
async function mentions(needle: string): Promise<string[]> {
  const { rows: tables } = await h.pool.query<{ name: string }>(
    "SELECT format('%I.%I', schemaname, tablename) AS name FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')",
  );
  const found: string[] = [];
  for (const t of tables) {
    const { rows } = await h.pool.query<{ n: string }>(`SELECT count(*) AS n FROM ${t.name} x WHERE x::text ILIKE $1`, [`%${needle}%`]);
    if (Number(rows[0]!.n) > 0) found.push(`${t.name}: ${rows[0]!.n}`);
  }
  // Binary change events: decoded, so a name inside protobuf bytes is found too.
  const { rows: events } = await h.pool.query<{ event: Buffer }>("SELECT event FROM rec_changes");
  const inEvents = events.filter((e) => toJsonString(RecordChangeSchema, fromBinary(RecordChangeSchema, new Uint8Array(e.event))).toLowerCase().includes(needle.toLowerCase())).length;
  if (inEvents) found.push(`rec_changes events: ${inEvents}`);
  return found;
}

/** A person with everything around it, in tenant t; `n` makes the names unique to the test. */
async function world(t: Tenant, n: string) {
  const s = t.admin.store;
  await s.createFieldDB({ request: { field: { objectType: ObjectType.PERSON, key: "nickname", label: "Nickname", type: FieldType.TEXT } } });
  const stageId = (await s.createPipelineDB({ request: { pipeline: { name: `P${Date.now()}`, stages: [{ name: "S" }] } } })).response!.pipeline!.stages[0]!.id;
  const company = (await s.createCompanyDB({ request: { company: { name: "Globex" } } })).response!.company!.id;
  const person = (await t.member.store.createPersonDB({
    request: { person: { firstName: `Zebediah${n}`, lastName: `Quarrington${n}`, emails: [`zeb.q${n}@privacy.example`], phones: [`+1415555019${n}`], jobTitle: `Chief Xylophonist${n}`, companies: [{ companyId: company, role: "buyer" }], custom: { nickname: `Zebbo${n}` } } },
  })).response!.person!;
  // A change, so the timeline holds before and after values.
  await t.member.store.updatePersonDB({ request: { person: { id: person.id, lastName: `Quarrington${n}-Smythe`, etag: person.etag }, updateMask: { paths: ["last_name"] } } });
  const deal = (await t.member.store.createDealDB({ request: { deal: { name: "Globex rollout", stageId, amountMinor: 125_000n, currencyCode: "EUR", companyId: company, personIds: [person.id] } } })).response!.deal!.id;
  const note = (await t.member.store.createNoteDB({ request: { note: { text: `Met Zebediah${n}; reach him at zeb.q${n}@privacy.example or +1415555019${n}.`, links: [{ objectType: ObjectType.PERSON, id: person.id }, { objectType: ObjectType.DEAL, id: deal }] } } })).response!.note!.id;
  const task = (await t.member.store.createTaskDB({ request: { task: { title: `Call Quarrington${n} back`, links: [{ objectType: ObjectType.PERSON, id: person.id }] } } })).response!.task!.id;
  return { person: person.id, company, deal, note, task };
}

test("export: the record with its custom values, its timeline, notes, tasks, deals and companies; audited; owners and admins only", { skip }, async () => {
  const w = await world(A, "1");
  await expectCode(privacy(A.member).exportPersonDataDB({ request: { personId: w.person } }), Code.PermissionDenied);
  await expectCode(privacy(B.owner).exportPersonDataDB({ request: { personId: w.person } }), Code.NotFound);
  await expectCode(privacy(A.owner).exportPersonDataDB({ request: { personId: "nope" } }), Code.InvalidArgument);
  const { response: r } = await privacy(A.admin).exportPersonDataDB({ request: { personId: w.person } });
  assert.equal(r?.person?.firstName, "Zebediah1");
  assert.deepEqual(r?.person?.emails, ["zeb.q1@privacy.example"]);
  assert.equal(r?.person?.custom?.nickname, "Zebbo1");
  assert.ok((r?.timeline.length ?? 0) >= 3, "created, updated, the note and the task on it");
  assert.deepEqual(r?.notes.map((n) => n.id), [w.note]);
  assert.deepEqual(r?.tasks.map((t) => t.id), [w.task]);
  assert.deepEqual(r?.deals.map((d) => d.id), [w.deal]);
  assert.deepEqual(r?.companies.map((c) => c.id), [w.company]);
  assert.deepEqual(audited.at(-1)?.action, "records.person_exported");
  assert.deepEqual(audited.at(-1)?.target, { type: "person", id: w.person });
});

test("erase: nothing personal is left in any table, the timeline stays anonymized, aggregates stay; audited", { skip }, async () => {
  const C = await h.tenant("C");
  const w = await world(C, "2");
  const before = await mentions("Zebediah2");
  assert.ok(before.length > 0, "the search finds the person before");
  await expectCode(privacy(C.member).erasePersonDB({ request: { personId: w.person } }), Code.PermissionDenied);
  await expectCode(privacy(B.admin).erasePersonDB({ request: { personId: w.person } }), Code.NotFound);
  assert.deepEqual(await mentions("Zebediah2"), before, "a refused call changed nothing");

  const { rows: [entriesBefore] } = await h.pool.query<{ n: string }>("SELECT count(*) AS n FROM rec_timeline WHERE record_id = $1", [w.person]);
  const { response: r } = await privacy(C.owner).erasePersonDB({ request: { personId: w.person } });
  assert.ok((r?.timelineEntriesAnonymized ?? 0) >= Number(entriesBefore!.n));
  assert.equal(r?.notesScrubbed, 1);
  assert.equal(r?.tasksScrubbed, 1);
  assert.equal(r?.linksRemoved, 4, "company, deal, note, task");

  for (const needle of ["Zebediah2", "Quarrington2", "zeb.q2@privacy", "14155550192", "Xylophonist2", "Zebbo2"]) {
    assert.deepEqual(await mentions(needle), [], `${needle} is gone`);
  }
  // The person's timeline stays, values anonymized: who did what when.
  const { rows: entries } = await h.pool.query<{ action: string; changes: { field: string; before: unknown; after: unknown }[] }>(
    "SELECT action, changes FROM rec_timeline WHERE record_id = $1 ORDER BY id", [w.person],
  );
  assert.equal(entries.length, Number(entriesBefore!.n));
  const updated = entries.find((e) => e.action === "updated")!;
  assert.deepEqual(updated.changes.find((c) => c.field === "last_name"), { field: "last_name", before: "[erased]", after: "[erased]" });
  // Aggregates: the deal, its amount and company stay; the note and task stay, scrubbed.
  const { rows: [deal] } = await h.pool.query("SELECT amount_minor, rec_company_id FROM rec_deals WHERE id = $1", [w.deal]);
  assert.deepEqual(deal, { amount_minor: "125000", rec_company_id: w.company });
  const { rows: [note] } = await h.pool.query<{ text: string }>("SELECT text FROM rec_notes WHERE id = $1", [w.note]);
  assert.equal(note!.text, "Met [erased]; reach him at [erased] or [erased].");
  assert.equal((await h.pool.query("SELECT 1 FROM rec_people WHERE id = $1", [w.person])).rowCount, 0);
  assert.equal(audited.at(-1)?.action, "records.person_erased");
  assert.equal(audited.at(-1)?.details?.links_removed, "4");
  assert.ok(!JSON.stringify(audited.at(-1)).includes("Zebediah2"), "the audit event holds no personal data");
  // Gone for good.
  await expectCode(privacy(C.owner).erasePersonDB({ request: { personId: w.person } }), Code.NotFound);
});

test("erase: the deals, notes and tasks that named the person change as in a purge: a new etag, an UPDATED event, a timeline entry", { skip }, async () => {
  const D = await h.tenant("D");
  const w = await world(D, "3");
  const s = D.member.store;
  const stageId = (await s.getDealDB({ request: { id: w.deal } })).response!.deal!.stageId;
  const other = (await s.createPersonDB({ request: { person: { firstName: "Otto" } } })).response!.person!.id;
  const both = (await s.createDealDB({ request: { deal: { name: "Two people", stageId, personIds: [other, w.person] } } })).response!.deal!;
  const bystander = (await s.createDealDB({ request: { deal: { name: "Otto's", stageId, personIds: [other] } } })).response!.deal!;
  const deal = async (id: string) => (await s.getDealDB({ request: { id } })).response!.deal!;
  const before = { one: await deal(w.deal), both: await deal(both.id), bystander: await deal(bystander.id) };
  const activity = async () => ({ note: (await s.getNoteDB({ request: { id: w.note } })).response!.note!, task: (await s.getTaskDB({ request: { id: w.task } })).response!.task! });
  const activityBefore = await activity();
  const v = Number((await s.getRecordVersionDB({})).version);

  await privacy(D.admin).erasePersonDB({ request: { personId: w.person } });

  const { rows } = await h.pool.query<{ version: string; event: Buffer }>(
    "SELECT version, event FROM rec_changes WHERE company_id = $1 AND version > $2 ORDER BY version", [D.companyId, v],
  );
  const cs = rows.map((r) => decodeRecordChange(r.event));
  assert.deepEqual(cs.map((c) => Number(c.version)), [1, 2, 3, 4, 5].map((n) => v + n), "the tenant's next versions, gap-free");
  const what = cs.map((c) => `${ObjectType[c.objectType]} ${ChangeAction[c.action]} ${c.recordId}`);
  assert.equal(what[0], `PERSON PURGED ${w.person}`);
  assert.deepEqual(
    what.slice(1).sort(),
    [`DEAL UPDATED ${w.deal}`, `DEAL UPDATED ${both.id}`, `NOTE UPDATED ${w.note}`, `TASK UPDATED ${w.task}`].sort(),
    "the person erased; each deal, note and task that named them updated; the bystander not",
  );
  assert.ok(cs.every((c) => c.actor?.type === ActorType.USER && c.actor.id === D.admin.userId), "named as the admin who erased");
  const { rows: outbox } = await h.pool.query<{ message_id: string }>("SELECT message_id FROM outbox WHERE company_id = $1 ORDER BY id DESC LIMIT 5", [D.companyId]);
  assert.deepEqual(outbox.map((o) => o.message_id).sort(), [1, 2, 3, 4, 5].map((n) => `${D.companyId}:${v + n}`).sort(), "the same events wait in the outbox");

  const after = { one: await deal(w.deal), both: await deal(both.id), bystander: await deal(bystander.id) };
  for (const [id, was, now, ids] of [[w.deal, before.one, after.one, []], [both.id, before.both, after.both, [other]]] as const) {
    const c = cs.find((x) => x.recordId === id)!;
    const f = c.changes.find((x) => x.field === "person_ids")!;
    assert.deepEqual([toJson(ValueSchema, f.before!), toJson(ValueSchema, f.after!)], [was.personIds, ids.length ? [...ids] : null], "the diff: the person left the deal");
    assert.equal(now.etag, String(Number(was.etag) + 1), "a new etag, as an update gives");
    assert.ok(timestampMs(now.updateTime!) > timestampMs(was.updateTime!), "and a new update time");
    assert.ok(c.record?.record.case === "deal" && c.record.record.value.etag === now.etag, "the event carries the new etag");
    assert.deepEqual(c.record.record.value.personIds, [...ids]);
    assert.ok(c.previous?.record.case === "deal" && c.previous.record.value.personIds.includes(w.person), "and the deal before");
    await expectCode(
      s.updateDealDB({ request: { deal: { id, name: "Stale write", etag: was.etag }, updateMask: { paths: ["name"] } } }),
      Code.Aborted,
      new RegExp(`deal ${id} changed since you read it \\(etag ${was.etag}, now ${now.etag}\\)`),
    );
    const entries = (await s.listTimelineDB({ request: { objectType: ObjectType.DEAL, recordId: id } })).response!.entries;
    assert.deepEqual([TimelineAction[entries[0]!.action], entries[0]!.actor?.id, entries[0]!.changes.map((x) => x.field)], ["UPDATED", D.admin.userId, ["person_ids"]]);
  }
  assert.equal(after.bystander.etag, before.bystander.etag, "a deal that did not name the person keeps its etag");

  // The note and the task: their links diff (ids only, not the scrubbed text's), one new etag
  // each though they were scrubbed too, the old etag refused, an entry on their timelines.
  const activityAfter = await activity();
  const links = (c: RecordChange) => {
    const f = c.changes.find((x) => x.field === "links")!;
    return [toJson(ValueSchema, f.before!), toJson(ValueSchema, f.after!)];
  };
  const noteChange = cs.find((c) => c.recordId === w.note)!;
  const taskChange = cs.find((c) => c.recordId === w.task)!;
  assert.deepEqual([noteChange.changes.map((c) => c.field), taskChange.changes.map((c) => c.field)], [["links"], ["links"]]);
  assert.deepEqual(links(noteChange), [[{ object_type: "person", id: w.person }, { object_type: "deal", id: w.deal }], [{ object_type: "deal", id: w.deal }]]);
  assert.deepEqual(links(taskChange), [[{ object_type: "person", id: w.person }], null]);
  assert.deepEqual([activityAfter.note.etag, activityAfter.task.etag], [String(Number(activityBefore.note.etag) + 1), String(Number(activityBefore.task.etag) + 1)]);
  assert.ok(timestampMs(activityAfter.note.updateTime!) > timestampMs(activityBefore.note.updateTime!), "a new update time");
  await expectCode(
    D.admin.store.updateNoteDB({ request: { note: { id: w.note, text: "Stale write", etag: activityBefore.note.etag }, updateMask: { paths: ["text"] } } }),
    Code.Aborted,
    new RegExp(`note ${w.note} changed since you read it \\(etag ${activityBefore.note.etag}, now ${activityAfter.note.etag}\\)`),
  );
  await expectCode(
    D.admin.store.updateTaskDB({ request: { task: { id: w.task, title: "Stale write", etag: activityBefore.task.etag }, updateMask: { paths: ["title"] } } }),
    Code.Aborted,
    new RegExp(`task ${w.task} changed since you read it \\(etag ${activityBefore.task.etag}, now ${activityAfter.task.etag}\\)`),
  );
  for (const [type, id] of [[ObjectType.NOTE, w.note], [ObjectType.TASK, w.task]] as const) {
    const entries = (await s.listTimelineDB({ request: { objectType: type, recordId: id } })).response!.entries;
    assert.deepEqual([TimelineAction[entries[0]!.action], entries[0]!.actor?.id, entries[0]!.changes.map((x) => x.field)], ["UPDATED", D.admin.userId, ["links"]]);
  }
  assert.equal((await deal(w.deal)).name, "Globex rollout", "the stale write changed nothing");
  await s.updateDealDB({ request: { deal: { id: w.deal, name: "Globex rollout 2", etag: after.one.etag }, updateMask: { paths: ["name"] } } });
  for (const needle of ["Zebediah3", "Quarrington3", "zeb.q3@privacy"]) assert.deepEqual(await mentions(needle), [], `${needle} is in no event either`);
});

test("the definer functions refuse members even when called directly", { skip }, async () => {
  await h.asApp(A.member, async (c) => {
    await assert.rejects(c.query("SELECT crm_privacy_erase_timeline(gen_random_uuid(), '{}', '{}')"), /only owners and admins/);
  });
});

/**
 * The trash's 30-day purge job (PurgeTrashDB) on the real PostgreSQL, as a change like any other:
 * each record it erases is a PURGED change, and each record that loses a link to one (a company's
 * deals and people, a person's deals, the tasks and notes linking any of them) an UPDATED change,
 * with the tenant's next gap-free versions in rec_changes and in the outbox, named as the
 * system's, and a new etag. A user's purge notes the same cascades.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { create, toJson } from "@bufbuild/protobuf";
import { ValueSchema, timestampMs } from "@bufbuild/protobuf/wkt";
import { RECORD_EVENTS_EXCHANGE } from "@crm/contracts";
import { decodeRecordChange } from "@crm/contracts/events";
import { PurgeTrashDBRequestSchema } from "@crm/gen/crm/db/v1/db_records_pb";
import { Code } from "@connectrpc/connect";
import { ActorType, ObjectType } from "@crm/gen/crm/records/v1/common_pb";
import { ChangeAction, type RecordChange } from "@crm/gen/crm/records/v1/stream_pb";
import { TimelineAction } from "@crm/gen/crm/records/v1/timeline_pb";
import { installHint, need, postgresUp } from "@crm/testkit";
import { recordsStore } from "./records-store.js";
import { expectCode, peerContext, storeHarness, type StoreHarness, type Tenant } from "../test/harness.js";

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

async function stored(t: Tenant, after = 0): Promise<RecordChange[]> {
  const { rows } = await h.pool.query<{ version: string; event: Buffer }>(
    "SELECT version, event FROM rec_changes WHERE company_id = $1 AND version > $2 ORDER BY version",
    [t.companyId, after],
  );
  return rows.map((r) => {
    const c = decodeRecordChange(r.event);
    assert.equal(c.version, BigInt(r.version));
    return c;
  });
}
async function outboxVersions(t: Tenant, after: number): Promise<number[]> {
  const { rows } = await h.pool.query<{ message_id: string; payload: Buffer }>(
    "SELECT message_id, payload FROM outbox WHERE exchange = $1 AND company_id = $2 ORDER BY id",
    [RECORD_EVENTS_EXCHANGE, t.companyId],
  );
  return rows
    .map((r) => {
      assert.equal(r.message_id, `${t.companyId}:${decodeRecordChange(r.payload).version}`);
      return Number(decodeRecordChange(r.payload).version);
    })
    .filter((v) => v > after);
}
const version = async (t: Tenant) => Number((await t.member.store.getRecordVersionDB({})).version);
const field = (c: RecordChange, name: string) => {
  const f = c.changes.find((x) => x.field === name);
  return f && [f.before && toJson(ValueSchema, f.before), f.after && toJson(ValueSchema, f.after)];
};
/** The record's etag now, and the update time it answers. */
const dealNow = async (t: Tenant, id: string) => (await t.member.store.getDealDB({ request: { id } })).response!.deal!;
const personNow = async (t: Tenant, id: string) => (await t.member.store.getPersonDB({ request: { id } })).response!.person!;
/** An update sent with `etag` is refused as any stale etag is: aborted, naming the etag sent and the current one. */
async function staleEtagRefused(t: Tenant, kind: "deal" | "person", id: string, etag: string, now: string) {
  const stale = new RegExp(`${kind} ${id} changed since you read it \\(etag ${etag}, now ${now}\\)`);
  if (kind === "deal") await expectCode(t.member.store.updateDealDB({ request: { deal: { id, name: "Stale write", etag }, updateMask: { paths: ["name"] } } }), Code.Aborted, stale);
  else await expectCode(t.member.store.updatePersonDB({ request: { person: { id, jobTitle: "Stale write", etag }, updateMask: { paths: ["job_title"] } } }), Code.Aborted, stale);
}
const taskNow = async (t: Tenant, id: string) => (await t.member.store.getTaskDB({ request: { id } })).response!.task!;
const noteNow = async (t: Tenant, id: string) => (await t.member.store.getNoteDB({ request: { id } })).response!.note!;
/** As staleEtagRefused, for a task or note: an admin's update (members may not change others' notes). */
async function staleActivityRefused(t: Tenant, kind: "task" | "note", id: string, etag: string, now: string) {
  const stale = new RegExp(`${kind} ${id} changed since you read it \\(etag ${etag}, now ${now}\\)`);
  if (kind === "task") await expectCode(t.admin.store.updateTaskDB({ request: { task: { id, title: "Stale write", etag }, updateMask: { paths: ["title"] } } }), Code.Aborted, stale);
  else await expectCode(t.admin.store.updateNoteDB({ request: { note: { id, text: "Stale write", etag }, updateMask: { paths: ["text"] } } }), Code.Aborted, stale);
}
const link = (type: ObjectType, id: string) => ({ objectType: type, id });
const what = (cs: RecordChange[]) => cs.map((c) => `${ObjectType[c.objectType]} ${ChangeAction[c.action]} ${c.recordId}`);

test("the 30-day purge: erased and unlinked records get the tenant's next versions, kept and in the outbox, as the system's", { skip }, async () => {
  const s = A.member.store;
  const company = (await s.createCompanyDB({ request: { company: { name: "Initech" } } })).response!.company!;
  const other = (await s.createCompanyDB({ request: { company: { name: "Umbrella" } } })).response!.company!;
  const person = (await s.createPersonDB({
    request: { person: { firstName: "Ann", companies: [{ companyId: other.id, role: "CTO" }, { companyId: company.id, role: "CEO" }] } },
  })).response!.person!;
  const gone = (await s.createPersonDB({ request: { person: { firstName: "Bob" } } })).response!.person!;
  const bystander = (await s.createPersonDB({ request: { person: { firstName: "Dee", companies: [{ companyId: other.id }] } } })).response!.person!;
  const stageId = (await A.admin.store.createPipelineDB({ request: { pipeline: { name: "P", stages: [{ name: "S" }] } } })).response!.pipeline!.stages[0]!.id;
  const deal = (await s.createDealDB({ request: { deal: { name: "Rollout", stageId, companyId: company.id, personIds: [person.id, gone.id] } } })).response!.deal!;
  const trashedDeal = (await s.createDealDB({ request: { deal: { name: "Old", stageId } } })).response!.deal!;
  await s.deleteCompanyDB({ request: { id: company.id } });
  await s.deletePersonDB({ request: { id: gone.id } });
  await s.deleteDealDB({ request: { id: trashedDeal.id } });
  for (const [table, id] of [["rec_companies", company.id], ["rec_people", gone.id], ["rec_deals", trashedDeal.id]]) {
    await h.pool.query(`UPDATE ${table} SET deleted_at = now() - interval '31 days' WHERE id = $1`, [id]);
  }
  // Tenant B's change log goes on by itself.
  await B.member.store.createCompanyDB({ request: { company: { name: "B's" } } });
  const [vA, vB] = [await version(A), await version(B)];
  const [dealBefore, personBefore, bystanderBefore] = [await dealNow(A, deal.id), await personNow(A, person.id), await personNow(A, bystander.id)];

  const store = recordsStore(h.db);
  const res = await store.purgeTrashDB(create(PurgeTrashDBRequestSchema, { limit: 100 }), peerContext("records"));
  assert.deepEqual([res.purged, res.more], [3, false], "three records erased; the changed ones are not counted as erased");

  const cs = await stored(A, vA);
  assert.deepEqual(cs.map((c) => Number(c.version)), [vA + 1, vA + 2, vA + 3, vA + 4, vA + 5], "the next versions, gap-free");
  assert.equal(await version(A), vA + 5, "the tenant's version moved with them");
  assert.equal(await version(B), vB, "another tenant's did not");
  assert.deepEqual(
    what(cs).sort(),
    [
      `COMPANY PURGED ${company.id}`, `DEAL PURGED ${trashedDeal.id}`, `DEAL UPDATED ${deal.id}`, `PERSON PURGED ${gone.id}`, `PERSON UPDATED ${person.id}`,
    ].sort(),
    "each erased record, and each that lost a link to one, once",
  );
  for (const c of cs) {
    assert.equal(c.tenantId, A.companyId);
    assert.deepEqual([c.actor?.type, c.actor?.id], [ActorType.SYSTEM, ""], "named as the system");
    assert.ok(c.changeTime);
  }
  const dealChange = cs.find((c) => c.recordId === deal.id)!;
  assert.deepEqual(field(dealChange, "person_ids"), [[person.id, gone.id], [person.id]], "the purged person left the deal");
  assert.deepEqual(field(dealChange, "company_id"), [company.id, null], "the purged company left the deal: one change with both");
  assert.ok(dealChange.record?.record.case === "deal" && dealChange.previous?.record.case === "deal", "with the record after and before");
  assert.equal(dealChange.record.record.value.companyId, "");
  assert.equal(dealChange.previous.record.value.companyId, company.id);
  assert.deepEqual(dealChange.previous.record.value.personIds, [person.id, gone.id]);
  const personChange = cs.find((c) => c.recordId === person.id)!;
  assert.deepEqual(field(personChange, "companies"), [[{ company_id: other.id, role: "CTO" }, { company_id: company.id, role: "CEO" }], [{ company_id: other.id, role: "CTO" }]]);
  assert.ok(personChange.record?.record.case === "person");
  assert.deepEqual(personChange.record.record.value.companies.map((l) => l.companyId), [other.id]);
  assert.ok(cs.filter((c) => c.action === ChangeAction.PURGED).every((c) => c.record === undefined), "a purged record is gone");

  assert.deepEqual(await outboxVersions(A, vA), [vA + 1, vA + 2, vA + 3, vA + 4, vA + 5], "the same events wait in the outbox, in version order");

  // The changed records' timelines say so, as the system's.
  const entries = (await s.listTimelineDB({ request: { objectType: ObjectType.DEAL, recordId: deal.id } })).response!.entries;
  assert.deepEqual(
    entries.slice(0, 2).map((e) => [TimelineAction[e.action], e.actor?.type, e.actor?.name, e.changes.map((c) => c.field).join()]),
    [["UPDATED", ActorType.SYSTEM, "trash purge", "company_id"], ["UPDATED", ActorType.SYSTEM, "trash purge", "person_ids"]],
    "newest first: the company's purge after the person's",
  );

  // The records that lost a link have a new etag and update time, as after an update (the deal
  // twice: it lost a person, then a company), which their events carry; a write with the etag read
  // before is refused as any stale one. A record the purge did not touch keeps its etag.
  const [dealAfter, personAfter] = [await dealNow(A, deal.id), await personNow(A, person.id)];
  assert.deepEqual([dealBefore.etag, dealAfter.etag], [deal.etag, String(Number(deal.etag) + 2)]);
  assert.deepEqual([personBefore.etag, personAfter.etag], [person.etag, String(Number(person.etag) + 1)]);
  assert.ok(timestampMs(dealAfter.updateTime!) > timestampMs(dealBefore.updateTime!) && timestampMs(personAfter.updateTime!) > timestampMs(personBefore.updateTime!), "update times moved");
  assert.ok(dealChange.record.record.value.etag === dealAfter.etag && personChange.record.record.value.etag === personAfter.etag, "the events carry the new etags");
  assert.equal((await personNow(A, bystander.id)).etag, bystanderBefore.etag, "a bystander keeps its etag");
  await staleEtagRefused(A, "deal", deal.id, dealBefore.etag, dealAfter.etag);
  await staleEtagRefused(A, "person", person.id, personBefore.etag, personAfter.etag);
  assert.equal((await dealNow(A, deal.id)).name, "Rollout", "the stale write changed nothing");
  await A.member.store.updateDealDB({ request: { deal: { id: deal.id, name: "Rollout 2", etag: dealAfter.etag }, updateMask: { paths: ["name"] } } });

  // Nothing left to purge: no change, no version.
  const again = await store.purgeTrashDB(create(PurgeTrashDBRequestSchema, { limit: 100 }), peerContext("records"));
  assert.equal(again.purged, 0);
  assert.equal(await version(A), vA + 6, "only the update since");
});

test("a purge job batch over several tenants versions each tenant's changes in its own sequence", { skip }, async () => {
  const [vA, vB] = [await version(A), await version(B)];
  const made: string[] = [];
  for (const t of [A, B, A]) {
    const c = (await t.member.store.createCompanyDB({ request: { company: { name: "x" } } })).response!.company!;
    await t.member.store.deleteCompanyDB({ request: { id: c.id } });
    made.push(c.id);
  }
  await h.pool.query("UPDATE rec_companies SET deleted_at = now() - interval '40 days' WHERE id = ANY($1::uuid[])", [made]);
  const store = recordsStore(h.db);
  let total = 0;
  for (;;) {
    const res = await store.purgeTrashDB(create(PurgeTrashDBRequestSchema, { limit: 1 }), peerContext("records"));
    total += res.purged ?? 0;
    if (!res.more) break;
  }
  assert.equal(total, 3);
  const a = await stored(A, vA);
  const b = await stored(B, vB);
  // Each tenant: its two creates and deletes, then the purges (gap-free, each in its own sequence).
  assert.deepEqual(a.map((c) => Number(c.version)), [1, 2, 3, 4, 5, 6].map((n) => vA + n));
  assert.deepEqual(b.map((c) => Number(c.version)), [1, 2, 3].map((n) => vB + n));
  assert.deepEqual(a.slice(4).map((c) => ChangeAction[c.action]), ["PURGED", "PURGED"]);
  assert.deepEqual(b.slice(2).map((c) => [ChangeAction[c.action], c.recordId]), [["PURGED", made[1]]]);
});

test("a user's purge notes the records that lose a link to it, with their timeline entries", { skip }, async () => {
  const s = A.member.store;
  const company = (await s.createCompanyDB({ request: { company: { name: "Hooli" } } })).response!.company!;
  const person = (await s.createPersonDB({ request: { person: { firstName: "Cy", companies: [{ companyId: company.id }] } } })).response!.person!;
  const stageId = (await A.admin.store.listPipelinesDB({ request: {} })).response!.pipelines[0]!.stages[0]!.id;
  const deal = (await s.createDealDB({ request: { deal: { name: "Hooli deal", stageId, companyId: company.id } } })).response!.deal!;
  await s.deleteCompanyDB({ request: { id: company.id } });
  const [dealBefore, personBefore] = [await dealNow(A, deal.id), await personNow(A, person.id)];
  const v = await version(A);
  await A.admin.store.purgeCompanyDB({ request: { id: company.id } });

  const cs = await stored(A, v);
  assert.deepEqual(what(cs), [`COMPANY PURGED ${company.id}`, `DEAL UPDATED ${deal.id}`, `PERSON UPDATED ${person.id}`]);
  assert.deepEqual(cs.map((c) => Number(c.version)), [v + 1, v + 2, v + 3]);
  assert.ok(cs.every((c) => c.actor?.type === ActorType.USER && c.actor.id === A.admin.userId), "named as the admin who purged");
  assert.deepEqual(field(cs[1]!, "company_id"), [company.id, null]);
  const entries = (await s.listTimelineDB({ request: { objectType: ObjectType.PERSON, recordId: person.id } })).response!.entries;
  assert.deepEqual([TimelineAction[entries[0]!.action], entries[0]!.actor?.id, entries[0]!.changes[0]?.field], ["UPDATED", A.admin.userId, "companies"]);

  // Their etags moved, as an update moves them; the old ones are refused as any stale etag.
  const [dealAfter, personAfter] = [await dealNow(A, deal.id), await personNow(A, person.id)];
  assert.deepEqual([dealAfter.etag, personAfter.etag], [String(Number(dealBefore.etag) + 1), String(Number(personBefore.etag) + 1)]);
  assert.ok(cs[1]!.record?.record.case === "deal" && cs[1]!.record.record.value.etag === dealAfter.etag, "the event carries the new etag");
  await staleEtagRefused(A, "deal", deal.id, dealBefore.etag, dealAfter.etag);
  await staleEtagRefused(A, "person", person.id, personBefore.etag, personAfter.etag);
  await s.updatePersonDB({ request: { person: { id: person.id, jobTitle: "CFO", etag: personAfter.etag }, updateMask: { paths: ["job_title"] } } });
});

test("the 30-day purge: tasks and notes that lose a link get a new etag and an UPDATED event, as the system's", { skip }, async () => {
  const s = A.member.store;
  const stageId = (await A.admin.store.listPipelinesDB({ request: {} })).response!.pipelines[0]!.stages[0]!.id;
  const company = (await s.createCompanyDB({ request: { company: { name: "Vandelay" } } })).response!.company!;
  const kept = (await s.createCompanyDB({ request: { company: { name: "Kramerica" } } })).response!.company!;
  const person = (await s.createPersonDB({ request: { person: { firstName: "Art" } } })).response!.person!;
  const deal = (await s.createDealDB({ request: { deal: { name: "Latex", stageId } } })).response!.deal!;
  const task = (await s.createTaskDB({
    request: { task: { title: "Call them", links: [link(ObjectType.DEAL, deal.id), link(ObjectType.COMPANY, company.id), link(ObjectType.COMPANY, kept.id)] } },
  })).response!.task!;
  const note = (await s.createNoteDB({ request: { note: { text: "Met Art", links: [link(ObjectType.PERSON, person.id), link(ObjectType.COMPANY, kept.id)] } } })).response!.note!;
  const bystander = (await s.createTaskDB({ request: { task: { title: "Unrelated", links: [link(ObjectType.COMPANY, kept.id)] } } })).response!.task!;
  // A task purged in the same call is purged, not also changed.
  const goneTask = (await s.createTaskDB({ request: { task: { title: "Old", links: [link(ObjectType.DEAL, deal.id)] } } })).response!.task!;
  await s.deleteTaskDB({ request: { id: goneTask.id } });
  await s.deleteCompanyDB({ request: { id: company.id } });
  await s.deletePersonDB({ request: { id: person.id } });
  await s.deleteDealDB({ request: { id: deal.id } });
  for (const [table, id] of [["rec_companies", company.id], ["rec_people", person.id], ["rec_deals", deal.id], ["rec_tasks", goneTask.id]]) {
    await h.pool.query(`UPDATE ${table} SET deleted_at = now() - interval '31 days' WHERE id = $1`, [id]);
  }
  const [taskBefore, noteBefore, bystanderBefore] = [await taskNow(A, task.id), await noteNow(A, note.id), await taskNow(A, bystander.id)];
  const v = await version(A);

  const res = await recordsStore(h.db).purgeTrashDB(create(PurgeTrashDBRequestSchema, { limit: 100 }), peerContext("records"));
  assert.equal(res.purged, 4);
  const cs = await stored(A, v);
  assert.deepEqual(cs.map((c) => Number(c.version)), [1, 2, 3, 4, 5, 6].map((n) => v + n), "the next versions, gap-free");
  assert.deepEqual(
    what(cs).sort(),
    [`COMPANY PURGED ${company.id}`, `DEAL PURGED ${deal.id}`, `PERSON PURGED ${person.id}`, `TASK PURGED ${goneTask.id}`, `TASK UPDATED ${task.id}`, `NOTE UPDATED ${note.id}`].sort(),
    "each task or note that lost a link once; the bystander and the purged task not",
  );
  assert.ok(cs.every((c) => c.actor?.type === ActorType.SYSTEM), "named as the system");
  const links = (...ls: [string, string][]) => ls.map(([object_type, id]) => ({ object_type, id }));
  const taskChange = cs.find((c) => c.recordId === task.id)!;
  assert.deepEqual(taskChange.changes.map((c) => c.field), ["links"], "one diff of the links, though the task lost a deal and a company in two steps");
  assert.deepEqual(field(taskChange, "links"), [links(["deal", deal.id], ["company", company.id], ["company", kept.id]), links(["company", kept.id])]);
  assert.deepEqual(field(cs.find((c) => c.recordId === note.id)!, "links"), [links(["person", person.id], ["company", kept.id]), links(["company", kept.id])]);
  assert.deepEqual(await outboxVersions(A, v), [1, 2, 3, 4, 5, 6].map((n) => v + n), "the same events wait in the outbox");

  // Their timelines say so, as the system's, and their etags and update times moved (the task
  // twice: it lost the deal, then the company); the old etags are refused; the bystander keeps its.
  const entries = (await s.listTimelineDB({ request: { objectType: ObjectType.TASK, recordId: task.id } })).response!.entries;
  assert.deepEqual(
    entries.slice(0, 2).map((e) => [TimelineAction[e.action], e.actor?.type, e.actor?.name, e.changes.map((c) => c.field).join()]),
    [["UPDATED", ActorType.SYSTEM, "trash purge", "links"], ["UPDATED", ActorType.SYSTEM, "trash purge", "links"]],
  );
  const [taskAfter, noteAfter] = [await taskNow(A, task.id), await noteNow(A, note.id)];
  assert.deepEqual([taskAfter.etag, noteAfter.etag], [String(Number(taskBefore.etag) + 2), String(Number(noteBefore.etag) + 1)]);
  assert.deepEqual([taskAfter.links.map((l) => l.id), noteAfter.links.map((l) => l.id)], [[kept.id], [kept.id]]);
  assert.ok(timestampMs(taskAfter.updateTime!) > timestampMs(taskBefore.updateTime!) && timestampMs(noteAfter.updateTime!) > timestampMs(noteBefore.updateTime!), "update times moved");
  assert.equal((await taskNow(A, bystander.id)).etag, bystanderBefore.etag, "a bystander keeps its etag");
  await staleActivityRefused(A, "task", task.id, taskBefore.etag, taskAfter.etag);
  await staleActivityRefused(A, "note", note.id, noteBefore.etag, noteAfter.etag);
  assert.equal((await taskNow(A, task.id)).title, "Call them", "the stale write changed nothing");
  await A.admin.store.updateTaskDB({ request: { task: { id: task.id, title: "Call them 2", etag: taskAfter.etag }, updateMask: { paths: ["title"] } } });
});

test("a user's purge: the tasks and notes that lose a link to it get a new etag and an UPDATED event", { skip }, async () => {
  const s = A.member.store;
  const company = (await s.createCompanyDB({ request: { company: { name: "Pendant" } } })).response!.company!;
  const other = (await s.createCompanyDB({ request: { company: { name: "Monk's" } } })).response!.company!;
  const task = (await s.createTaskDB({ request: { task: { title: "Ship it", links: [link(ObjectType.COMPANY, company.id)] } } })).response!.task!;
  const note = (await s.createNoteDB({ request: { note: { text: "Pendant", links: [link(ObjectType.COMPANY, other.id), link(ObjectType.COMPANY, company.id)] } } })).response!.note!;
  const bystander = (await s.createNoteDB({ request: { note: { text: "Monk's", links: [link(ObjectType.COMPANY, other.id)] } } })).response!.note!;
  await s.deleteCompanyDB({ request: { id: company.id } });
  const [taskBefore, noteBefore, bystanderBefore] = [await taskNow(A, task.id), await noteNow(A, note.id), await noteNow(A, bystander.id)];
  const v = await version(A);
  await A.admin.store.purgeCompanyDB({ request: { id: company.id } });

  const cs = await stored(A, v);
  assert.deepEqual(what(cs), [`COMPANY PURGED ${company.id}`, `TASK UPDATED ${task.id}`, `NOTE UPDATED ${note.id}`]);
  assert.deepEqual(cs.map((c) => Number(c.version)), [v + 1, v + 2, v + 3]);
  assert.ok(cs.every((c) => c.actor?.type === ActorType.USER && c.actor.id === A.admin.userId), "named as the admin who purged");
  assert.deepEqual(field(cs[1]!, "links"), [[{ object_type: "company", id: company.id }], null], "the task's last link gone");
  assert.deepEqual(field(cs[2]!, "links"), [[{ object_type: "company", id: other.id }, { object_type: "company", id: company.id }], [{ object_type: "company", id: other.id }]]);
  const entries = (await s.listTimelineDB({ request: { objectType: ObjectType.NOTE, recordId: note.id } })).response!.entries;
  assert.deepEqual([TimelineAction[entries[0]!.action], entries[0]!.actor?.id, entries[0]!.changes[0]?.field], ["UPDATED", A.admin.userId, "links"]);

  const [taskAfter, noteAfter] = [await taskNow(A, task.id), await noteNow(A, note.id)];
  assert.deepEqual([taskAfter.etag, noteAfter.etag], [String(Number(taskBefore.etag) + 1), String(Number(noteBefore.etag) + 1)]);
  assert.equal((await noteNow(A, bystander.id)).etag, bystanderBefore.etag, "a note that did not link it keeps its etag");
  await staleActivityRefused(A, "task", task.id, taskBefore.etag, taskAfter.etag);
  await staleActivityRefused(A, "note", note.id, noteBefore.etag, noteAfter.etag);
  await A.admin.store.updateNoteDB({ request: { note: { id: note.id, text: "Pendant 2", etag: noteAfter.etag }, updateMask: { paths: ["text"] } } });
});

test("jobs of several replicas at once: each record purged once, every tenant's versions gap-free", { skip }, async () => {
  const tenants = [A, B, await h.tenant("C")];
  const before = await Promise.all(tenants.map(version));
  const made: string[] = [];
  for (const t of tenants) {
    for (let i = 0; i < 10; i++) {
      const c = (await t.member.store.createCompanyDB({ request: { company: { name: `c${i}` } } })).response!.company!;
      await t.member.store.deleteCompanyDB({ request: { id: c.id } });
      made.push(c.id);
    }
  }
  await h.pool.query("UPDATE rec_companies SET deleted_at = now() - interval '40 days' WHERE id = ANY($1::uuid[])", [made]);
  const store = recordsStore(h.db);
  const replica = async () => {
    let n = 0;
    for (;;) {
      const res = await store.purgeTrashDB(create(PurgeTrashDBRequestSchema, { limit: 2 }), peerContext("records"));
      n += res.purged ?? 0;
      if (!res.more) return n;
    }
  };
  const counts = await Promise.all([replica(), replica(), replica(), replica()]);
  // A replica stops when its batch came back short, so one more pass catches what the others held.
  const total = counts.reduce((a, b) => a + b, 0) + (await replica());
  assert.equal(total, 30, "each purged once");
  for (const [i, t] of tenants.entries()) {
    const cs = await stored(t, before[i]!);
    assert.deepEqual(cs.map((c) => Number(c.version)), Array.from({ length: 30 }, (_, k) => before[i]! + k + 1), "gap-free");
    assert.equal(cs.filter((c) => c.action === ChangeAction.PURGED).length, 10);
  }
});

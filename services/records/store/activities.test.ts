/**
 * Tasks, notes and the trash on the real PostgreSQL: links to records, the entries they write on
 * linked records' timelines (with the task or note as subject), "my open tasks", who may change
 * what (owner, assignee, author, admins), the trash (deleted ones leave lists, their timeline
 * stays), the on-demand purge, and the 30-day purge job (PurgeTrashDB, for the records service's
 * own identity only).
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { Code } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import { ObjectType, Operator, type Filter } from "@crm/gen/crm/records/v1/common_pb";
import { PurgeTrashDBRequestSchema } from "@crm/gen/crm/db/v1/db_records_pb";
import { TimelineAction } from "@crm/gen/crm/records/v1/timeline_pb";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { installHint, need, postgresUp } from "@crm/testkit";
import { recordsStore } from "./records-store.js";
import { expectCode, fieldsOf, peerContext, storeHarness, type StoreHarness, type Tenant, type User } from "../test/harness.js";

const skip = need("PostgreSQL", await postgresUp(), installHint.postgres);

let h: StoreHarness;
let A: Tenant;
let B: Tenant;
let deal: string;
let company: string;
let person: string;
before(async () => {
  if (skip) return;
  h = await storeHarness();
  A = await h.tenant("A");
  B = await h.tenant("B");
  const stageId = (await A.admin.store.createPipelineDB({ request: { pipeline: { name: "P", stages: [{ name: "S" }] } } })).response!.pipeline!.stages[0]!.id;
  deal = (await A.member.store.createDealDB({ request: { deal: { name: "D", stageId } } })).response!.deal!.id;
  company = (await A.member.store.createCompanyDB({ request: { company: { name: "C" } } })).response!.company!.id;
  person = (await A.member.store.createPersonDB({ request: { person: { firstName: "P" } } })).response!.person!.id;
});
after(async () => {
  await h?.close();
});

const cond = (field: string, operator: Operator, ...values: string[]): Filter => ({ node: { case: "condition", value: { field, operator, values } } }) as Filter;
const and = (...filters: Filter[]): Filter => ({ node: { case: "and", value: { filters } } }) as Filter;
const listReq = (o: { filter?: Filter; orderBy?: string; showDeleted?: boolean }) => ({ request: { orderBy: "", pageSize: 0, pageToken: "", showDeleted: false, exactTotal: false, ...o } });
const link = (objectType: ObjectType, id: string) => ({ objectType, id });

async function timeline(u: User, objectType: ObjectType, recordId: string) {
  return (await u.store.listTimelineDB({ request: { objectType, recordId } })).response!.entries.map((e) => ({
    action: TimelineAction[e.action],
    subject: e.subject ? `${ObjectType[e.subject.objectType]}:${e.subject.id}` : "",
    fields: e.changes.map((c) => c.field),
  }));
}

test("tasks: links, the linked records' timelines, my open tasks, who may change what", { skip }, async () => {
  const due = timestampFromDate(new Date("2030-01-02T09:00:00Z"));
  const t = (await A.member.store.createTaskDB({
    request: { task: { title: " Call Ann ", dueTime: due, assigneeId: A.member2.userId, links: [link(ObjectType.DEAL, deal), link(ObjectType.COMPANY, company)] } },
  })).response!.task!;
  assert.equal(t.title, "Call Ann");
  assert.equal(t.ownerId, A.member.userId);
  assert.equal(t.assigneeId, A.member2.userId);
  assert.deepEqual((await timeline(A.member, ObjectType.DEAL, deal))[0], { action: "CREATED", subject: `TASK:${t.id}`, fields: ["title", "due_time", "assignee_id", "done", "owner_id"] });
  assert.equal((await timeline(A.member, ObjectType.TASK, t.id))[0]!.action, "CREATED");

  // Another tenant's record, a missing one, a bad one: named.
  const e = await expectCode(A.member.store.createTaskDB({ request: { task: { title: "x", links: [link(ObjectType.DEAL, B.owner.userId), link(ObjectType.UNSPECIFIED, deal)] } } }), Code.InvalidArgument);
  assert.deepEqual(fieldsOf(e), ["task.links[1].objectType"]);
  await expectCode(A.member.store.createTaskDB({ request: { task: { title: "x", links: [link(ObjectType.DEAL, company)] } } }), Code.NotFound, /task.links\[0\].id/);

  // Someone else's task: a third member may not change it; the assignee may, but not hand it on.
  const done = (await A.member2.store.updateTaskDB({ request: { task: { id: t.id, done: true }, updateMask: { paths: ["done"] } } })).response!.task!;
  assert.ok(done.done && done.doneTime);
  const third = await h.tenantUser(A, "member");
  await expectCode(third.store.updateTaskDB({ request: { task: { id: t.id, done: false }, updateMask: { paths: ["done"] } } }), Code.PermissionDenied, /own or are assigned/);
  await expectCode(A.member2.store.updateTaskDB({ request: { task: { id: t.id, ownerId: A.member2.userId }, updateMask: { paths: ["owner_id"] } } }), Code.PermissionDenied);
  const entry = (await timeline(A.member, ObjectType.DEAL, deal))[0]!;
  assert.deepEqual(entry, { action: "UPDATED", subject: `TASK:${t.id}`, fields: ["done"] });

  // Links changed: unlinked from the company, linked to the person.
  await A.member.store.updateTaskDB({ request: { task: { id: t.id, links: [link(ObjectType.DEAL, deal), link(ObjectType.PERSON, person)] }, updateMask: { paths: ["links"] } } });
  assert.equal((await timeline(A.member, ObjectType.COMPANY, company))[0]!.action, "UNLINKED");
  assert.equal((await timeline(A.member, ObjectType.PERSON, person))[0]!.action, "LINKED");

  // My open tasks: assigned to me, not done, by due time (none last).
  const mine = async (u: User) =>
    (await u.store.listTasksDB(listReq({ filter: and(cond("assignee_id", Operator.EQUALS, "me"), cond("done", Operator.EQUALS, "false")), orderBy: "due_time" }))).response!.tasks.map((x) => x.title);
  await A.member2.store.createTaskDB({ request: { task: { title: "later", dueTime: timestampFromDate(new Date("2031-01-01T00:00:00Z")) } } });
  await A.member2.store.createTaskDB({ request: { task: { title: "someday" } } });
  await A.member2.store.createTaskDB({ request: { task: { title: "soon", dueTime: due } } });
  assert.deepEqual(await mine(A.member2), ["soon", "later", "someday"]);
  assert.deepEqual(await mine(A.member), []);
  // A record's tasks.
  assert.deepEqual((await A.admin.store.listTasksDB(listReq({ filter: cond("record_ids", Operator.EQUALS, person) }))).response!.tasks.map((x) => x.id), [t.id]);
  await expectCode(B.owner.store.getTaskDB({ request: { id: t.id } }), Code.NotFound);
});

test("notes: markdown, the author's (and the admins'), excerpts on linked records' timelines", { skip }, async () => {
  const text = `# Call notes\n\n- wants a **demo**\n${"x".repeat(600)}`;
  const n = (await A.member.store.createNoteDB({ request: { note: { text, links: [link(ObjectType.DEAL, deal)] } } })).response!.note!;
  assert.equal(n.text, text);
  assert.equal(n.authorId, A.member.userId);
  const tl = (await A.member.store.listTimelineDB({ request: { objectType: ObjectType.DEAL, recordId: deal } })).response!.entries[0]!;
  assert.equal(tl.subject?.id, n.id);
  const shown = tl.changes.find((c) => c.field === "text")!.after!;
  assert.equal(shown.kind.case, "stringValue");
  assert.equal([...(shown.kind.value as string)].length, 501, "the first 500 characters and an ellipsis");

  await expectCode(A.member2.store.updateNoteDB({ request: { note: { id: n.id, text: "mine now" }, updateMask: { paths: ["text"] } } }), Code.PermissionDenied, /notes they wrote/);
  const edited = (await A.admin.store.updateNoteDB({ request: { note: { id: n.id, text: "edited", etag: n.etag }, updateMask: { paths: ["text"] } } })).response!.note!;
  assert.equal(edited.text, "edited");
  await expectCode(A.member.store.createNoteDB({ request: { note: { text: "y".repeat(20_001) } } }), Code.InvalidArgument, /note.text/);
  await expectCode(A.member.store.createNoteDB({ request: { note: { text: "  \n" } } }), Code.InvalidArgument, /note.text: is required/);
  assert.deepEqual((await A.member2.store.listNotesDB(listReq({ filter: cond("record_ids", Operator.EQUALS, deal), orderBy: "create_time desc" }))).response!.notes.map((x) => x.id), [n.id]);
});

test("the trash: deleted tasks and notes leave lists, their timelines stay; purging one erases the entries it wrote on linked records", { skip }, async () => {
  const t = (await A.member.store.createTaskDB({ request: { task: { title: "trash me", links: [link(ObjectType.DEAL, deal)] } } })).response!.task!;
  await A.member.store.deleteTaskDB({ request: { id: t.id, etag: t.etag } });
  const listed = async (showDeleted: boolean) => (await A.admin.store.listTasksDB(listReq({ showDeleted }))).response!.tasks.map((x) => x.id);
  assert.ok(!(await listed(false)).includes(t.id));
  assert.ok((await listed(true)).includes(t.id));
  assert.deepEqual((await timeline(A.member, ObjectType.TASK, t.id)).map((e) => e.action), ["DELETED", "CREATED"]);
  assert.equal((await timeline(A.member, ObjectType.DEAL, deal))[0]!.action, "DELETED");

  await expectCode(A.member.store.purgeTaskDB({ request: { id: t.id } }), Code.PermissionDenied);
  await A.admin.store.purgeTaskDB({ request: { id: t.id } });
  await expectCode(A.admin.store.getTaskDB({ request: { id: t.id } }), Code.NotFound);
  assert.ok(!(await timeline(A.member, ObjectType.DEAL, deal)).some((e) => e.subject === `TASK:${t.id}`), "the purged task's entries on the deal are gone");
});

test("the 30-day purge erases what has been in the trash over 30 days, in every tenant, with its timeline; only for the records service", { skip }, async () => {
  const store = recordsStore(h.db);
  const old = (await A.member.store.createCompanyDB({ request: { company: { name: "old" } } })).response!.company!;
  const recent = (await A.member.store.createCompanyDB({ request: { company: { name: "recent" } } })).response!.company!;
  const oldNote = (await B.owner.store.createNoteDB({ request: { note: { text: "old note" } } })).response!.note!;
  const kept = (await A.member.store.createCompanyDB({ request: { company: { name: "kept" } } })).response!.company!;
  for (const [u, id, kind] of [[A.member, old.id, "company"], [A.member, recent.id, "company"], [B.owner, oldNote.id, "note"]] as const) {
    if (kind === "company") await u.store.deleteCompanyDB({ request: { id } });
    else await u.store.deleteNoteDB({ request: { id } });
  }
  await h.pool.query("UPDATE rec_companies SET deleted_at = now() - interval '31 days' WHERE id = $1", [old.id]);
  await h.pool.query("UPDATE rec_companies SET deleted_at = now() - interval '29 days' WHERE id = $1", [recent.id]);
  await h.pool.query("UPDATE rec_notes SET deleted_at = now() - interval '40 days' WHERE id = $1", [oldNote.id]);

  await assert.rejects(async () => store.purgeTrashDB(create(PurgeTrashDBRequestSchema, { limit: 1 }), peerContext("timers")), /only for the records service/);
  let total = 0;
  for (;;) {
    const res = await store.purgeTrashDB(create(PurgeTrashDBRequestSchema, { limit: 1 }), peerContext("records"));
    total += res.purged ?? 0;
    if (!res.more) break;
  }
  assert.equal(total, 2);
  await expectCode(A.admin.store.getCompanyRecordDB({ request: { id: old.id } }), Code.NotFound);
  await expectCode(B.owner.store.getNoteDB({ request: { id: oldNote.id } }), Code.NotFound);
  assert.ok((await A.admin.store.getCompanyRecordDB({ request: { id: recent.id } })).response!.company!.deleteTime, "29 days in the trash: kept");
  assert.ok((await A.admin.store.getCompanyRecordDB({ request: { id: kept.id } })).response!.company);
  const { rows } = await h.pool.query("SELECT count(*)::int AS n FROM rec_timeline WHERE record_id = ANY($1::uuid[])", [[old.id, oldNote.id]]);
  assert.equal(rows[0].n, 0, "their timelines went with them");
});

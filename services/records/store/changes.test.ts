/**
 * Record change events on the real PostgreSQL: every change of a record gets the tenant's next
 * version (gap-free, per tenant, also under concurrent writers), its RecordChange is kept in
 * rec_changes and written to the outbox in the same transaction, and a refused change writes none.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { Code } from "@connectrpc/connect";
import { toJson } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { RECORD_EVENTS_EXCHANGE, recordRoutingKey } from "@crm/contracts";
import { decodeRecordChange, EVENT_TYPE_HEADER } from "@crm/contracts/events";
import { ObjectType } from "@crm/gen/crm/records/v1/common_pb";
import { DealStatus } from "@crm/gen/crm/records/v1/deal_pb";
import { StageKind } from "@crm/gen/crm/records/v1/pipeline_pb";
import { ChangeAction, type RecordChange } from "@crm/gen/crm/records/v1/stream_pb";
import { installHint, need, postgresUp } from "@crm/testkit";
import { expectCode, storeHarness, type StoreHarness, type Tenant } from "../test/harness.js";

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

/** The tenant's stored changes, decoded, in version order (read below row-level security). */
async function stored(t: Tenant): Promise<RecordChange[]> {
  const { rows } = await h.pool.query<{ version: string; event: Buffer }>("SELECT version, event FROM rec_changes WHERE company_id = $1 ORDER BY version", [t.companyId]);
  return rows.map((r) => {
    const c = decodeRecordChange(r.event);
    assert.equal(c.version, BigInt(r.version), "the event carries the version it is kept under");
    return c;
  });
}

const versions = (cs: RecordChange[]) => cs.map((c) => Number(c.version));
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);
const field = (c: RecordChange, name: string) => {
  const f = c.changes.find((x) => x.field === name);
  return f && [f.before && toJson(ValueSchema, f.before), f.after && toJson(ValueSchema, f.after)];
};

test("every change gets the tenant's next version, its event kept and in the outbox, in the same transaction", { skip }, async () => {
  const s = A.member.store;
  const company = (await s.createCompanyDB({ request: { company: { name: "Globex", domain: "globex.example" } } })).response!.company!;
  await s.updateCompanyDB({ request: { company: { id: company.id, name: "Globex Corp" }, updateMask: { paths: ["name"] } } });
  await s.deleteCompanyDB({ request: { id: company.id } });
  await s.undeleteCompanyDB({ request: { id: company.id } });
  const person = (await s.createPersonDB({ request: { person: { firstName: "Ann", emails: ["ann@globex.example"], companies: [{ companyId: company.id }] } } })).response!.person!;
  const pipeline = (await A.admin.store.createPipelineDB({ request: { pipeline: { name: "Sales", stages: [{ name: "Lead" }, { name: "Won", kind: StageKind.WON }] } } })).response!.pipeline!;
  const deal = (await s.createDealDB({ request: { deal: { name: "Rollout", stageId: pipeline.stages[0]!.id, personIds: [person.id] } } })).response!.deal!;
  await s.moveDealDB({ request: { id: deal.id, stageId: pipeline.stages[1]!.id } });
  await s.deleteCompanyDB({ request: { id: company.id } });
  await A.admin.store.purgeCompanyDB({ request: { id: company.id } });

  const cs = await stored(A);
  assert.deepEqual(versions(cs), range(1, 10), "gap-free from 1 (pipelines are configuration, not records)");
  assert.deepEqual(
    cs.map((c) => [ObjectType[c.objectType], ChangeAction[c.action]]),
    [
      ["COMPANY", "CREATED"], ["COMPANY", "UPDATED"], ["COMPANY", "DELETED"], ["COMPANY", "RESTORED"], ["PERSON", "CREATED"],
      ["DEAL", "CREATED"], ["DEAL", "STAGE_CHANGED"], ["COMPANY", "DELETED"], ["COMPANY", "PURGED"],
      // The purge took the company off its person's links: a change of the person too.
      ["PERSON", "UPDATED"],
    ],
  );
  for (const c of cs) {
    assert.equal(c.tenantId, A.companyId);
    assert.equal(c.actor?.id, Number(c.version) >= 9 ? A.admin.userId : A.member.userId);
    assert.ok(c.changeTime, "a change time");
  }
  // The record after, and before, each change.
  const [created, updated, deleted] = cs;
  assert.equal(created!.record?.record.case, "company");
  assert.equal(created!.previous, undefined, "a created record has no previous state");
  assert.deepEqual(field(updated!, "name"), ["Globex", "Globex Corp"]);
  assert.ok(updated!.record?.record.case === "company" && updated!.previous?.record.case === "company");
  assert.equal(updated!.record.record.value.name, "Globex Corp");
  assert.equal(updated!.previous.record.value.name, "Globex", "rebuilt from the diff");
  assert.ok(deleted!.record?.record.case === "company" && deleted!.record.record.value.deleteTime, "in the trash after");
  assert.ok(deleted!.previous?.record.case === "company" && !deleted!.previous.record.value.deleteTime, "not before");
  const moved = cs[6]!;
  assert.ok(moved.record?.record.case === "deal" && moved.previous?.record.case === "deal");
  assert.equal(moved.record.record.value.status, DealStatus.WON);
  assert.equal(moved.previous.record.value.stageId, pipeline.stages[0]!.id);
  assert.equal(moved.previous.record.value.status, DealStatus.OPEN);
  assert.equal(cs[8]!.record, undefined, "a purged record is gone");
  assert.equal(cs[8]!.recordId, company.id);

  // The same bytes wait in the outbox, addressed to the tenant's routing key.
  const { rows: out } = await h.pool.query<{ exchange: string; routing_key: string; message_id: string; payload: Buffer; headers: Record<string, string>; company_id: string }>(
    "SELECT exchange, routing_key, message_id, payload, headers, company_id FROM outbox WHERE exchange = $1 AND company_id = $2 ORDER BY id",
    [RECORD_EVENTS_EXCHANGE, A.companyId],
  );
  assert.deepEqual(out.map((o) => o.message_id), range(1, 10).map((v) => `${A.companyId}:${v}`));
  assert.ok(out.every((o) => o.routing_key === recordRoutingKey(A.companyId) && o.headers[EVENT_TYPE_HEADER] === "crm.records.v1.RecordChange"));
  assert.deepEqual(out.map((o) => Number(decodeRecordChange(o.payload).version)), range(1, 10));

  // The store's own view of them: the version, and the changes of one type after a version.
  assert.equal((await A.member.store.getRecordVersionDB({})).version, 10n);
  const deals = await A.member2.store.listChangesDB({ objectType: ObjectType.DEAL, afterVersion: 0n });
  assert.deepEqual(versions(deals.changes), [6, 7]);
  assert.equal(deals.throughVersion, 10n, "every change up to the tenant's version was considered");
  assert.equal(deals.more, false);
  const page = await A.member2.store.listChangesDB({ afterVersion: 2n, limit: 3 });
  assert.deepEqual(versions(page.changes), [3, 4, 5]);
  assert.deepEqual([page.throughVersion, page.more], [5n, true]);
  assert.equal((await B.owner.store.listChangesDB({ afterVersion: 0n })).changes.length, 0, "another tenant's changes are not seen");
});

test("a task's and a note's events carry them after the change and before it, like any record's", { skip }, async () => {
  const C = await h.tenant("C");
  const s = C.member.store;
  const task = (await s.createTaskDB({ request: { task: { title: "Call Ann" } } })).response!.task!;
  const done = (await s.updateTaskDB({ request: { task: { id: task.id, done: true, etag: task.etag }, updateMask: { paths: ["done"] } } })).response!.task!;
  const note = (await s.createNoteDB({ request: { note: { text: "Met at the fair" } } })).response!.note!;
  await s.updateNoteDB({ request: { note: { id: note.id, text: "Met at the fair in May" }, updateMask: { paths: ["text"] } } });
  await s.deleteTaskDB({ request: { id: task.id } });

  const cs = await stored(C);
  assert.deepEqual(cs.map((c) => [ObjectType[c.objectType], ChangeAction[c.action]]), [["TASK", "CREATED"], ["TASK", "UPDATED"], ["NOTE", "CREATED"], ["NOTE", "UPDATED"], ["TASK", "DELETED"]]);
  const [created, updated, noteCreated, noteUpdated, deleted] = cs;
  assert.ok(created!.record?.record.case === "task", "a webhook gets the task, not only its id");
  assert.equal(created!.record.record.value.title, "Call Ann");
  assert.equal(created!.record.record.value.assigneeId, C.member.userId);
  assert.ok(updated!.record?.record.case === "task" && updated!.previous?.record.case === "task");
  assert.equal(updated!.record.record.value.done, true);
  assert.equal(updated!.record.record.value.etag, done.etag, "the event names the version a client would update with");
  assert.equal(updated!.previous.record.value.done, false, "rebuilt from the diff");
  assert.ok(noteCreated!.record?.record.case === "note" && noteCreated!.record.record.value.text === "Met at the fair");
  assert.ok(noteUpdated!.record?.record.case === "note" && noteUpdated!.previous?.record.case === "note");
  assert.equal(noteUpdated!.record.record.value.text, "Met at the fair in May");
  assert.equal(noteUpdated!.previous.record.value.text, "Met at the fair");
  assert.ok(deleted!.record?.record.case === "task" && deleted!.record.record.value.deleteTime, "in the trash after");
});

test("a refused change takes no version and writes no event", { skip }, async () => {
  const s = B.member.store;
  const c = (await s.createCompanyDB({ request: { company: { name: "Initech" } } })).response!.company!;
  await expectCode(s.updateCompanyDB({ request: { company: { id: c.id, name: "x", etag: "7" }, updateMask: { paths: ["name"] } } }), Code.Aborted);
  await expectCode(B.member2.store.deleteCompanyDB({ request: { id: c.id } }), Code.PermissionDenied);
  // Nothing changed: no event either.
  await s.updateCompanyDB({ request: { company: { id: c.id, name: "Initech" }, updateMask: { paths: ["name"] } } });
  await s.updateCompanyDB({ request: { company: { id: c.id, name: "Initrode" }, updateMask: { paths: ["name"] } } });
  assert.deepEqual(versions(await stored(B)), [1, 2], "B counts on its own, and only what changed");
});

test("concurrent writers of one tenant: versions gap-free and unique, in commit order", { skip }, async () => {
  const t = await h.tenant("C");
  const writers = [t.owner, t.admin, t.member, t.member2];
  await Promise.all(Array.from({ length: 40 }, (_, i) => writers[i % 4]!.store.createCompanyDB({ request: { company: { name: `Co ${i}` } } })));
  const cs = await stored(t);
  assert.deepEqual(versions(cs), range(1, 40));
  assert.equal(new Set(cs.map((c) => c.recordId)).size, 40, "one change per company");
  // Commit order: version order is the order of the change times' transactions (never decreasing ids in the outbox).
  const { rows } = await h.pool.query<{ message_id: string }>("SELECT message_id FROM outbox WHERE company_id = $1 ORDER BY id", [t.companyId]);
  assert.deepEqual(rows.map((r) => Number(r.message_id.split(":")[1])), range(1, 40), "the outbox holds them in version order");
});

test("bulk changes: a stage's new kind and a removed stage give each deal its event", { skip }, async () => {
  const t = await h.tenant("D");
  const p = (await t.admin.store.createPipelineDB({ request: { pipeline: { name: "P", stages: [{ name: "One" }, { name: "Two" }] } } })).response!.pipeline!;
  const [one, two] = p.stages;
  for (const n of ["a", "b", "c"]) await t.member.store.createDealDB({ request: { deal: { name: n, stageId: one!.id } } });
  await t.admin.store.updateStageDB({ request: { stage: { id: one!.id, kind: StageKind.WON }, updateMask: { paths: ["kind"] } } });
  await t.admin.store.deleteStageDB({ request: { id: one!.id, moveDealsToStageId: two!.id } });
  const cs = await stored(t);
  assert.deepEqual(versions(cs), range(1, 9));
  assert.deepEqual(cs.slice(3).map((c) => ChangeAction[c.action]), ["UPDATED", "UPDATED", "UPDATED", "STAGE_CHANGED", "STAGE_CHANGED", "STAGE_CHANGED"]);
  const last = cs[8]!;
  assert.ok(last.record?.record.case === "deal" && last.previous?.record.case === "deal");
  assert.deepEqual([last.previous.record.value.stageId, last.record.record.value.stageId], [one!.id, two!.id]);
  assert.deepEqual([last.previous.record.value.status, last.record.record.value.status], [DealStatus.WON, DealStatus.OPEN]);
});

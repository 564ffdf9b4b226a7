/**
 * The records store on the real PostgreSQL, called as dbservice serves it (the kit's interceptors,
 * in memory): full flows per object, the timeline written with each change, optimistic
 * concurrency, tenants and roles.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { Code } from "@connectrpc/connect";
import { toJson } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { ObjectType, Operator } from "@crm/gen/crm/records/v1/common_pb";
import { DealStatus } from "@crm/gen/crm/records/v1/deal_pb";
import { StageKind } from "@crm/gen/crm/records/v1/pipeline_pb";
import { TimelineAction } from "@crm/gen/crm/records/v1/timeline_pb";
import { installHint, need, postgresUp } from "@crm/testkit";
import { expectCode, fieldsOf, storeHarness, type StoreHarness, type Tenant, type User } from "../test/harness.js";

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

const mask = (...paths: string[]) => ({ paths });

async function timeline(u: User, objectType: ObjectType, recordId: string) {
  const res = await u.store.listTimelineDB({ request: { objectType, recordId } });
  return res.response!.entries.map((e) => ({
    action: TimelineAction[e.action],
    actor: e.actor?.id,
    changes: Object.fromEntries(e.changes.map((c) => [c.field, [c.before && toJson(ValueSchema, c.before), c.after && toJson(ValueSchema, c.after)]])),
  }));
}

test("company: create (domain normalised), get, update by mask with the etag, stale etag aborted, trash, undelete, purge; timeline", { skip }, async () => {
  const created = (await A.member.store.createCompanyDB({ request: { company: { name: " Acme ", domain: "https://www.ACME.example/about", tags: ["vip", " VIP", "b2b"], size: 40 } } })).response!.company!;
  assert.equal(created.name, "Acme");
  assert.equal(created.domain, "acme.example");
  assert.deepEqual(created.tags, ["vip", "b2b"]);
  assert.equal(created.ownerId, A.member.userId, "the owner defaults to the caller");
  assert.equal(created.etag, "1");

  const got = (await A.admin.store.getCompanyRecordDB({ request: { id: created.id } })).response!.company!;
  assert.equal(got.name, "Acme");

  const updated = (await A.member.store.updateCompanyDB({ request: { company: { id: created.id, name: "Acme Inc", industry: "Software", etag: "1" }, updateMask: mask("name", "industry") } })).response!.company!;
  assert.equal(updated.name, "Acme Inc");
  assert.equal(updated.industry, "Software");
  assert.equal(updated.domain, "acme.example", "fields outside the mask keep their values");
  assert.equal(updated.etag, "2");

  // A stale etag: aborted, nothing changed.
  await expectCode(A.member.store.updateCompanyDB({ request: { company: { id: created.id, name: "Lost update", etag: "1" }, updateMask: mask("name") } }), Code.Aborted, /changed since you read it/);
  assert.equal((await A.member.store.getCompanyRecordDB({ request: { id: created.id } })).response!.company!.name, "Acme Inc");

  // Same domain, any spelling: already_exists naming the company; nothing written.
  const dup = await expectCode(A.admin.store.createCompanyDB({ request: { company: { name: "Copy", domain: "ACME.example." } } }), Code.AlreadyExists, new RegExp(created.id));
  assert.deepEqual(fieldsOf(dup), ["company.domain"]);

  const deleted = (await A.member.store.deleteCompanyDB({ request: { id: created.id, etag: "2" } })).response!.company!;
  assert.ok(deleted.deleteTime && deleted.purgeTime);
  const listed = async (showDeleted: boolean) => (await A.admin.store.listCompaniesDB({ request: { showDeleted, orderBy: "", pageSize: 0, pageToken: "", exactTotal: false } })).response!.companies.map((c) => c.id);
  assert.ok(!(await listed(false)).includes(created.id), "trashed companies leave lists");
  assert.ok((await listed(true)).includes(created.id));
  await expectCode(A.member.store.updateCompanyDB({ request: { company: { id: created.id, name: "x" }, updateMask: mask("name") } }), Code.FailedPrecondition, /in the trash/);
  await expectCode(A.admin.store.purgeCompanyDB({ request: { id: created.id } }).then(() => A.admin.store.purgeCompanyDB({ request: { id: created.id } })), Code.NotFound);

  // Timeline of a purged record is gone with it; a fresh one shows created → updated → deleted → restored.
  const c2 = (await A.member.store.createCompanyDB({ request: { company: { name: "Beta" } } })).response!.company!;
  await A.member.store.updateCompanyDB({ request: { company: { id: c2.id, name: "Beta GmbH", size: 7 }, updateMask: mask("name", "size") } });
  await A.member.store.deleteCompanyDB({ request: { id: c2.id } });
  await A.member.store.undeleteCompanyDB({ request: { id: c2.id } });
  await expectCode(A.member.store.purgeCompanyDB({ request: { id: c2.id } }), Code.PermissionDenied, /owners and admins/);
  await expectCode(A.admin.store.purgeCompanyDB({ request: { id: c2.id } }), Code.FailedPrecondition, /not in the trash/);
  const entries = await timeline(A.member, ObjectType.COMPANY, c2.id);
  assert.deepEqual(entries.map((e) => e.action), ["RESTORED", "DELETED", "UPDATED", "CREATED"], "newest first");
  assert.deepEqual(entries[2]!.changes, { name: ["Beta", "Beta GmbH"], size: [null, 7] });
  assert.equal(entries[3]!.changes.name?.[1], "Beta");
  assert.equal(entries[3]!.actor, A.member.userId);
  await expectCode(A.member.store.listTimelineDB({ request: { objectType: ObjectType.COMPANY, recordId: created.id } }), Code.NotFound, /purged/);
});

test("tenants: another tenant's records are not_found for every RPC; its domains do not collide", { skip }, async () => {
  const c = (await A.owner.store.createCompanyDB({ request: { company: { name: "Only A", domain: "only-a.example" } } })).response!.company!;
  await expectCode(B.owner.store.getCompanyRecordDB({ request: { id: c.id } }), Code.NotFound);
  await expectCode(B.owner.store.updateCompanyDB({ request: { company: { id: c.id, name: "B was here" }, updateMask: mask("name") } }), Code.NotFound);
  await expectCode(B.owner.store.deleteCompanyDB({ request: { id: c.id } }), Code.NotFound);
  await expectCode(B.owner.store.listTimelineDB({ request: { objectType: ObjectType.COMPANY, recordId: c.id } }), Code.NotFound);
  // B links A's company to its person / deal: not_found, nothing written.
  await expectCode(B.owner.store.createPersonDB({ request: { person: { firstName: "X", companies: [{ companyId: c.id }] } } }), Code.NotFound);
  assert.equal((await B.owner.store.createCompanyDB({ request: { company: { name: "B too", domain: "only-a.example" } } })).response!.company!.domain, "only-a.example");
  const { rows } = await h.pool.query("SELECT count(*)::int AS n FROM rec_people WHERE company_id = $1", [B.companyId]);
  assert.equal(rows[0].n, 0);
});

test("roles: members change what they own; owners and admins everything; a member cannot hand a record to someone else", { skip }, async () => {
  const mine = (await A.member.store.createCompanyDB({ request: { company: { name: "Member's" } } })).response!.company!;
  await expectCode(A.member2.store.updateCompanyDB({ request: { company: { id: mine.id, name: "Not yours" }, updateMask: mask("name") } }), Code.PermissionDenied, /members change only/);
  await expectCode(A.member2.store.deleteCompanyDB({ request: { id: mine.id } }), Code.PermissionDenied);
  assert.equal((await A.member2.store.getCompanyRecordDB({ request: { id: mine.id } })).response!.company!.name, "Member's", "members read everything");
  await expectCode(A.member.store.createCompanyDB({ request: { company: { name: "For them", ownerId: A.member2.userId } } }), Code.PermissionDenied, /members own what they create/);
  const handed = (await A.admin.store.updateCompanyDB({ request: { company: { id: mine.id, ownerId: A.member2.userId }, updateMask: mask("owner_id") } })).response!.company!;
  assert.equal(handed.ownerId, A.member2.userId);
  assert.equal((await A.member2.store.updateCompanyDB({ request: { company: { id: mine.id, name: "Now mine" }, updateMask: mask("name") } })).response!.company!.name, "Now mine");
  await expectCode(A.owner.store.createCompanyDB({ request: { company: { name: "To a stranger", ownerId: B.owner.userId } } }), Code.NotFound, /no active user/);
  // A demoted admin loses the rights at once: the role is read from the database, not the token.
  await h.pool.query("UPDATE users SET role = 'member' WHERE id = $1", [A.admin.userId]);
  try {
    await expectCode(A.admin.store.updateCompanyDB({ request: { company: { id: mine.id, name: "Still admin?" }, updateMask: mask("name") } }), Code.PermissionDenied);
  } finally {
    await h.pool.query("UPDATE users SET role = 'admin' WHERE id = $1", [A.admin.userId]);
  }
});

test("people: e-mails unique in the tenant without regard to case, phones in E.164, company links; lists replaced whole", { skip }, async () => {
  const acme = (await A.owner.store.createCompanyDB({ request: { company: { name: "Acme People" } } })).response!.company!;
  const ann = (await A.member.store.createPersonDB({
    request: { person: { firstName: "Ann", lastName: "Lee", emails: ["Ann.Lee@Example.com", "ann@home.example"], phones: ["+1 (415) 555-0100"], companies: [{ companyId: acme.id, role: "CTO" }] } },
  })).response!.person!;
  assert.deepEqual(ann.emails, ["Ann.Lee@Example.com", "ann@home.example"], "kept as written");
  assert.deepEqual(ann.phones, ["+14155550100"]);
  assert.deepEqual(ann.companies.map((l) => [l.companyId, l.role]), [[acme.id, "CTO"]]);

  const taken = await expectCode(A.member2.store.createPersonDB({ request: { person: { firstName: "Bob", emails: ["bob@example.com", "ANN.LEE@example.COM"] } } }), Code.AlreadyExists, new RegExp(ann.id));
  assert.deepEqual(fieldsOf(taken), ["person.emails[1]"]);
  const bad = await expectCode(A.member2.store.createPersonDB({ request: { person: { emails: ["not an address"], phones: ["12"] } } }), Code.InvalidArgument);
  assert.deepEqual(fieldsOf(bad).sort(), ["person.emails[0]", "person.firstName", "person.phones[0]"]);

  const moved = (await A.member.store.updatePersonDB({ request: { person: { id: ann.id, emails: ["ann@new.example"], companies: [] }, updateMask: mask("emails", "companies") } })).response!.person!;
  assert.deepEqual(moved.emails, ["ann@new.example"]);
  assert.deepEqual(moved.companies, []);
  // The old address is free again.
  const bob = (await A.member2.store.createPersonDB({ request: { person: { firstName: "Bob", emails: ["ann.lee@example.com"] } } })).response!.person!;
  assert.equal(bob.emails[0], "ann.lee@example.com");
  const byEmail = (await A.owner.store.listPeopleDB({ request: { filter: { node: { case: "condition", value: { field: "emails", operator: Operator.EQUALS, values: ["ANN@new.example"] } } }, orderBy: "", pageSize: 0, pageToken: "", showDeleted: false, exactTotal: false } })).response!;
  assert.deepEqual(byEmail.people.map((p) => p.id), [ann.id]);
  const entries = await timeline(A.member, ObjectType.PERSON, ann.id);
  assert.deepEqual(entries[0]!.changes.emails, [["Ann.Lee@Example.com", "ann@home.example"], ["ann@new.example"]]);
});

test("pipelines and deals: stages in order, deals placed and moved, status from the stage's kind, stage history, stage removal moves deals", { skip }, async () => {
  await expectCode(A.member.store.createPipelineDB({ request: { pipeline: { name: "Sales" } } }), Code.PermissionDenied, /owners and admins/);
  const p = (await A.admin.store.createPipelineDB({
    request: { pipeline: { name: "Sales", stages: [{ name: "Lead", probability: 10 }, { name: "Won", probability: 100, kind: StageKind.WON }, { name: "Lost", kind: StageKind.LOST }] } },
  })).response!.pipeline!;
  const [lead, won, lost] = p.stages;
  assert.deepEqual(p.stages.map((s) => s.name), ["Lead", "Won", "Lost"]);
  await expectCode(A.admin.store.createPipelineDB({ request: { pipeline: { name: "SALES" } } }), Code.AlreadyExists);

  const d1 = (await A.member.store.createDealDB({ request: { deal: { name: "Big one", pipelineId: p.id, amountMinor: 125000n, currencyCode: "eur" } } })).response!.deal!;
  assert.equal(d1.stageId, lead!.id, "pipeline only: its first stage");
  assert.equal(d1.currencyCode, "EUR");
  assert.equal(d1.status, DealStatus.OPEN);
  const d2 = (await A.member.store.createDealDB({ request: { deal: { name: "Second", stageId: lead!.id } } })).response!.deal!;
  assert.ok(d2.position > d1.position, "new deals go to the end");
  const top = (await A.member.store.moveDealDB({ request: { id: d2.id, top: true, etag: d2.etag } })).response!.deal!;
  assert.ok(top.position < d1.position);
  await expectCode(A.member.store.moveDealDB({ request: { id: d2.id, afterDealId: d1.id, etag: d2.etag } }), Code.Aborted, /changed since/);

  const w = (await A.member.store.moveDealDB({ request: { id: d1.id, stageId: won!.id } })).response!.deal!;
  assert.equal(w.status, DealStatus.WON);
  assert.ok(w.closeTime);
  const l = (await A.member.store.moveDealDB({ request: { id: d1.id, stageId: lost!.id, lostReason: "price" } })).response!.deal!;
  assert.equal(l.status, DealStatus.LOST);
  assert.equal(l.lostReason, "price");
  const { rows: history } = await h.pool.query<{ stage_id: string; left: boolean }>("SELECT stage_id, left_at IS NOT NULL AS left FROM rec_deal_stage_history WHERE deal_id = $1 ORDER BY id", [d1.id]);
  assert.deepEqual(history.map((r) => [r.stage_id, r.left]), [[lead!.id, true], [won!.id, true], [lost!.id, false]]);
  const entries = await timeline(A.member, ObjectType.DEAL, d1.id);
  assert.equal(entries[0]!.action, "STAGE_CHANGED");
  assert.deepEqual(entries[0]!.changes.status, ["won", "lost"]);

  // A stage with deals goes only by moving them.
  await expectCode(A.admin.store.deleteStageDB({ request: { id: lead!.id } }), Code.FailedPrecondition, /holds 1 deal/);
  const gone = (await A.admin.store.deleteStageDB({ request: { id: lead!.id, moveDealsToStageId: won!.id } })).response!;
  assert.equal(gone.movedDeals, 1);
  assert.deepEqual(gone.pipeline!.stages.map((s) => s.name), ["Won", "Lost"]);
  const d2now = (await A.member.store.getDealDB({ request: { id: d2.id } })).response!.deal!;
  assert.equal(d2now.stageId, won!.id);
  assert.equal(d2now.status, DealStatus.WON);

  // Reorder: every stage once.
  await expectCode(A.admin.store.reorderStagesDB({ request: { pipelineId: p.id, stageIds: [lost!.id] } }), Code.InvalidArgument, /every stage/);
  const re = (await A.admin.store.reorderStagesDB({ request: { pipelineId: p.id, stageIds: [lost!.id, won!.id] } })).response!.pipeline!;
  assert.deepEqual(re.stages.map((s) => s.name), ["Lost", "Won"]);
  // A stage's new kind changes its deals' status, each with a timeline entry.
  await A.admin.store.updateStageDB({ request: { stage: { id: won!.id, kind: StageKind.OPEN, name: "Negotiation" }, updateMask: mask("kind", "name") } });
  assert.equal((await A.member.store.getDealDB({ request: { id: d2.id } })).response!.deal!.status, DealStatus.OPEN);
  assert.deepEqual((await timeline(A.member, ObjectType.DEAL, d2.id))[0]!.changes.status, ["won", "open"]);
  await expectCode(A.admin.store.deletePipelineDB({ request: { id: p.id } }), Code.FailedPrecondition, /holds 2 deal/);
});

test("deals: references stay in the tenant and out of the trash; amount and currency go together", { skip }, async () => {
  const p = (await A.owner.store.createPipelineDB({ request: { pipeline: { name: "Refs", stages: [{ name: "Open" }] } } })).response!.pipeline!;
  const bCompany = (await B.owner.store.createCompanyDB({ request: { company: { name: "B's" } } })).response!.company!;
  const e = await expectCode(A.member.store.createDealDB({ request: { deal: { name: "x", pipelineId: p.id, companyId: bCompany.id } } }), Code.NotFound);
  assert.deepEqual(fieldsOf(e), ["deal.companyId"]);
  const bad = await expectCode(A.member.store.createDealDB({ request: { deal: { name: "", pipelineId: p.id, amountMinor: -1n, currencyCode: "XYZ", expectedCloseDate: "2026-02-30" } } }), Code.InvalidArgument);
  assert.deepEqual(fieldsOf(bad).sort(), ["deal.amountMinor", "deal.currencyCode", "deal.expectedCloseDate", "deal.name"]);
  const d = (await A.member.store.createDealDB({ request: { deal: { name: "ok", pipelineId: p.id, amountMinor: 5n, currencyCode: "USD" } } })).response!.deal!;
  await expectCode(A.member.store.updateDealDB({ request: { deal: { id: d.id, currencyCode: "" }, updateMask: mask("currency_code") } }), Code.InvalidArgument, /together/);
  await expectCode(A.member.store.updateDealDB({ request: { deal: { id: d.id, stageId: p.stages[0]!.id }, updateMask: mask("stage_id") } }), Code.InvalidArgument, /MoveDeal/);
  const { rows } = await h.pool.query<{ version: string }>("SELECT version FROM rec_deals WHERE id = $1", [d.id]);
  assert.equal(rows[0]!.version, "1", "nothing changed");
});

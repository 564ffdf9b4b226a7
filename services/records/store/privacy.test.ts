/**
 * PrivacyService in the store on the real PostgreSQL: the export holds everything about a person;
 * after the erasure nothing personal is left anywhere in the database (every table searched as
 * the superuser), the timeline entries remain with anonymized values, deals keep their amounts,
 * and both are audited; members and other tenants are refused.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { fromBinary, toJsonString } from "@bufbuild/protobuf";
import { Code, type Client } from "@connectrpc/connect";
import { DbPrivacyService } from "@crm/gen/crm/db/v1/db_privacy_pb";
import { ObjectType } from "@crm/gen/crm/records/v1/common_pb";
import { FieldType } from "@crm/gen/crm/records/v1/field_pb";
import { RecordChangeSchema } from "@crm/gen/crm/records/v1/stream_pb";
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

test("the definer functions refuse members even when called directly", { skip }, async () => {
  await h.asApp(A.member, async (c) => {
    await assert.rejects(c.query("SELECT crm_privacy_erase_timeline(gen_random_uuid(), '{}', '{}')"), /only owners and admins/);
  });
});

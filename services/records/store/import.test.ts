/**
 * Imports and exports on the real PostgreSQL, through the records service's upload reader
 * (import-file.ts) and the job runner's RPCs: detection of encodings and delimiters, quoted line
 * breaks, rows with the same e-mail merged, bad rows reported (one never stops the rest), dry runs
 * that write nothing, a job resumed by another replica after its lease ran out with no row applied
 * twice, undo (created → trash, updated → restored), and a CSV export written to the audit log.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import iconv from "iconv-lite";
import { Code, createClient, createRouterTransport, type Client, type Interceptor } from "@connectrpc/connect";
import { DbImportService } from "@crm/gen/crm/db/v1/db_records_import_pb";
import { ObjectType } from "@crm/gen/crm/records/v1/common_pb";
import { ExportRecordsRequestSchema } from "@crm/gen/crm/records/v1/export_pb";
import { fromJson, toJson } from "@bufbuild/protobuf";
import { ImportMode, ImportState, type Import } from "@crm/gen/crm/records/v1/import_pb";
import { authInterceptor, contextInterceptor, errorInterceptor, peerServiceKey, textInterceptor } from "@crm/kit";
import { installHint, need, postgresUp } from "@crm/testkit";
import { RECORD_EVENTS_EXCHANGE } from "@crm/contracts";
import { decodeRecordChange } from "@crm/contracts/events";
import { decodeImportFinished } from "@crm/contracts/tenant-events";
import { ActorType } from "@crm/gen/crm/records/v1/common_pb";
import { ChangeAction } from "@crm/gen/crm/records/v1/stream_pb";
import { FieldType } from "@crm/gen/crm/records/v1/field_pb";
import { PersonSchema } from "@crm/gen/crm/records/v1/person_pb";
import { StageKind } from "@crm/gen/crm/records/v1/pipeline_pb";
import { defaultImportLimits, uploadFile, errorFile } from "../src/import-service.js";
import { exportCsv } from "../src/export-service.js";
import { expectCode, log, storeHarness, testVerifier, type StoreHarness, type Tenant } from "../test/harness.js";
import { auditLog } from "@crm/admin/store";
import { analyzeStep, importStore } from "./import-store.js";

const skip = need("PostgreSQL", await postgresUp(), installHint.postgres);

let h: StoreHarness;
let A: Tenant;
let B: Tenant;
/** A client of the store as a user (token) or, with "", as the records service itself. */
let client: (token: string) => Client<typeof DbImportService>;
before(async () => {
  if (skip) return;
  h = await storeHarness();
  A = await h.tenant("A");
  B = await h.tenant("B");
  const store = importStore(h.db, { audit: auditLog(h.db) });
  client = (token) => {
    const auth: Interceptor = (next) => (req) => {
      if (token) req.header.set("authorization", `Bearer ${token}`);
      return next(req);
    };
    const asService: Interceptor = (next) => (req) => {
      if (!req.header.get("authorization")) req.contextValues.set(peerServiceKey, "records");
      return next(req);
    };
    return createClient(
      DbImportService,
      createRouterTransport((r) => void r.service(DbImportService, store), {
        router: { interceptors: [contextInterceptor(), errorInterceptor(log), asService, authInterceptor(testVerifier, new Set()), textInterceptor()] },
        transport: { interceptors: [auth] },
      }),
    );
  };
});
after(async () => {
  await h?.close();
});

async function* chunks(b: Buffer, size = 13): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < b.length; i += size) yield b.subarray(i, i + size);
}

async function upload(token: string, file: Buffer, o: { mode?: ImportMode; matchBy?: string; kind?: ObjectType } = {}): Promise<Import> {
  const db = client(token);
  const created = (await db.createImportDB({ request: { import: { objectType: o.kind ?? ObjectType.PERSON, fileName: "people.csv", mode: o.mode ?? ImportMode.UPSERT, matchBy: o.matchBy ?? "" } } })).response!.import!;
  assert.equal(created.state, ImportState.AWAITING_UPLOAD);
  return uploadFile(db, created.id, chunks(file), { ...defaultImportLimits, uploadBatch: 3 });
}

/** Runs waiting jobs as a replica would, `batch` rows at a time. */
async function runJobs(batch = 4, owner = "replica-1"): Promise<void> {
  const svc = client("");
  for (;;) {
    const c = await svc.claimImportDB({ owner, leaseSeconds: 30 });
    if (!c.importId) return;
    for (;;) {
      const { import: job } = await svc.runImportBatchDB({ importId: c.importId, leaseToken: c.leaseToken, batchSize: batch, leaseSeconds: 30 });
      if (job!.state !== ImportState.RUNNING) break;
    }
  }
}

const counts = (i: Import) => ({ created: Number(i.createdCount), updated: Number(i.updatedCount), merged: Number(i.mergedCount), unchanged: Number(i.unchangedCount), failed: Number(i.failedCount), done: Number(i.rowsDone) });

test("a people file: detected, mapped from its Russian header, dry run, run, errors, timeline, undo", { skip }, async () => {
  const owner = A.owner.token;
  // Russian Excel: ';', a BOM, a quoted field with a line break and a delimiter, a duplicate e-mail, bad rows.
  const csv = "\uFEFFИмя;Фамилия;E-mail;Телефон;Должность\r\n" +
    "Анна;Ли;anna@example.com;+1 415 555 0100;\"CTO; co-founder\"\r\n" +
    "Борис;Кан;boris@example.com;;\"Head of\nSales\"\r\n" +
    "Анна;;ANNA@example.com;;CEO\r\n" +
    "Bad;Mail;not-an-email;;\r\n" +
    ";;nobody@example.com;;\r\n" +
    "Вера;Ок;vera@example.com;12;\r\n" +
    "Глеб;Ок;gleb@example.com;;\r\n";
  const ready = await upload(owner, Buffer.from(csv));
  assert.equal(ready.state, ImportState.READY);
  assert.deepEqual([ready.encoding, ready.delimiter, Number(ready.totalRows)], ["utf-8", ";", 7]);
  assert.deepEqual(ready.columns, ["Имя", "Фамилия", "E-mail", "Телефон", "Должность"]);
  assert.deepEqual(ready.suggestedMapping.map((m) => m.field), ["first_name", "last_name", "emails", "phones", "job_title"]);
  assert.equal(ready.sampleRows[1]!.cells[4], "Head of\nSales");

  // Dry run: the full report, nothing written.
  const db = client(owner);
  await db.startImportDB({ request: { id: ready.id, dryRun: true } });
  await runJobs(3);
  const dry = (await db.getImportDB({ request: { id: ready.id } })).response!.import!;
  assert.equal(dry.state, ImportState.SUCCEEDED);
  assert.deepEqual(counts(dry), { created: 3, updated: 0, merged: 1, unchanged: 0, failed: 3, done: 7 });
  assert.equal((await h.pool.query("SELECT count(*)::int AS n FROM rec_people WHERE company_id = $1", [A.companyId])).rows[0].n, 0, "a dry run writes nothing");

  // For real (the same file, after its dry run).
  await db.startImportDB({ request: { id: ready.id } });
  await runJobs(3);
  const done = (await db.getImportDB({ request: { id: ready.id } })).response!.import!;
  assert.deepEqual(counts(done), { created: 3, updated: 0, merged: 1, unchanged: 0, failed: 3, done: 7 });
  assert.ok(done.undoDeadline);
  const { rows: people } = await h.pool.query("SELECT first_name, last_name, emails, phones, job_title FROM rec_people WHERE company_id = $1 ORDER BY first_name", [A.companyId]);
  assert.deepEqual(people.map((p) => p.first_name), ["Анна", "Борис", "Глеб"]);
  assert.equal(people[1].job_title, "Head of Sales", "a one-line field's line break becomes a space");
  const anna = people.find((p) => p.first_name === "Анна");
  assert.deepEqual([anna.last_name, anna.emails, anna.phones, anna.job_title], ["Ли", ["anna@example.com"], ["+14155550100"], "CEO"], "the later row's non-empty values win");

  // Per-row errors, and the error file: the rows as they were plus the reason.
  const errors = (await db.listImportErrorsDB({ request: { id: ready.id } })).response!.errors;
  assert.deepEqual(errors.map((e) => Number(e.rowNumber)), [5, 6, 7]);
  assert.match(errors[0]!.reason, /emails: must be an e-mail address/);
  assert.match(errors[1]!.reason, /first name, a last name/);
  assert.match(errors[2]!.reason, /phones: must be a phone number/);
  let file = "";
  for await (const c of errorFile(db, ready.id)) file += Buffer.from(c).toString("utf8");
  assert.ok(file.startsWith("\uFEFFИмя;Фамилия;E-mail;Телефон;Должность;reason\r\nBad;Mail;not-an-email;;;\"emails: must be an e-mail address (got \"\"not-an-email\"\")\"\r\n"), file);

  // The timeline names the import.
  const { rows: tl } = await h.pool.query("SELECT DISTINCT actor_type, actor_id FROM rec_timeline WHERE company_id = $1", [A.companyId]);
  assert.deepEqual(tl, [{ actor_type: "import", actor_id: ready.id }]);

  // A second file updates Anna (upsert by e-mail) and adds Vera; then undo it.
  const second = await upload(owner, Buffer.from("first name,email,job title\nАнна,anna@example.com,Chair\nVera,vera@example.com,Ops\nГлеб,gleb@example.com,\n"));
  assert.equal(second.delimiter, ",");
  await db.startImportDB({ request: { id: second.id } });
  await runJobs();
  const s2 = (await db.getImportDB({ request: { id: second.id } })).response!.import!;
  assert.deepEqual(counts(s2), { created: 1, updated: 1, merged: 0, unchanged: 1, failed: 0, done: 3 });
  const undone = (await db.undoImportDB({ request: { id: second.id } })).response!;
  assert.deepEqual([Number(undone.trashedCount), Number(undone.restoredCount), Number(undone.skippedCount), undone.import!.state], [1, 1, 0, ImportState.UNDONE]);
  const after = (await h.pool.query("SELECT first_name, job_title, deleted_at IS NOT NULL AS trashed FROM rec_people WHERE company_id = $1 ORDER BY first_name", [A.companyId])).rows;
  assert.deepEqual(after.find((p) => p.first_name === "Анна"), { first_name: "Анна", job_title: "CEO", trashed: false }, "updated → restored");
  assert.equal(after.find((p) => p.first_name === "Vera")?.trashed, true, "created → trashed");
  await expectCode(db.undoImportDB({ request: { id: second.id } }), Code.FailedPrecondition, /undone already/);

  // Another tenant sees none of it.
  await expectCode(client(B.owner.token).getImportDB({ request: { id: ready.id } }), Code.NotFound);
  await expectCode(client(B.owner.token).appendImportRowsDB({ importId: ready.id, firstRow: 7n }), Code.NotFound);
});

test("Windows-1251 with tabs; companies matched by domain; create only; update only", { skip }, async () => {
  const file = iconv.encode("Название\tСайт\tОтрасль\nРомашка\thttps://www.Romashka.example/about\tЦветы\nЛютик\tljutik.example\t\nДубль\tromashka.example\tЛес\n", "win1251");
  const ready = await upload(A.admin.token, file, { kind: ObjectType.COMPANY, mode: ImportMode.CREATE_ONLY });
  assert.deepEqual([ready.encoding, ready.delimiter], ["windows-1251", "\t"]);
  assert.deepEqual(ready.suggestedMapping.map((m) => m.field), ["name", "domain", "industry"]);
  const db = client(A.admin.token);
  await db.startImportDB({ request: { id: ready.id } });
  await runJobs();
  const done = (await db.getImportDB({ request: { id: ready.id } })).response!.import!;
  assert.deepEqual(counts(done), { created: 2, updated: 0, merged: 1, unchanged: 0, failed: 0, done: 3 });
  const { rows } = await h.pool.query("SELECT name, domain, industry FROM rec_companies WHERE company_id = $1 ORDER BY domain", [A.companyId]);
  assert.deepEqual(rows, [{ name: "Лютик", domain: "ljutik.example", industry: "" }, { name: "Дубль", domain: "romashka.example", industry: "Лес" }]);

  // Create only: a row matching an existing company fails; update only: a row matching none fails.
  const again = await upload(A.admin.token, Buffer.from("name,domain\nR,romashka.example\nNew,new.example\n"), { kind: ObjectType.COMPANY, mode: ImportMode.CREATE_ONLY });
  await db.startImportDB({ request: { id: again.id } });
  const upd = await upload(A.admin.token, Buffer.from("name,domain\nRomashka Ltd,romashka.example\nNobody,none.example\n"), { kind: ObjectType.COMPANY, mode: ImportMode.UPDATE_ONLY });
  await db.startImportDB({ request: { id: upd.id } });
  await runJobs();
  const a = (await db.getImportDB({ request: { id: again.id } })).response!.import!;
  const u = (await db.getImportDB({ request: { id: upd.id } })).response!.import!;
  assert.deepEqual([counts(a).created, counts(a).failed, counts(u).updated, counts(u).failed], [1, 1, 1, 1]);
  const errs = (await db.listImportErrorsDB({ request: { id: upd.id } })).response!.errors;
  assert.match(errs[0]!.reason, /no company matches domain "none.example"/);

  // A bad mapping names its fields; nothing starts.
  const bad = await upload(A.admin.token, Buffer.from("a,b\n1,2\n"), { kind: ObjectType.COMPANY });
  await expectCode(db.startImportDB({ request: { id: bad.id, mapping: [{ column: 0, field: "nope" }, { column: 7, field: "name" }] } }), Code.InvalidArgument, /not a field an import/);
});

test("a replica that dies mid-import: another resumes after the lease, no row applied twice", { skip }, async () => {
  const T = await h.tenant("Resume");
  const lines = ["email,first name"];
  for (let i = 0; i < 50; i++) lines.push(`p${i}@resume.example,P${i}`);
  const ready = await upload(T.owner.token, Buffer.from(lines.join("\n")));
  const db = client(T.owner.token);
  await db.startImportDB({ request: { id: ready.id } });
  const svc = client("");
  const first = await svc.claimImportDB({ owner: "dies", leaseSeconds: 30 });
  assert.equal(first.importId, ready.id);
  await svc.runImportBatchDB({ importId: first.importId, leaseToken: first.leaseToken, batchSize: 20, leaseSeconds: 30 });
  // While the lease holds, nobody else takes the job.
  assert.equal((await svc.claimImportDB({ owner: "other", leaseSeconds: 30 })).importId, "");
  // The replica dies: its lease runs out.
  await h.pool.query("UPDATE rec_imports SET lease_until = now() - interval '1 second' WHERE id = $1", [ready.id]);
  const second = await svc.claimImportDB({ owner: "other", leaseSeconds: 30 });
  assert.equal(second.importId, ready.id);
  // The dead replica's late batch is refused.
  await expectCode(svc.runImportBatchDB({ importId: first.importId, leaseToken: first.leaseToken, batchSize: 20, leaseSeconds: 30 }), Code.Aborted);
  for (;;) {
    const { import: job } = await svc.runImportBatchDB({ importId: second.importId, leaseToken: second.leaseToken, batchSize: 20, leaseSeconds: 30 });
    if (job!.state !== ImportState.RUNNING) break;
  }
  const done = (await db.getImportDB({ request: { id: ready.id } })).response!.import!;
  assert.deepEqual(counts(done), { created: 50, updated: 0, merged: 0, unchanged: 0, failed: 0, done: 50 });
  const { rows } = await h.pool.query("SELECT count(*)::int AS n, count(DISTINCT emails[1])::int AS d FROM rec_people WHERE company_id = $1", [T.companyId]);
  assert.deepEqual(rows[0], { n: 50, d: 50 });
});

test("a big import refreshes the statistics of the tables it writes as its rows pass 1,000, 2,000, …", { skip }, async () => {
  assert.deepEqual([999n, 1000n, 1999n, 2000n, 4000n, 1_000_000n].map(analyzeStep), [-1, 0, 0, 1, 2, 9]);
  const T = await h.tenant("Stats");
  const lines = ["email,first name"];
  for (let i = 0; i < 2100; i++) lines.push(`s${i}@stats.example,S${i}`);
  const ready = await upload(T.owner.token, Buffer.from(lines.join("\n")));
  await client(T.owner.token).startImportDB({ request: { id: ready.id } });
  const analyzed = async () =>
    (await h.pool.query<{ relname: string; n: number }>("SELECT relname, analyze_count::int AS n FROM pg_stat_user_tables WHERE relname IN ('rec_people', 'rec_person_emails', 'rec_person_companies') ORDER BY relname")).rows;
  const before = await analyzed();
  await runJobs(700); // rows 700, 1400 (past 1,000), 2100 (past 2,000): two refreshes
  const after = await analyzed();
  assert.deepEqual(after.map((r) => r.relname), ["rec_people", "rec_person_companies", "rec_person_emails"]);
  after.forEach((r, i) => assert.equal(r.n - before[i]!.n, 2, `${r.relname} analyzed at 1,000 and 2,000 rows`));
  const done = (await client(T.owner.token).getImportDB({ request: { id: ready.id } })).response!.import!;
  assert.equal(Number(done.createdCount), 2100);
});

test("imported records take the tenant's versions and change events, as API writes do; so does undo", { skip }, async () => {
  const T = await h.tenant("Events");
  const existing = (await T.owner.store.createPersonDB({ request: { person: { firstName: "Old", emails: ["old@events.example"], jobTitle: "Intern" } } })).response!.person!;
  const ready = await upload(T.owner.token, Buffer.from("email,first name,job title\nold@events.example,Old,Chief\nnew1@events.example,New1,\nnew2@events.example,New2,\nbad,Bad,\nNEW1@events.example,,Lead\n"));
  const db = client(T.owner.token);
  // A dry run takes no version.
  await db.startImportDB({ request: { id: ready.id, dryRun: true } });
  await runJobs(2);
  const versionOf = async () => Number((await h.pool.query("SELECT coalesce((SELECT version FROM rec_versions WHERE company_id = $1), 0) AS v", [T.companyId])).rows[0].v);
  assert.equal(await versionOf(), 1, "the person created through the API only");
  await db.startImportDB({ request: { id: ready.id } });
  await runJobs(2);
  const { rows } = await h.pool.query<{ version: string; record_id: string; event: Buffer }>("SELECT version, record_id, event FROM rec_changes WHERE company_id = $1 ORDER BY version", [T.companyId]);
  const cs = rows.map((r) => decodeRecordChange(r.event));
  assert.deepEqual(cs.map((c) => Number(c.version)), [1, 2, 3, 4, 5], "gap-free: one version per record change, none per merged or failed row");
  const imported = cs.slice(1);
  for (const c of imported) {
    assert.deepEqual([c.actor?.type, c.actor?.id, c.actor?.name], [ActorType.IMPORT, ready.id, `import ${ready.id}`], "the import is the actor");
    assert.equal(c.record?.record.case, "person", "the record after the change, for live lists' filters");
  }
  // Batches of 2 rows (a batch writes its creates, then its updates): row 1 updates Old, rows 2-3
  // create, row 5 (batch 3) merges into New1.
  assert.deepEqual(imported.map((c) => [c.recordId === existing.id ? "old" : "new", ChangeAction[c.action]]), [["new", "CREATED"], ["old", "UPDATED"], ["new", "CREATED"], ["new", "UPDATED"]]);
  assert.equal(imported[3]!.recordId, imported[0]!.recordId, "the merged row updates the record its import created");
  // A created record's event carries it exactly as a read of it answers.
  const new2 = imported[2]!;
  assert.ok(new2.record?.record.case === "person");
  const read = (await T.owner.store.getPersonDB({ request: { id: new2.recordId } })).response!.person!;
  assert.deepEqual(toJson(PersonSchema, new2.record.record.value), toJson(PersonSchema, read));
  const upd = imported[1]!;
  assert.ok(upd.record?.record.case === "person" && upd.previous?.record.case === "person");
  assert.deepEqual([upd.previous.record.value.jobTitle, upd.record.record.value.jobTitle], ["Intern", "Chief"]);
  const { rows: out } = await h.pool.query("SELECT count(*)::int AS n FROM outbox WHERE exchange = $1 AND company_id = $2 AND routing_key LIKE 'records.%'", [RECORD_EVENTS_EXCHANGE, T.companyId]);
  assert.equal(out[0].n, 5, "each in the outbox for the webhooks and the other replicas");
  // The dry run and the run each ended with an ImportFinished, in the transaction of its last batch.
  const { rows: ends } = await h.pool.query<{ payload: Buffer }>("SELECT payload FROM outbox WHERE exchange = $1 AND company_id = $2 AND routing_key = $3 ORDER BY id", [RECORD_EVENTS_EXCHANGE, T.companyId, `imports.${T.companyId}`]);
  assert.deepEqual(ends.map((r) => { const e = decodeImportFinished(r.payload); return [e.import?.id, ImportState[e.import!.state], e.import?.dryRun]; }), [[ready.id, "SUCCEEDED", true], [ready.id, "SUCCEEDED", false]]);
  // The timeline and the change log agree: one entry per change, naming the import.
  const tl = (await h.pool.query("SELECT count(*)::int AS n FROM rec_timeline WHERE company_id = $1 AND actor_type = 'import' AND actor_id = $2", [T.companyId, ready.id])).rows[0].n;
  assert.equal(tl, 4);

  await db.undoImportDB({ request: { id: ready.id } });
  const undone = (await h.pool.query<{ event: Buffer }>("SELECT event FROM rec_changes WHERE company_id = $1 AND version > 5 ORDER BY version", [T.companyId])).rows.map((r) => decodeRecordChange(r.event));
  assert.deepEqual(undone.map((c) => ChangeAction[c.action]).sort(), ["DELETED", "DELETED", "UPDATED"], "two created → trash, Old restored");
  assert.ok(undone.every((c) => c.actor?.type === ActorType.IMPORT && c.actor.id === ready.id));
});

test("deals: pipeline and stage by name, amounts in units, company by domain, matched by an external id; undo", { skip }, async () => {
  const T = await h.tenant("Deals");
  const admin = T.admin.store;
  const pipeline = (await admin.createPipelineDB({ request: { pipeline: { name: "Sales", stages: [{ name: "Lead" }, { name: "Won", kind: StageKind.WON }] } } })).response!.pipeline!;
  const [lead, won] = pipeline.stages;
  const globex = (await admin.createCompanyDB({ request: { company: { name: "Globex", domain: "globex.example" } } })).response!.company!;
  await admin.createFieldDB({ request: { field: { objectType: ObjectType.DEAL, key: "ext_id", label: "External id", type: FieldType.TEXT } } });
  // A deal already on the board: imported deals go after it.
  const first = (await admin.createDealDB({ request: { deal: { name: "Earlier", stageId: lead!.id } } })).response!.deal!;

  const csv = "Deal name;Pipeline;Stage;Amount;Currency;Close date;Company domain;ext_id\n" +
    "Rollout;Sales;Lead;1 250,50;eur;31.12.2026;https://www.globex.example/;D-1\n" +
    "Renewal;;won;100;JPY;;;D-2\n" +
    "Bad stage;Sales;Nope;;;;;D-3\n" +
    "Bad amount;Sales;Lead;10.555;EUR;;;D-4\n" +
    "Rollout v2;;;;;;;D-1\n" +
    "Ghost;Sales;Lead;;;;nobody.example;D-6\n" +
    "No currency;;;5;;;;D-7\n" +
    "Plain;;;;;2027-01-15;;\n";
  const ready = await upload(T.admin.token, Buffer.from(csv), { kind: ObjectType.DEAL, matchBy: "custom.ext_id" });
  assert.deepEqual(ready.suggestedMapping.map((m) => m.field), ["name", "pipeline", "stage", "amount", "currency_code", "expected_close_date", "company_domain", "custom.ext_id"]);
  const db = client(T.admin.token);
  await db.startImportDB({ request: { id: ready.id } });
  await runJobs(3);
  const done = (await db.getImportDB({ request: { id: ready.id } })).response!.import!;
  assert.deepEqual(counts(done), { created: 3, updated: 0, merged: 1, unchanged: 0, failed: 4, done: 8 });
  const errors = (await db.listImportErrorsDB({ request: { id: ready.id } })).response!.errors;
  assert.deepEqual(errors.map((e) => [Number(e.rowNumber), e.reason.split(":")[0]]), [[4, "stage"], [5, "amount"], [7, "company_domain"], [8, "currency_code"]]);
  assert.match(errors[1]!.reason, /EUR has 2 decimal places/);

  const { rows } = await h.pool.query(
    `SELECT name, stage_id, status, amount_minor::text AS amount, currency_code, to_char(expected_close_date, 'YYYY-MM-DD') AS close, rec_company_id, position, closed_at IS NOT NULL AS closed, custom
     FROM rec_deals WHERE company_id = $1 ORDER BY position COLLATE "C"`, [T.companyId]);
  const byName = new Map(rows.map((r) => [r.name, r]));
  assert.deepEqual(rows.filter((r) => r.stage_id === lead!.id).map((r) => r.name), ["Earlier", "Rollout v2", "Plain"], "after the board's deals, in file order");
  const rollout = byName.get("Rollout v2");
  assert.deepEqual([rollout.amount, rollout.currency_code, rollout.close, rollout.rec_company_id, rollout.custom], ["125050", "EUR", "2026-12-31", globex.id, { ext_id: "D-1" }], "the later row's name merged in");
  const renewal = byName.get("Renewal");
  assert.deepEqual([renewal.stage_id, renewal.status, renewal.closed, renewal.amount], [won!.id, "won", true, "100"], "a won stage closes the deal; yen have no minor units");
  assert.equal(byName.get("Plain").close, "2027-01-15");
  assert.equal(first.name, "Earlier");
  const history = (await h.pool.query("SELECT count(*)::int AS n FROM rec_deal_stage_history WHERE company_id = $1", [T.companyId])).rows[0].n;
  assert.equal(history, 4, "each new deal entered its stage");
  const events = (await h.pool.query<{ event: Buffer }>("SELECT event FROM rec_changes WHERE company_id = $1 AND object_type = 'deal' ORDER BY version", [T.companyId])).rows.map((r) => decodeRecordChange(r.event));
  assert.deepEqual(events.slice(1).map((c) => [ChangeAction[c.action], c.actor?.type === ActorType.IMPORT, c.record?.record.case]), [
    ["CREATED", true, "deal"], ["CREATED", true, "deal"], ["UPDATED", true, "deal"], ["CREATED", true, "deal"],
  ], "batches of 3 rows: two created, then the merge of row 5, then row 8 created");

  // Update only, by the external id: a new amount is applied; a stage change is refused (no moves by import).
  const upd = await upload(T.admin.token, Buffer.from("ext_id,amount,stage\nD-1,99,\nD-2,200,Lead\nD-9,1,\n"), { kind: ObjectType.DEAL, matchBy: "custom.ext_id", mode: ImportMode.UPDATE_ONLY });
  await db.startImportDB({ request: { id: upd.id, mapping: [{ column: 0, field: "custom.ext_id" }, { column: 1, field: "amount" }, { column: 2, field: "stage" }] } });
  await runJobs();
  const u = (await db.getImportDB({ request: { id: upd.id } })).response!.import!;
  assert.deepEqual([counts(u).updated, counts(u).failed], [1, 2]);
  const uerr = (await db.listImportErrorsDB({ request: { id: upd.id } })).response!.errors.map((e) => e.reason);
  assert.match(uerr[0]!, /does not move deals/);
  assert.match(uerr[1]!, /no deal matches custom.ext_id "D-9"/);
  const amount = async () => (await h.pool.query("SELECT amount_minor::text AS a FROM rec_deals WHERE custom->>'ext_id' = 'D-1' AND company_id = $1", [T.companyId])).rows[0].a;
  assert.equal(await amount(), "9900");
  // Undo the update: the amount from before; undo the first import: its deals to the trash.
  await db.undoImportDB({ request: { id: upd.id } });
  assert.equal(await amount(), "125050");
  const undone = (await db.undoImportDB({ request: { id: ready.id } })).response!;
  assert.equal(Number(undone.trashedCount), 3);

  // An update-only import of deals needs an external id.
  await expectCode(db.createImportDB({ request: { import: { objectType: ObjectType.DEAL, mode: ImportMode.UPDATE_ONLY } } }), Code.InvalidArgument, /external id/);
});

test("export: a filtered list as CSV with custom fields, written to the audit log", { skip }, async () => {
  const T = await h.tenant("Export");
  await h.pool.query("INSERT INTO rec_fields (company_id, object_type, key, label, type) VALUES ($1, 'person', 'tier', 'Tier', 'text')", [T.companyId]).catch(() => undefined);
  const ready = await upload(T.owner.token, Buffer.from('email,first name,last name\na@x.example,"Ann, ""A""",Lee\nb@x.example,Bob,\n'));
  const db = client(T.owner.token);
  await db.startImportDB({ request: { id: ready.id } });
  await runJobs();
  let csv = "";
  let rows = 0n;
  for await (const p of exportCsv(db, { objectType: ObjectType.PERSON, columns: ["first_name", "last_name", "emails"], orderBy: "first_name" } as never, 1)) {
    csv += Buffer.from(p.data).toString("utf8");
    rows = p.rows;
  }
  assert.equal(csv, '\uFEFFfirst_name,last_name,emails\r\n"Ann, ""A""",Lee,a@x.example\r\nBob,,b@x.example\r\n');
  assert.equal(rows, 2n);
  const { rows: started } = await h.pool.query("SELECT actor_id, target_id, details FROM audit_events WHERE company_id = $1 AND action = 'records.import_started'", [T.companyId]);
  assert.deepEqual(started.map((a) => [a.actor_id, a.target_id, a.details.dry_run]), [[T.owner.userId, ready.id, "false"]], "the import's start is in the audit log");
  const { rows: audit } = await h.pool.query("SELECT action, details FROM audit_events WHERE company_id = $1 AND action <> 'records.import_started'", [T.companyId]);
  assert.equal(audit.length, 1, "one audit event an export, however many pages");
  assert.equal(audit[0].action, "records.exported");
  await expectCode((async () => {
    for await (const _ of exportCsv(db, { objectType: ObjectType.PERSON, columns: ["nope"] } as never)) void _;
  })(), Code.InvalidArgument, /not a field of person/);
});

test("export: text that a spreadsheet would run as a formula gets an apostrophe, numbers do not", { skip }, async () => {
  const T = await h.tenant("Formula");
  await h.pool.query("INSERT INTO rec_fields (company_id, object_type, key, label, type) VALUES ($1, 'company', 'score', 'Score', 'number'), ($1, 'company', 'note', 'Note', 'text')", [T.companyId]);
  const file = 'name,domain,industry,score,note\n"=HYPERLINK(""http://evil.example"",""x"")",a.example,@SUM(A1),-5,+1\n-2+3,b.example,Tab,7,plain\n';
  const ready = await upload(T.owner.token, Buffer.from(file), { kind: ObjectType.COMPANY });
  const db = client(T.owner.token);
  await db.startImportDB({ request: { id: ready.id } });
  await runJobs();
  const done = (await db.getImportDB({ request: { id: ready.id } })).response!.import!;
  assert.equal(done.failedCount, 0n);
  // An import trims cells; a tab or CR first can still come from the API.
  await h.pool.query("UPDATE rec_companies SET industry = E'\\tTab' WHERE company_id = $1 AND domain = 'b.example'", [T.companyId]);
  let csv = "";
  for await (const p of exportCsv(db, { objectType: ObjectType.COMPANY, columns: ["name", "industry", "custom.score", "custom.note"], orderBy: "domain" } as never)) csv += Buffer.from(p.data).toString("utf8");
  assert.equal(csv, "\uFEFFname,industry,custom.score,custom.note\r\n" + `"'=HYPERLINK(""http://evil.example"",""x"")",'@SUM(A1),-5,'+1\r\n` + "'-2+3,'\tTab,7,plain\r\n");
  // A filter's values reach the page's COPY as literals: quotes in them stay data.
  await h.pool.query("UPDATE rec_companies SET industry = 'O''Brien; x' WHERE company_id = $1 AND domain = 'a.example'", [T.companyId]);
  const filtered = fromJson(ExportRecordsRequestSchema, { objectType: "OBJECT_TYPE_COMPANY", columns: ["domain", "industry"], filter: { condition: { field: "industry", operator: "OPERATOR_EQUALS", values: ["O'Brien; x"] } } });
  csv = "";
  for await (const p of exportCsv(db, filtered, 1)) csv += Buffer.from(p.data).toString("utf8");
  assert.equal(csv, "\uFEFFdomain,industry\r\na.example,O'Brien; x\r\n");
});

test("export: a page's CSV: keys column cut, LF record ends become CRLF, quoted line breaks stay", async () => {
  const { pageCsv } = await import("./export-store.js");
  const keys = Buffer.from('["2026-12-08 02:00:00+00","a,b \\"c\\""]').toString("hex");
  // Two records of a page of 2, and the one more the list reads to know a page follows.
  const page = pageCsv(Buffer.from(`a,"x\ny ""q"", z",\nb,,${keys}\n"c\n",\n`), 2);
  assert.equal(page.csv.toString(), 'a,"x\ny ""q"", z"\r\nb,\r\n');
  assert.equal(page.count, 3);
  assert.deepEqual(page.keys, ["2026-12-08 02:00:00+00", 'a,b "c"']);
  const short = pageCsv(Buffer.from('only,\n'), 5);
  assert.deepEqual([short.csv.toString(), short.count, short.keys], ["only\r\n", 1, undefined]);
  assert.equal(pageCsv(Buffer.from(""), 5).csv.toString(), "");
  assert.throws(() => pageCsv(Buffer.from('a,"open\n'), 5), /quoted cell/);
  assert.throws(() => pageCsv(Buffer.from("a,"), 5), /line break/);
});

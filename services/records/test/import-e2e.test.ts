/**
 * Imports and exports end to end through the all-in-one over real HTTP, on the machine's
 * PostgreSQL, as curl and the web console use them: create the job (Connect JSON), upload the file
 * as a plain POST body, start a dry run and the real run, watch the progress stream (Connect and
 * gRPC), download the error file, export the list as CSV (plain GET and the ExportRecords stream),
 * undo; the same upload as a gRPC client stream; another company sees none of it.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, test } from "node:test";
import { Code } from "@connectrpc/connect";
import { AuthService } from "@crm/gen/crm/auth/v1/auth_pb";
import { ActorType, ObjectType } from "@crm/gen/crm/records/v1/common_pb";
import { PipelineService } from "@crm/gen/crm/records/v1/pipeline_pb";
import { RecordStreamService } from "@crm/gen/crm/records/v1/stream_pb";
import { ExportService } from "@crm/gen/crm/records/v1/export_pb";
import { ImportService, ImportState } from "@crm/gen/crm/records/v1/import_pb";
import { PersonService } from "@crm/gen/crm/records/v1/person_pb";
import { SearchService } from "@crm/gen/crm/records/v1/search_pb";
import { freshDatabase, installHint, need, postgresUp, type TestApp, type TestDatabase } from "@crm/testkit";
import { startTestApp } from "@crm/all/test-app";
import { expectCode } from "./harness.js";

const skip = need("PostgreSQL", await postgresUp(), installHint.postgres);

let db: TestDatabase;
let app: TestApp;
before(async () => {
  if (skip) return;
  db = await freshDatabase();
  app = await startTestApp({ DATABASE_URL: db.url, RECORDS_IMPORT_POLL_MS: "100", RECORDS_IMPORT_BATCH: "100" });
});
after(async () => {
  await app?.close();
  await db?.drop();
});

async function register() {
  const t = randomBytes(4).toString("hex");
  return app.client(AuthService).registerCompany({ companyName: `Import ${t}`, email: `owner-${t}@example.com`, password: "correct horse battery staple", ownerName: "Owner" });
}

async function waitEnd(imports: ReturnType<typeof app.client<typeof ImportService>>, id: string) {
  let last;
  for await (const m of imports.watchImport({ id })) last = m.import!;
  return last!;
}

test("a file through plain HTTP: upload, dry run, run, progress, error file, export, undo", { skip }, async () => {
  const me = await register();
  const auth = { authorization: `Bearer ${me.accessToken}` };
  const imports = app.client(ImportService, { token: me.accessToken });
  const job = (await imports.createImport({ import: { objectType: ObjectType.PERSON, fileName: "people.csv" } })).import!;

  const lines = ["Имя;Фамилия;Email;Телефон"];
  for (let i = 0; i < 500; i++) lines.push(`Имя${i};Фамилия${i};user${i % 450}@example.com;${i % 97 === 0 ? "bad" : "+1415555" + String(1000 + i)}`);
  const up = await fetch(`${app.baseUrl}/imports/${job.id}/file`, { method: "POST", headers: auth, body: "\uFEFF" + lines.join("\r\n") });
  assert.equal(up.status, 200, await up.clone().text());
  const ready = ((await up.json()) as { import: { state: string; totalRows: string; delimiter: string } }).import;
  assert.deepEqual([ready.state, ready.totalRows, ready.delimiter], ["IMPORT_STATE_READY", "500", ";"]);
  // Once only.
  assert.equal((await fetch(`${app.baseUrl}/imports/${job.id}/file`, { method: "POST", headers: auth, body: "a\n1\n" })).status, 412);
  // A token is required; another company's job is not found.
  assert.equal((await fetch(`${app.baseUrl}/imports/${job.id}/file`, { method: "POST", body: "a\n" })).status, 401);
  const other = await register();
  assert.equal((await fetch(`${app.baseUrl}/imports/${job.id}/errors.csv`, { headers: { authorization: `Bearer ${other.accessToken}` } })).status, 404);

  await imports.startImport({ id: job.id, dryRun: true });
  const dry = await waitEnd(imports, job.id);
  assert.deepEqual([dry.state, dry.dryRun, Number(dry.createdCount), Number(dry.mergedCount), Number(dry.failedCount)], [ImportState.SUCCEEDED, true, 446, 48, 6]);
  const people = app.client(PersonService, { token: me.accessToken });
  assert.equal((await people.listPeople({})).people.length, 0);

  await imports.startImport({ id: job.id });
  const grpc = app.client(ImportService, { token: me.accessToken, protocol: "grpc" });
  const done = await waitEnd(grpc, job.id);
  assert.deepEqual([done.state, Number(done.rowsDone), Number(done.createdCount), Number(done.mergedCount), Number(done.failedCount)], [ImportState.SUCCEEDED, 500, 446, 48, 6]);
  assert.ok(done.rowsPerSecond > 0);

  const errors = await fetch(`${app.baseUrl}/imports/${job.id}/errors.csv`, { headers: auth });
  assert.equal(errors.headers.get("content-type"), "text/csv; charset=utf-8");
  const errorText = Buffer.from(await errors.arrayBuffer()).toString("utf8"); // keeps the BOM (fetch's text() drops it)
  assert.equal(errorText.split("\r\n").filter(Boolean).length, 7, errorText);
  assert.match(errorText, /^\uFEFFИмя;Фамилия;Email;Телефон;reason\r\nИмя0;Фамилия0;user0@example.com;bad;"phones: must be/);

  // Export: plain GET, then the stream.
  const csv = Buffer.from(await (await fetch(`${app.baseUrl}/exports/people.csv?orderBy=last_name&columns=first_name,last_name,emails`, { headers: auth })).arrayBuffer()).toString("utf8");
  const rows = csv.split("\r\n").filter(Boolean);
  assert.equal(rows[0], "\uFEFFfirst_name,last_name,emails");
  assert.equal(rows.length, 1 + 446);
  let streamed = 0n;
  for await (const c of app.client(ExportService, { token: me.accessToken }).exportRecords({ objectType: ObjectType.PERSON })) streamed = c.rows;
  assert.equal(streamed, 446n);
  const posted = await fetch(`${app.baseUrl}/exports`, { method: "POST", headers: { ...auth, "content-type": "application/json" }, body: JSON.stringify({ objectType: "OBJECT_TYPE_PERSON", columns: ["nope"] }) });
  assert.equal(posted.status, 400);

  // Undo: what it created goes to the trash.
  const undone = await imports.undoImport({ id: job.id });
  assert.equal(Number(undone.trashedCount), 446);
  assert.equal((await people.listPeople({})).people.length, 0);
});

test("the upload as a gRPC client stream; bad requests name the field", { skip }, async () => {
  const me = await register();
  const grpc = app.client(ImportService, { token: me.accessToken, protocol: "grpc" });
  const job = (await grpc.createImport({ import: { objectType: ObjectType.COMPANY } })).import!;
  const file = Buffer.from("name,website\nAcme,acme.example\nGlobex,https://www.globex.example/\n");
  async function* chunks() {
    yield { importId: job.id, data: file.subarray(0, 10) };
    yield { data: file.subarray(10) };
  }
  const ready = (await grpc.uploadImport(chunks())).import!;
  assert.deepEqual([ready.state, ready.suggestedMapping.map((m) => m.field)], [ImportState.READY, ["name", "domain"]]);
  await grpc.startImport({ id: job.id });
  const done = await waitEnd(grpc, job.id);
  assert.equal(Number(done.createdCount), 2);
  await expectCode(grpc.createImport({ import: { objectType: ObjectType.TASK } }), Code.InvalidArgument, /OBJECT_TYPE_PERSON, OBJECT_TYPE_COMPANY or OBJECT_TYPE_DEAL/);
  await expectCode(grpc.startImport({ id: "nope" }), Code.InvalidArgument);
});

test("nothing installed: deals imported on PGlite, each a live change named after the import", async () => {
  const embedded = await startTestApp({ RECORDS_IMPORT_POLL_MS: "100" });
  try {
    const t = randomBytes(4).toString("hex");
    const me = await embedded.client(AuthService).registerCompany({ companyName: `Lite ${t}`, email: `owner-${t}@example.com`, password: "correct horse battery staple", ownerName: "Owner" });
    await embedded.client(PipelineService, { token: me.accessToken }).createPipeline({ pipeline: { name: "Sales", stages: [{ name: "Lead" }, { name: "Demo" }] } });
    const imports = embedded.client(ImportService, { token: me.accessToken });
    const job = (await imports.createImport({ import: { objectType: ObjectType.DEAL, fileName: "deals.csv" } })).import!;
    const up = await fetch(`${embedded.baseUrl}/imports/${job.id}/file`, {
      method: "POST",
      headers: { authorization: `Bearer ${me.accessToken}` },
      body: "Name,Stage,Amount,Currency\nA,Demo,10,EUR\nB,,\"1,5\",EUR\nC,Nope,,\n",
    });
    assert.equal(up.status, 200, await up.clone().text());
    await imports.startImport({ id: job.id });
    const done = await waitEnd(imports, job.id);
    assert.deepEqual([done.state, Number(done.createdCount), Number(done.failedCount)], [ImportState.SUCCEEDED, 2, 1]);
    // The replay of the tenant's deals: the two imported ones, as the import.
    const seen = [];
    for await (const ev of embedded.client(RecordStreamService, { token: me.accessToken }).watchRecords({ objectType: ObjectType.DEAL, afterVersion: 0n })) {
      if (ev.event.case === "change") seen.push(ev.event.value.change!);
      if (seen.length === 2 || ev.event.case === "heartbeat") break;
    }
    assert.deepEqual(seen.map((c) => [c.record?.record.case === "deal" && c.record.record.value.name, c.actor?.type, c.actor?.id]), [["A", ActorType.IMPORT, job.id], ["B", ActorType.IMPORT, job.id]]);
    const b = seen[1]!.record!.record;
    assert.ok(b.case === "deal");
    assert.equal(b.value.amountMinor, 150n, '"1,5" EUR: 1.50');
  } finally {
    await embedded.close();
  }
});

test("PGlite (one connection): GetImport answers between an import's batches while it runs", async () => {
  // On one connection every call waits for the batch's transaction; a 5,000-row batch took long
  // enough there for GetImport to time out (unavailable). Batches of at most 500 rows on one
  // connection: 1,500 rows are three batches, and GetImport, asked again as soon as it answers,
  // sees the job running part way through.
  const embedded = await startTestApp({ RECORDS_IMPORT_POLL_MS: "100" });
  try {
    const t = randomBytes(4).toString("hex");
    const me = await embedded.client(AuthService).registerCompany({ companyName: `Lite ${t}`, email: `owner-${t}@example.com`, password: "correct horse battery staple", ownerName: "Owner" });
    const imports = embedded.client(ImportService, { token: me.accessToken });
    const job = (await imports.createImport({ import: { objectType: ObjectType.PERSON, fileName: "people.csv" } })).import!;
    const lines = ["First name,Last name,Email"];
    for (let i = 0; i < 1500; i++) lines.push(`Name${i},Family${i},lite${i}@example.com`);
    const up = await fetch(`${embedded.baseUrl}/imports/${job.id}/file`, { method: "POST", headers: { authorization: `Bearer ${me.accessToken}` }, body: lines.join("\n") });
    assert.equal(up.status, 200, await up.clone().text());
    await imports.startImport({ id: job.id });
    const partway: bigint[] = [];
    let last;
    for (;;) {
      last = (await imports.getImport({ id: job.id })).import!; // unavailable would throw
      if (last.state !== ImportState.QUEUED && last.state !== ImportState.RUNNING) break;
      if (last.state === ImportState.RUNNING && last.rowsDone > 0n && last.rowsDone < 1500n) partway.push(last.rowsDone);
    }
    assert.deepEqual([last.state, Number(last.createdCount)], [ImportState.SUCCEEDED, 1500]);
    assert.ok(partway.length > 0, "GetImport saw the job part way through");
    assert.ok(partway.every((n) => n % 500n === 0n), `progress by whole batches of 500: ${partway.join(", ")}`);
    // Searches find the imported people when the import has finished.
    const found = await embedded.client(SearchService, { token: me.accessToken }).search({ query: "Family1499" });
    assert.deepEqual(found.results.map((r) => r.title), ["Name1499 Family1499"], "the last row's person is found by search");
  } finally {
    await embedded.close();
  }
});

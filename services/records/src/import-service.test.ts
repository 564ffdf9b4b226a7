/**
 * ImportService and ExportService handlers in memory, with a fake store: bad requests never reach
 * the store; an upload is read as it streams and staged in order, batch after batch; WatchImport
 * follows the job until it ends; the error file and the export are streamed page by page; the
 * runner leases a job and runs it to its end, and gives up a job whose lease another replica took.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Code, ConnectError, createClient, createRouterTransport, type ServiceImpl } from "@connectrpc/connect";
import { DbImportService } from "@crm/gen/crm/db/v1/db_records_import_pb";
import { ObjectType } from "@crm/gen/crm/records/v1/common_pb";
import { ExportService } from "@crm/gen/crm/records/v1/export_pb";
import { ImportService, ImportState } from "@crm/gen/crm/records/v1/import_pb";
import { errorInterceptor } from "@crm/kit";
import { expectCode, inMemory, log } from "../test/harness.js";
import { exportService } from "./export-service.js";
import { createImportRunner } from "./import-runner.js";
import { importService } from "./import-service.js";

const ID = "0b4e7c1a-6a4b-4bb4-9d0f-6f1b2a3c4d5e";

function setup(store: Partial<ServiceImpl<typeof DbImportService>>) {
  const db = createClient(DbImportService, createRouterTransport((r) => void r.service(DbImportService, store), { router: { interceptors: [errorInterceptor(log)] } }));
  const mem = inMemory((r) => {
    r.service(ImportService, importService({ db, limits: { uploadBatch: 2, watchMs: 1 } }));
    r.service(ExportService, exportService(db));
  });
  return { db, imports: mem.client(ImportService, `${ID}.${ID}.member`), exports: mem.client(ExportService, `${ID}.${ID}.member`) };
}

test("bad requests are refused before the store", async () => {
  const calls: string[] = [];
  const t = setup({
    async createImportDB() {
      calls.push("create");
      return { response: {} };
    },
  });
  await expectCode(t.imports.createImport({}), Code.InvalidArgument, /import/);
  await expectCode(t.imports.startImport({ id: "nope" }), Code.InvalidArgument, /UUID/);
  await expectCode(t.imports.listImports({ pageSize: 101 }), Code.InvalidArgument, /1\.\.100/);
  await expectCode(t.imports.listImportErrors({ id: ID, pageSize: 5000 }), Code.InvalidArgument, /1\.\.1000/);
  await expectCode(t.imports.uploadImport((async function* () {
    yield { importId: "", data: new Uint8Array([97]) };
  })()), Code.InvalidArgument, /importId/);
  await expectCode((async () => {
    for await (const _ of t.exports.exportRecords({ objectType: ObjectType.TASK })) void _;
  })(), Code.InvalidArgument, /objectType/);
  assert.deepEqual(calls, []);
});

test("an upload streams into the store in order, in batches; the same import in every message", async () => {
  const staged: string[][] = [];
  const firsts: bigint[] = [];
  let shape = "";
  const t = setup({
    async appendImportRowsDB(r) {
      firsts.push(r.firstRow);
      if (r.delimiter) shape = `${r.encoding} ${r.delimiter} ${r.columns.join("|")}`;
      staged.push(...(JSON.parse(Buffer.from(r.rowsJson).toString()) as string[][]));
      return { stagedRows: BigInt(staged.length) };
    },
    async finishImportUploadDB(r) {
      return { import: { id: r.importId, state: ImportState.READY, totalRows: r.totalRows, sizeBytes: r.sizeBytes } };
    },
  });
  const file = Buffer.from("a;b\n1;2\n3;4\n5;6\n");
  const res = await t.imports.uploadImport((async function* () {
    yield { importId: ID, data: file.subarray(0, 5) };
    yield { data: file.subarray(5) };
  })());
  assert.deepEqual([res.import?.state, res.import?.totalRows, res.import?.sizeBytes], [ImportState.READY, 3n, BigInt(file.length)]);
  assert.deepEqual(staged, [["1", "2"], ["3", "4"], ["5", "6"]]);
  assert.deepEqual(firsts, [0n, 2n]);
  assert.equal(shape, "utf-8 semicolon a|b");
  await expectCode(t.imports.uploadImport((async function* () {
    yield { importId: ID, data: file };
    yield { importId: "0b4e7c1a-6a4b-4bb4-9d0f-000000000000", data: file };
  })()), Code.InvalidArgument, /same import/);
});

test("WatchImport follows the job until it ends; the error file and the export stream page by page", async () => {
  let reads = 0;
  const t = setup({
    async getImportDB() {
      reads++;
      const state = reads < 4 ? ImportState.RUNNING : ImportState.SUCCEEDED;
      return { response: { import: { id: ID, state, rowsDone: BigInt(Math.min(reads, 4) * 10) } } };
    },
    async listImportErrorsDB({ request }) {
      const second = request!.pageToken === "7";
      return {
        response: { errors: [{ rowNumber: second ? 9n : 3n, reason: second ? "bad; very" : "bad", cells: ["x", second ? "a;b" : "y"] }], nextPageToken: second ? "" : "7" },
        columns: ["c1", "c2"],
        delimiter: ";",
      };
    },
    async exportPageDB(r) {
      const page = Number(r.pageToken || "0");
      return { data: Buffer.from(`${r.withHeader ? "h\r\n" : ""}row${page}\r\n`), rows: 1n, nextPageToken: page < 2 ? String(page + 1) : "" };
    },
  });
  const seen: number[] = [];
  for await (const m of t.imports.watchImport({ id: ID })) seen.push(Number(m.import!.rowsDone));
  assert.deepEqual(seen, [10, 20, 30, 40]);
  let file = "";
  for await (const c of t.imports.getImportErrors({ id: ID })) file += Buffer.from(c.data).toString();
  assert.equal(file, '\uFEFFc1;c2;reason\r\nx;y;bad\r\nx;"a;b";"bad; very"\r\n');
  let csv = "";
  let rows = 0n;
  for await (const c of t.exports.exportRecords({ objectType: ObjectType.PERSON })) {
    csv += Buffer.from(c.data).toString();
    rows = c.rows;
  }
  assert.equal(csv, "\uFEFFh\r\nrow0\r\nrow1\r\nrow2\r\n");
  assert.equal(rows, 3n);
});

test("the runner leases a job and runs it to its end; a lost lease stops it", async () => {
  const jobs = [ID, "1b4e7c1a-6a4b-4bb4-9d0f-6f1b2a3c4d5e"];
  const batches: string[] = [];
  const { db } = setup({
    async claimImportDB() {
      const id = jobs.shift();
      return id ? { importId: id, leaseToken: `t-${id}` } : {};
    },
    async runImportBatchDB(r) {
      batches.push(r.importId.slice(0, 2));
      if (r.importId.startsWith("1b")) throw new ConnectError("leased by another replica", Code.Aborted);
      const n = batches.filter((b) => b === "0b").length;
      return { import: { id: r.importId, state: n < 3 ? ImportState.RUNNING : ImportState.SUCCEEDED } };
    },
  });
  const runner = createImportRunner({ db, log, owner: "test", pollMs: 60_000, leaseSeconds: 30, batch: 10 });
  await runner.drain();
  assert.deepEqual(batches, ["0b", "0b", "0b", "1b"]);
  await runner.stop();
});

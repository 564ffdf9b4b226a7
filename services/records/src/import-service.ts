/**
 * The crm.records.v1 ImportService handlers: each checks what it can without the database and
 * forwards to dbservice's DbImportService, which runs it as the caller. The upload is read here
 * as it streams (import-file.ts) and sent on in batches of rows; the job itself is run by the
 * replicas' runners (import-runner.ts).
 */
import type { Client, ServiceImpl } from "@connectrpc/connect";
import { AppError, invalid, type Violation } from "@crm/kit";
import type { DbImportService } from "@crm/gen/crm/db/v1/db_records_import_pb";
import { ImportState, type Import, type ImportService } from "@crm/gen/crm/records/v1/import_pb";
import { readCsv } from "./import-file.js";

export interface ImportLimits {
  /** RECORDS_IMPORT_MAX_BYTES */
  maxBytes: number;
  maxRows: number;
  /** Rows per AppendImportRowsDB call. */
  uploadBatch: number;
  /** How often WatchImport reads the job. */
  watchMs: number;
}

export const defaultImportLimits: ImportLimits = { maxBytes: 256 * 1024 * 1024, maxRows: 2_000_000, uploadBatch: 10_000, watchMs: 500 };

function answer<T>(res: { response?: T }): T {
  if (!res.response) throw new AppError("internal", "the records store sent an empty answer");
  return res.response;
}

const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
function needId(id: string, field = "id"): string {
  const v = id.trim().toLowerCase();
  if (!uuid.test(v)) throw invalid([{ field, description: v === "" ? "is required: the import's id" : "must be an import's id (UUID)" }]);
  return v;
}

const ended = new Set([ImportState.SUCCEEDED, ImportState.FAILED, ImportState.CANCELLED, ImportState.UNDONE]);

const delimiterNames = { ",": "comma", ";": "semicolon", "\t": "tab" } as const;

/** Reads an upload (the file's bytes) into the import's staging rows; answers the import, READY. */
export async function uploadFile(db: Client<typeof DbImportService>, importId: string, data: AsyncIterable<Uint8Array>, limits: ImportLimits): Promise<Import> {
  const file = await readCsv(data, { maxBytes: limits.maxBytes, maxRows: limits.maxRows, batch: limits.uploadBatch });
  let staged = 0n;
  let firstBatch = true;
  for await (const rows of file.batches) {
    const res = await db.appendImportRowsDB({
      importId,
      firstRow: staged,
      rowsJson: Buffer.from(JSON.stringify(rows)),
      ...(firstBatch ? { columns: file.header, encoding: file.shape.encoding, delimiter: delimiterNames[file.shape.delimiter] } : {}),
    });
    staged = res.stagedRows;
    firstBatch = false;
  }
  const res = await db.finishImportUploadDB({
    importId,
    totalRows: staged,
    sizeBytes: BigInt(file.bytes()),
    columns: file.header,
    encoding: file.shape.encoding,
    delimiter: delimiterNames[file.shape.delimiter],
  });
  if (!res.import) throw new AppError("internal", "the records store sent an empty answer");
  return res.import;
}

/** The error file's bytes: a BOM, the header plus "reason", each failed row as it was. */
export async function* errorFile(db: Client<typeof DbImportService>, id: string): AsyncGenerator<Uint8Array> {
  let token = "";
  let first = true;
  for (;;) {
    const res = await db.listImportErrorsDB({ request: { id, pageSize: 5000, pageToken: token } });
    const d = (res.delimiter || ",") as string;
    const cell = (s: string) => (s.includes(d) || /["\r\n]/.test(s) || /^\s|\s$/.test(s) ? `"${s.replace(/"/g, '""')}"` : s);
    const line = (cells: readonly string[]) => cells.map(cell).join(d) + "\r\n";
    let text = first ? "\uFEFF" + line([...res.columns, "reason"]) : "";
    first = false;
    for (const e of res.response?.errors ?? []) text += line([...e.cells, e.reason]);
    yield Buffer.from(text);
    token = res.response?.nextPageToken ?? "";
    if (!token) return;
  }
}

export interface ImportServiceDeps {
  db: Client<typeof DbImportService>;
  limits?: Partial<ImportLimits>;
  /** Wakes this replica's runner (a job was started). */
  nudge?: () => void;
}

export function importService(d: ImportServiceDeps): ServiceImpl<typeof ImportService> {
  const db = d.db;
  const limits = { ...defaultImportLimits, ...d.limits };
  return {
    async createImport(request) {
      const v: Violation[] = [];
      if (!request.import) v.push({ field: "import", description: "is required: its objectType at least" });
      if (v.length) throw invalid(v);
      return answer(await db.createImportDB({ request }));
    },
    async uploadImport(requests) {
      let id = "";
      const it = requests[Symbol.asyncIterator]();
      const firstMsg = await it.next();
      if (firstMsg.done) throw invalid([{ field: "importId", description: "is required in the first message" }]);
      id = needId(firstMsg.value.importId, "importId");
      async function* bytes(): AsyncGenerator<Uint8Array> {
        if (firstMsg.value) yield firstMsg.value.data;
        for (;;) {
          const n = await it.next();
          if (n.done) return;
          if (n.value.importId && n.value.importId.toLowerCase() !== id) throw invalid([{ field: "importId", description: "must name the same import in every message" }]);
          yield n.value.data;
        }
      }
      return { import: await uploadFile(db, id, bytes(), limits) };
    },
    async startImport(request) {
      needId(request.id);
      const res = answer(await db.startImportDB({ request }));
      d.nudge?.();
      return res;
    },
    async getImport(request) {
      needId(request.id);
      return answer(await db.getImportDB({ request }));
    },
    async listImports(request) {
      if (request.pageSize < 0 || request.pageSize > 100) throw invalid([{ field: "pageSize", description: "must be 1..100 (0 means 20)" }]);
      return answer(await db.listImportsDB({ request }));
    },
    async cancelImport(request) {
      needId(request.id);
      return answer(await db.cancelImportDB({ request }));
    },
    async *watchImport(request, ctx) {
      needId(request.id);
      let last = "";
      for (;;) {
        const { import: job } = answer(await db.getImportDB({ request: { id: request.id } }));
        const key = job ? `${job.state}:${job.rowsDone}:${job.failedCount}` : "";
        if (key !== last) {
          last = key;
          yield { import: job };
        }
        if (!job || ended.has(job.state)) return;
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, limits.watchMs);
          ctx.signal.addEventListener("abort", () => (clearTimeout(t), resolve()), { once: true });
        });
        if (ctx.signal.aborted) return;
      }
    },
    async listImportErrors(request) {
      needId(request.id);
      if (request.pageSize < 0 || request.pageSize > 1000) throw invalid([{ field: "pageSize", description: "must be 1..1000 (0 means 100)" }]);
      return answer(await db.listImportErrorsDB({ request }));
    },
    async *getImportErrors(request) {
      const id = needId(request.id);
      for await (const data of errorFile(db, id)) yield { data };
    },
    async undoImport(request) {
      needId(request.id);
      return answer(await db.undoImportDB({ request }));
    },
    async saveImportMapping(request) {
      if (!request.mapping) throw invalid([{ field: "mapping", description: "is required" }]);
      return answer(await db.saveImportMappingDB({ request }));
    },
    async listImportMappings(request) {
      return answer(await db.listImportMappingsDB({ request }));
    },
    async deleteImportMapping(request) {
      needId(request.id);
      return answer(await db.deleteImportMappingDB({ request }));
    },
  };
}

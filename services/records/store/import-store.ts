/**
 * Imports in the store (DbImportService): the job's rows staged in rec_import_rows, its state in
 * rec_imports, and the batches that apply it. A batch runs in ONE transaction as the user who
 * started the import: it checks the lease, reads the next rows, turns them into values
 * (import-rows.ts), merges rows with the same match value, looks the matches up and writes the
 * creates and the updates with a few set-based statements (jsonb_to_recordset), the timeline
 * entries (actor "import <id>"), what undo needs (rec_import_records), each row's result and the
 * job's progress; each record changed takes the tenant's next version and its change event
 * (changes.ts publishChanges, as an API write), with the COMMIT. Either all of that commits or
 * none: a replica killed mid-batch leaves the batch to the next lease, and no row is applied twice.
 */
import { randomUUID } from "node:crypto";
import type { JsonObject, MessageInitShape } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { AppError, invalid, principalOf, requirePeer, type Violation } from "@crm/kit";
import type { DbImportService } from "@crm/gen/crm/db/v1/db_records_import_pb";
import { ObjectType } from "@crm/gen/crm/records/v1/common_pb";
import { ImportMode, ImportState, type ColumnMapping, type ImportSchema, type ImportMappingSchema } from "@crm/gen/crm/records/v1/import_pb";
import type { Db, Sql } from "@crm/dbservice/db";
import { diff, emailKey, normalId, isId, type CustomDef, type Snapshot } from "../src/rules.js";
import { asCaller, mayEdit, type Acting } from "./acting.js";
import { publishChanges, snapshotOf as recordSnapshot, type PendingChange } from "./changes.js";
import { toCompany } from "./companies.js";
import { toPerson } from "./people.js";
import { loadDefs } from "./custom.js";
import { exportStore, type ExportAudit } from "./export-store.js";
import { dealCols, insertDeals, loadDealRefs, placeNewDeals, resolveDeal, updateDeals, type DealRefs } from "./import-deals.js";
import { auditImport, queueImportFinished } from "./import-events.js";
import { recordReaders } from "./readers.js";
import { importFields, mergeValues, missingForCreate, multiFields, parseRow, suggestMapping, type ImportKind, type Mapped, type RowValues } from "./import-rows.js";

/**
 * Limits: rows in a file, rows a batch takes (oneConnection: on a pool of one connection, PGlite's,
 * where every other call waits for the batch's transaction to end), the 24 hours of undo.
 */
export const IMPORT_LIMITS = { rows: 2_000_000, batch: 50_000, oneConnection: 500, appendRows: 20_000, undoHours: 24, mappings: 100 } as const;

interface ImportRow {
  id: string;
  company_id: string;
  creator_id: string;
  object_type: ImportKind;
  file_name: string;
  mode: "create" | "update" | "upsert";
  match_by: string;
  state: string;
  dry_run: boolean;
  applied: boolean;
  cancel_requested: boolean;
  mapping: Mapped[];
  columns: string[];
  suggested: Mapped[];
  encoding: string;
  delimiter: string;
  size_bytes: string;
  total_rows: string;
  staged_rows: string;
  next_row: string;
  created_count: string;
  updated_count: string;
  merged_count: string;
  unchanged_count: string;
  failed_count: string;
  error: string;
  lease_token: string | null;
  created_at: Date;
  started_at: Date | null;
  ended_at: Date | null;
  sample: string[][] | null;
}

const kinds: Record<number, ImportKind> = { [ObjectType.PERSON]: "person", [ObjectType.COMPANY]: "company", [ObjectType.DEAL]: "deal" };
const objectTypeOf: Record<ImportKind, ObjectType> = { person: ObjectType.PERSON, company: ObjectType.COMPANY, deal: ObjectType.DEAL };
const plural: Record<ImportKind, string> = { person: "people", company: "companies", deal: "deals" };
/** What rows are matched on unless the import names an external id: deals have no natural key (every row creates one). */
const naturalKey: Record<ImportKind, string> = { person: "emails", company: "domain", deal: "" };
const modes: Record<number, ImportRow["mode"]> = { [ImportMode.CREATE_ONLY]: "create", [ImportMode.UPDATE_ONLY]: "update", [ImportMode.UPSERT]: "upsert", [ImportMode.UNSPECIFIED]: "upsert" };
const modeOf: Record<ImportRow["mode"], ImportMode> = { create: ImportMode.CREATE_ONLY, update: ImportMode.UPDATE_ONLY, upsert: ImportMode.UPSERT };
const states: Record<string, ImportState> = {
  awaiting_upload: ImportState.AWAITING_UPLOAD, ready: ImportState.READY, queued: ImportState.QUEUED, running: ImportState.RUNNING,
  succeeded: ImportState.SUCCEEDED, failed: ImportState.FAILED, cancelled: ImportState.CANCELLED, undone: ImportState.UNDONE,
};
const terminal = new Set(["succeeded", "failed", "cancelled", "undone"]);

const SELECT = `SELECT i.*, (SELECT array_agg(r.cells ORDER BY r.row_no) FROM (SELECT cells, row_no FROM rec_import_rows WHERE import_id = i.id AND row_no < 5) r) AS sample FROM rec_imports i`;

const n = (s: string) => BigInt(s);

export function toImport(r: ImportRow): MessageInitShape<typeof ImportSchema> {
  const done = Number(r.next_row);
  const total = Number(r.total_rows);
  const started = r.started_at?.getTime();
  const until = r.ended_at?.getTime() ?? Date.now();
  const secs = started ? Math.max(0.001, (until - started) / 1000) : 0;
  const rate = started && done > 0 ? done / secs : 0;
  const mapping = (m: Mapped[]) => m.map((x) => ({ column: x.column, header: r.columns[x.column] ?? "", field: x.field }));
  return {
    id: r.id,
    objectType: objectTypeOf[r.object_type],
    fileName: r.file_name,
    mode: modeOf[r.mode],
    matchBy: r.match_by,
    state: states[r.state] ?? ImportState.UNSPECIFIED,
    dryRun: r.dry_run,
    mapping: mapping(r.mapping),
    columns: r.columns,
    suggestedMapping: mapping(r.suggested),
    sampleRows: (r.sample ?? []).map((cells) => ({ cells })),
    encoding: r.encoding,
    delimiter: r.delimiter,
    sizeBytes: n(r.size_bytes),
    totalRows: n(r.total_rows),
    rowsDone: n(r.next_row),
    createdCount: n(r.created_count),
    updatedCount: n(r.updated_count),
    mergedCount: n(r.merged_count),
    unchangedCount: n(r.unchanged_count),
    failedCount: n(r.failed_count),
    rowsPerSecond: rate,
    timeLeft: r.state === "running" && rate > 0 ? durationFromMs(Math.round(((total - done) / rate) * 1000)) : undefined,
    error: r.error,
    creatorId: r.creator_id,
    createTime: timestampFromDate(r.created_at),
    startTime: r.started_at ? timestampFromDate(r.started_at) : undefined,
    endTime: r.ended_at ? timestampFromDate(r.ended_at) : undefined,
    undoDeadline: r.ended_at && r.applied && r.state !== "undone" ? timestampFromDate(new Date(r.ended_at.getTime() + IMPORT_LIMITS.undoHours * 3_600_000)) : undefined,
  };
}

const delimiters: Record<string, string> = { "": "", comma: ",", semicolon: ";", tab: "\t" };
function delimiterOf(name: string): string {
  const d = delimiters[name];
  if (d === undefined) throw invalid([{ field: "delimiter", description: 'must be "comma", "semicolon" or "tab"' }]);
  return d;
}
function encodingOf(name: string): string {
  if (!["", "utf-8", "windows-1251"].includes(name)) throw invalid([{ field: "encoding", description: 'must be "utf-8" or "windows-1251"' }]);
  return name;
}

/** AppendImportRowsDB's rows: a JSON array of arrays of strings, without NUL (PostgreSQL text holds none). */
function parseRowsJson(bytes: Uint8Array): string[][] {
  if (bytes.length > 32 * 1024 * 1024) throw new AppError("too_large", "at most 32 MiB of rows a call");
  if (!bytes.length) return [];
  let rows: unknown;
  try {
    rows = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("utf8"));
  } catch {
    throw invalid([{ field: "rowsJson", description: "must be a JSON array of arrays of strings" }]);
  }
  if (!Array.isArray(rows) || rows.length > IMPORT_LIMITS.appendRows) throw invalid([{ field: "rowsJson", description: `must be a JSON array of at most ${IMPORT_LIMITS.appendRows} rows` }]);
  for (const r of rows) {
    if (!Array.isArray(r) || r.length > 1000 || !r.every((c) => typeof c === "string" && !c.includes("\u0000"))) {
      throw invalid([{ field: "rowsJson", description: "each row must be an array of at most 1,000 strings without NUL characters" }]);
    }
  }
  return rows as string[][];
}

function idArg(value: string, field = "id"): string {
  const id = normalId(value);
  if (!isId(id)) throw invalid([{ field, description: id === "" ? "is required: the import's id" : `must be an id (UUID), got ${JSON.stringify(value.slice(0, 80))}` }]);
  return id;
}

async function getImport(sql: Sql, id: string, lock = false): Promise<ImportRow> {
  const { rows } = await sql.query<ImportRow>(lock ? "SELECT i.*, NULL AS sample FROM rec_imports i WHERE i.id = $1 FOR UPDATE" : `${SELECT} WHERE i.id = $1`, [id]);
  if (!rows[0]) throw new AppError("not_found", `no import ${id} in your company`);
  return rows[0];
}

/** The import locked for a change by the caller: its creator or an owner or admin. */
async function lockOwn(sql: Sql, a: Acting, id: string): Promise<ImportRow> {
  const row = await getImport(sql, id, true);
  if (row.creator_id !== a.userId && !(a.role === "owner" || a.role === "admin")) {
    throw new AppError("permission_denied", `import ${id} is another user's: only they, owners and admins may change it`);
  }
  return row;
}

/** The mapping checked against the header and the object's fields, each bad entry named. */
function checkMapping(kind: ImportKind, mapping: readonly Mapped[], columns: readonly string[], defs: readonly CustomDef[], at: string): Mapped[] {
  const v: Violation[] = [];
  const seenCols = new Set<number>();
  const seenFields = new Set<string>();
  const custom = new Map(defs.filter((d) => !d.archived).map((d) => [d.key, d]));
  mapping.forEach((m, i) => {
    if (m.column < 0 || m.column >= columns.length) v.push({ field: `${at}[${i}].column`, description: `must be a column of the file, 0..${columns.length - 1}` });
    else if (seenCols.has(m.column)) v.push({ field: `${at}[${i}].column`, description: "is mapped twice" });
    seenCols.add(m.column);
    if (m.field === "") return;
    const ok = importFields[kind].includes(m.field) || (m.field.startsWith("custom.") && custom.has(m.field.slice(7)));
    if (!ok) v.push({ field: `${at}[${i}].field`, description: `${JSON.stringify(m.field.slice(0, 80))} is not a field an import of ${plural[kind]} fills: ${importFields[kind].join(", ")} or custom.<key> of an active custom field` });
    else if (seenFields.has(m.field) && !multiFields.has(m.field)) v.push({ field: `${at}[${i}].field`, description: `${m.field} is mapped twice` });
    seenFields.add(m.field);
  });
  if (v.length) throw invalid(v);
  return mapping.filter((m) => m.field !== "").map((m) => ({ column: m.column, field: m.field }));
}

function checkMatchBy(kind: ImportKind, matchBy: string, defs: readonly CustomDef[], field: string): string {
  const m = matchBy.trim() || naturalKey[kind];
  if (m === naturalKey[kind]) return m;
  if (m.startsWith("custom.")) {
    const d = defs.find((x) => x.key === m.slice(7) && !x.archived);
    if (d && ["text", "email", "url", "phone", "number"].includes(d.type)) return m;
  }
  throw invalid([{ field, description: `must be ${naturalKey[kind] ? `"${naturalKey[kind]}" or ` : '"" (every row creates a deal) or '}"custom.<key>" of an active text custom field (an external id)` }]);
}

export interface ImportStoreOptions {
  afterOutbox?: () => void;
  /** The audit log (the admin store's, handed in by dbservice): exports are written to it. */
  audit?: ExportAudit;
}

export function importStore(db: Db, o: ImportStoreOptions = {}): Partial<ServiceImpl<typeof DbImportService>> {
  const tx = <T>(ctx: HandlerContext, fn: (sql: Sql, a: Acting) => Promise<T>) => asCaller(db, ctx, fn, {}, { readers: recordReaders, afterOutbox: o.afterOutbox });
  const answer = async (sql: Sql, id: string) => ({ import: toImport(await getImport(sql, id)) });

  return {
    ...exportStore(db, tx, o.audit),

    async createImportDB({ request: r }, ctx) {
      const i = r?.import;
      const kind = kinds[i?.objectType ?? 0];
      const v: Violation[] = [];
      if (!kind) v.push({ field: "import.objectType", description: "must be OBJECT_TYPE_PERSON, OBJECT_TYPE_COMPANY or OBJECT_TYPE_DEAL" });
      if ((i?.fileName ?? "").length > 255) v.push({ field: "import.fileName", description: "must be at most 255 characters" });
      if (i && modes[i.mode] === undefined) v.push({ field: "import.mode", description: "must be IMPORT_MODE_CREATE_ONLY, IMPORT_MODE_UPDATE_ONLY or IMPORT_MODE_UPSERT" });
      if (v.length) throw invalid(v);
      return {
        response: await tx(ctx, async (sql, a) => {
          const defs = await loadDefs(sql, kind!);
          const matchBy = checkMatchBy(kind!, i!.matchBy, defs, "import.matchBy");
          if (matchBy === "" && modes[i!.mode] === "update") throw invalid([{ field: "import.matchBy", description: "an update-only import of deals matches them by an external id: name custom.<key>" }]);
          const { rows } = await sql.query<{ id: string }>(
            "INSERT INTO rec_imports (company_id, creator_id, object_type, file_name, mode, match_by) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            [a.companyId, a.userId, kind, i!.fileName, modes[i!.mode], matchBy],
          );
          return answer(sql, rows[0]!.id);
        }),
      };
    },

    async appendImportRowsDB(r, ctx) {
      const id = idArg(r.importId, "importId");
      const rows = parseRowsJson(r.rowsJson);
      const delimiter = delimiterOf(r.delimiter);
      return tx(ctx, async (sql, a) => {
        const job = await lockOwn(sql, a, id);
        if (job.state !== "awaiting_upload") throw new AppError("failed_precondition", `import ${id} is ${job.state.replace("_", " ")}, not awaiting its file: create another import`);
        if (BigInt(r.firstRow) !== BigInt(job.staged_rows)) throw new AppError("failed_precondition", `import ${id} has ${job.staged_rows} rows staged; this batch starts at row ${r.firstRow}`);
        const staged = BigInt(job.staged_rows) + BigInt(rows.length);
        if (staged > BigInt(IMPORT_LIMITS.rows)) throw new AppError("too_large", `a file may hold at most ${IMPORT_LIMITS.rows} rows: split it`);
        if (rows.length) {
          await sql.query(
            `INSERT INTO rec_import_rows (company_id, import_id, row_no, cells)
             SELECT $1, $2, $3::bigint + x.ord - 1, ARRAY(SELECT jsonb_array_elements_text(x.cells))
             FROM jsonb_array_elements($4::jsonb) WITH ORDINALITY AS x (cells, ord)`,
            [a.companyId, id, r.firstRow.toString(), JSON.stringify(rows)],
          );
        }
        await sql.query(
          `UPDATE rec_imports SET staged_rows = $2, columns = CASE WHEN cardinality($3::text[]) > 0 THEN $3 ELSE columns END,
                  encoding = coalesce(nullif($4, ''), encoding), delimiter = coalesce(nullif($5, ''), delimiter) WHERE id = $1`,
          [id, staged.toString(), r.columns, encodingOf(r.encoding), delimiter],
        );
        return { stagedRows: staged };
      });
    },

    async finishImportUploadDB(r, ctx) {
      const id = idArg(r.importId, "importId");
      return tx(ctx, async (sql, a) => {
        const job = await lockOwn(sql, a, id);
        if (job.state !== "awaiting_upload") throw new AppError("failed_precondition", `import ${id} is ${job.state.replace("_", " ")}, not awaiting its file`);
        if (BigInt(r.totalRows) !== BigInt(job.staged_rows)) throw new AppError("failed_precondition", `import ${id} has ${job.staged_rows} rows staged, not ${r.totalRows}: upload the file again to a new import`);
        const columns = r.columns.length ? r.columns : job.columns;
        if (!columns.length) throw invalid([{ field: "columns", description: "the file has no header row" }]);
        const defs = await loadDefs(sql, job.object_type);
        const suggested = suggestMapping(job.object_type, columns, defs.filter((d) => !d.archived));
        await sql.query(
          `UPDATE rec_imports SET state = 'ready', total_rows = $2, size_bytes = $3, columns = $4, suggested = $5,
                  encoding = coalesce(nullif($6, ''), encoding), delimiter = coalesce(nullif($7, ''), delimiter) WHERE id = $1`,
          [id, r.totalRows.toString(), r.sizeBytes.toString(), columns, JSON.stringify(suggested), encodingOf(r.encoding), delimiterOf(r.delimiter)],
        );
        return answer(sql, id);
      });
    },

    async startImportDB({ request: r }, ctx) {
      const id = idArg(r?.id ?? "");
      return {
        response: await tx(ctx, async (sql, a) => {
          const job = await lockOwn(sql, a, id);
          const again = job.state === "succeeded" && job.dry_run && !job.applied;
          if (job.state !== "ready" && !again) {
            throw new AppError("failed_precondition", job.state === "awaiting_upload" ? `import ${id} has no file yet: upload it first` : `import ${id} is ${job.state}: it cannot be started again`);
          }
          const defs = await loadDefs(sql, job.object_type);
          const given = r!.mapping.length ? r!.mapping.map((m: ColumnMapping) => ({ column: m.column, field: m.field.trim() })) : job.suggested;
          const mapping = checkMapping(job.object_type, given, job.columns, defs, "mapping");
          const matchField = job.match_by;
          if (matchField !== "" && !mapping.some((m) => m.field === matchField) && job.mode !== "create") {
            throw invalid([{ field: "mapping", description: `map a column to ${matchField}: rows are matched on it (mode ${job.mode})` }]);
          }
          if (!r!.dryRun && job.object_type === "person" && !mapping.some((m) => ["first_name", "last_name", "full_name"].includes(m.field)) && job.mode !== "update") {
            throw invalid([{ field: "mapping", description: "map a column to first_name, last_name or full_name: new people need a name" }]);
          }
          if (!r!.dryRun && job.object_type === "deal" && !mapping.some((m) => m.field === "name") && job.mode !== "update") {
            throw invalid([{ field: "mapping", description: "map a column to name: new deals need a name" }]);
          }
          await sql.query(
            `UPDATE rec_imports SET state = 'queued', dry_run = $2, applied = applied OR NOT $2, mapping = $3, next_row = 0, created_count = 0, updated_count = 0,
                    merged_count = 0, unchanged_count = 0, failed_count = 0, error = '', started_at = NULL, ended_at = NULL, lease_until = NULL, lease_token = NULL WHERE id = $1`,
            [id, r!.dryRun, JSON.stringify(mapping)],
          );
          if (again) await sql.query("UPDATE rec_import_rows SET result = '', reason = '', match_key = '' WHERE import_id = $1 AND (result <> '' OR match_key <> '')", [id]);
          const out = await answer(sql, id);
          await auditImport(o.audit, sql, ctx, "records.import_started", out.import, { mode: job.mode, rows: job.total_rows });
          return out;
        }).finally(() => o.audit?.afterCommit()),
      };
    },

    async getImportDB({ request: r }, ctx) {
      const id = idArg(r?.id ?? "");
      return { response: await tx(ctx, (sql) => answer(sql, id)) };
    },

    async listImportsDB({ request: r }, ctx) {
      const size = Math.min(Math.max(r?.pageSize || 20, 1), 100);
      let after: { t: string; id: string } | undefined;
      if (r?.pageToken) {
        try {
          after = JSON.parse(Buffer.from(r.pageToken, "base64url").toString()) as { t: string; id: string };
          if (!isId(after.id) || Number.isNaN(Date.parse(after.t))) throw new Error("bad");
        } catch {
          throw invalid([{ field: "pageToken", description: "is not a page token this RPC returned" }]);
        }
      }
      return {
        response: await tx(ctx, async (sql) => {
          const { rows } = await sql.query<ImportRow>(
            `${SELECT} WHERE ($1::timestamptz IS NULL OR (i.created_at, i.id) < ($1, $2::uuid)) ORDER BY i.created_at DESC, i.id DESC LIMIT ${size + 1}`,
            [after?.t ?? null, after?.id ?? null],
          );
          const page = rows.slice(0, size);
          const last = page[page.length - 1];
          return {
            imports: page.map(toImport),
            nextPageToken: rows.length > size && last ? Buffer.from(JSON.stringify({ t: last.created_at.toISOString(), id: last.id })).toString("base64url") : "",
          };
        }),
      };
    },

    async cancelImportDB({ request: r }, ctx) {
      const id = idArg(r?.id ?? "");
      return {
        response: await tx(ctx, async (sql, a) => {
          const job = await lockOwn(sql, a, id);
          if (terminal.has(job.state)) throw new AppError("failed_precondition", `import ${id} has ended (${job.state})`);
          if (job.state === "running") await sql.query("UPDATE rec_imports SET cancel_requested = true WHERE id = $1", [id]);
          else await sql.query("UPDATE rec_imports SET state = 'cancelled', ended_at = now() WHERE id = $1", [id]);
          const out = await answer(sql, id);
          // A queued job cancelled before it ran has finished; one never started has not.
          if (job.state === "queued") await queueImportFinished(db, sql, a.companyId, ImportState.QUEUED, out.import);
          return out;
        }).finally(() => o.afterOutbox?.()),
      };
    },

    async listImportErrorsDB({ request: r }, ctx) {
      const id = idArg(r?.id ?? "");
      const size = Math.min(Math.max(r?.pageSize || 100, 1), 10_000);
      let after = -1n;
      if (r?.pageToken) {
        if (!/^\d{1,12}$/.test(r.pageToken)) throw invalid([{ field: "pageToken", description: "is not a page token this RPC returned" }]);
        after = BigInt(r.pageToken);
      }
      return tx(ctx, async (sql) => {
        const job = await getImport(sql, id);
        const { rows } = await sql.query<{ row_no: string; reason: string; cells: string[] }>(
          `SELECT row_no, reason, cells FROM rec_import_rows WHERE import_id = $1 AND result = 'failed' AND row_no > $2 ORDER BY row_no LIMIT ${size + 1}`,
          [id, after.toString()],
        );
        const page = rows.slice(0, size);
        return {
          response: {
            errors: page.map((e) => ({ rowNumber: BigInt(e.row_no) + 2n, reason: e.reason, cells: e.cells })),
            nextPageToken: rows.length > size ? page[page.length - 1]!.row_no : "",
          },
          columns: job.columns,
          delimiter: job.delimiter,
        };
      });
    },

    async undoImportDB({ request: r }, ctx) {
      const id = idArg(r?.id ?? "");
      return {
        response: await tx(ctx, async (sql, a) => {
          const job = await lockOwn(sql, a, id);
          if (job.dry_run || !job.applied) throw new AppError("failed_precondition", `import ${id} wrote nothing (a dry run, or not run): nothing to undo`);
          if (job.state === "undone") throw new AppError("failed_precondition", `import ${id} is undone already`);
          if (!terminal.has(job.state)) throw new AppError("failed_precondition", `import ${id} is ${job.state}: cancel it first, then undo`);
          if (job.ended_at && Date.now() - job.ended_at.getTime() > IMPORT_LIMITS.undoHours * 3_600_000) {
            throw new AppError("failed_precondition", `import ${id} ended more than ${IMPORT_LIMITS.undoHours} hours ago: it can no longer be undone`);
          }
          a.actor = importActor(id);
          const u = await undo(sql, a, job);
          await sql.query("UPDATE rec_imports SET state = 'undone' WHERE id = $1", [id]);
          const out = await answer(sql, id);
          await auditImport(o.audit, sql, ctx, "records.import_undone", out.import, { trashed: String(u.trashedCount), restored: String(u.restoredCount), skipped: String(u.skippedCount) });
          return { ...out, ...u };
        }).finally(() => o.audit?.afterCommit()),
      };
    },

    async saveImportMappingDB({ request: r }, ctx) {
      const m = r?.mapping;
      const kind = kinds[m?.objectType ?? 0];
      const v: Violation[] = [];
      if (!kind) v.push({ field: "mapping.objectType", description: "must be OBJECT_TYPE_PERSON, OBJECT_TYPE_COMPANY or OBJECT_TYPE_DEAL" });
      const name = (m?.name ?? "").trim();
      if (name.length < 1 || name.length > 100) v.push({ field: "mapping.name", description: "must be 1..100 characters" });
      if ((m?.mapping.length ?? 0) > 500) v.push({ field: "mapping.mapping", description: "at most 500 columns" });
      if (v.length) throw invalid(v);
      return {
        response: await tx(ctx, async (sql, a) => {
          const defs = await loadDefs(sql, kind!);
          const mapping = m!.mapping.map((c, i) => {
            const f = c.field.trim();
            if (f && !importFields[kind!].includes(f) && !(f.startsWith("custom.") && defs.some((d) => d.key === f.slice(7)))) {
              throw invalid([{ field: `mapping.mapping[${i}].field`, description: `${JSON.stringify(f.slice(0, 80))} is not a field an import fills` }]);
            }
            return { header: c.header.slice(0, 200), field: f };
          });
          const matchBy = m!.matchBy ? checkMatchBy(kind!, m!.matchBy, defs, "mapping.matchBy") : "";
          const { rows } = await sql.query(
            `INSERT INTO rec_import_mappings (company_id, object_type, name, mapping, match_by) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (company_id, object_type, lower(name)) DO UPDATE SET mapping = EXCLUDED.mapping, match_by = EXCLUDED.match_by, updated_at = now(), name = EXCLUDED.name
             RETURNING id, object_type, name, mapping, match_by, updated_at`,
            [a.companyId, kind, name, JSON.stringify(mapping), matchBy],
          );
          return { mapping: toMapping(rows[0] as MappingRow) };
        }),
      };
    },

    async listImportMappingsDB({ request: r }, ctx) {
      const kind = kinds[r?.objectType ?? 0] ?? null;
      return {
        response: await tx(ctx, async (sql) => {
          const { rows } = await sql.query<MappingRow>(
            "SELECT id, object_type, name, mapping, match_by, updated_at FROM rec_import_mappings WHERE $1::text IS NULL OR object_type = $1 ORDER BY lower(name), id LIMIT 500",
            [kind],
          );
          return { mappings: rows.map(toMapping) };
        }),
      };
    },

    async deleteImportMappingDB({ request: r }, ctx) {
      const id = idArg(r?.id ?? "");
      await tx(ctx, (sql) => sql.query("DELETE FROM rec_import_mappings WHERE id = $1", [id]));
      return { response: {} };
    },

    // Jobs: for no user; only the records service runs them.
    async claimImportDB(r, ctx) {
      requirePeer(ctx, "records");
      const lease = Math.min(Math.max(r.leaseSeconds || 30, 5), 600);
      const rows = await db.system(async (sql) => (await sql.query<{ import_id: string; lease_token: string }>("SELECT import_id, lease_token FROM crm_claim_import($1, make_interval(secs => $2))", [r.owner.slice(0, 200), lease])).rows);
      return rows[0] ? { importId: rows[0].import_id, leaseToken: rows[0].lease_token } : {};
    },

    async runImportBatchDB(r, ctx) {
      requirePeer(ctx, "records");
      const id = idArg(r.importId, "importId");
      const token = idArg(r.leaseToken, "leaseToken");
      // On one connection (PGlite) a batch holds the database: GetImport, the console and every other
      // call wait until its transaction ends (and fail unavailable after the pool's connection
      // timeout). Small batches there let them in between batches, in the order they asked.
      const oneConnection = (db.pool.options.max ?? 10) <= 1;
      const size = Math.min(Math.max(r.batchSize || 5000, 1), oneConnection ? IMPORT_LIMITS.oneConnection : IMPORT_LIMITS.batch);
      const lease = Math.min(Math.max(r.leaseSeconds || 30, 5), 600);
      const owner = await db.system(async (sql) => (await sql.query<{ company_id: string; creator_id: string }>("SELECT company_id, creator_id FROM crm_import_job($1)", [id])).rows[0]);
      if (!owner) throw new AppError("not_found", `no import ${id}`);
      let published = 0;
      let finished = false;
      try {
        const answer = await db.tenant(
          owner.company_id,
          async (sql, { role }) => {
            const job = await getImport(sql, id, true);
            if (job.lease_token !== token) throw new AppError("aborted", `import ${id} is leased by another replica now`);
            if (role !== "owner" && role !== "admin" && role !== "member") {
              await endJob(sql, id, "failed", "the user who started the import is no longer active");
              const ended = { import: toImport(await getImport(sql, id)) };
              finished = await queueImportFinished(db, sql, owner.company_id, states[job.state]!, ended.import);
              return ended;
            }
            const a: Acting = { companyId: owner.company_id, userId: owner.creator_id, role, pending: [], actor: importActor(id) };
            if (job.cancel_requested) await endJob(sql, id, "cancelled", "");
            else await runBatch(sql, a, job, size);
            await sql.query("UPDATE rec_imports SET lease_until = now() + make_interval(secs => $2) WHERE id = $1 AND state = 'running'", [id, lease]);
            const out = { import: toImport(await getImport(sql, id)) };
            finished = await queueImportFinished(db, sql, owner.company_id, states[job.state]!, out.import);
            // Each record the batch created or updated takes the tenant's next version and its
            // change event (rec_changes, the outbox) with the COMMIT, as a change made through
            // the API does: WatchRecords' live lists and the webhooks see imported records.
            published = await publishChanges(db, sql, a, recordReaders);
            return out;
          },
          { actingUser: owner.creator_id },
        );
        if (published || finished) o.afterOutbox?.();
        return answer;
      } catch (err) {
        if (err instanceof AppError) throw err;
        // A record written meanwhile by someone else (an address taken between the lookup and the
        // INSERT), a deadlock: the batch committed nothing; its lease ends now so that the next
        // claim runs it again and finds what changed.
        if (["23505", "40001", "40P01"].includes((err as { code?: string }).code ?? "")) {
          await db.tenant(owner.company_id, (sql) => sql.query("UPDATE rec_imports SET lease_until = now() WHERE id = $1 AND lease_token = $2", [id, token]), { actingUser: owner.creator_id });
          throw new AppError("aborted", `import ${id}: records changed while a batch ran; it runs again`);
        }
        // The batch failed as a whole (a bug, or the database refused something the checks let
        // through): the job fails with the reason, its committed batches stay.
        const reason = (err as Error).message?.slice(0, 500) ?? String(err);
        await db.tenant(
          owner.company_id,
          async (sql) => {
            await endJob(sql, id, "failed", `a batch failed: ${reason}`);
            await queueImportFinished(db, sql, owner.company_id, ImportState.RUNNING, toImport(await getImport(sql, id)));
          },
          { actingUser: owner.creator_id },
        );
        o.afterOutbox?.();
        throw err;
      }
    },
  };
}

interface MappingRow {
  id: string;
  object_type: ImportKind;
  name: string;
  mapping: { header: string; field: string }[];
  match_by: string;
  updated_at: Date;
}

const toMapping = (r: MappingRow): MessageInitShape<typeof ImportMappingSchema> => ({
  id: r.id,
  name: r.name,
  objectType: objectTypeOf[r.object_type],
  mapping: r.mapping.map((m, column) => ({ column, header: m.header, field: m.field })),
  matchBy: r.match_by,
  updateTime: timestampFromDate(r.updated_at),
});

/** Who an import's changes name: the timeline's and the events' "import <id>". */
const importActor = (id: string): NonNullable<Acting["actor"]> => ({ type: "import", id, name: `import ${id}` });

async function endJob(sql: Sql, id: string, state: string, error: string): Promise<void> {
  await sql.query("UPDATE rec_imports SET state = $2, error = $3, ended_at = now(), lease_until = NULL, lease_token = NULL WHERE id = $1", [id, state, error]);
}

/** The stored record a row changes: the columns an import writes. */
interface Current {
  id: string;
  owner_id: string;
  version: string;
  values: RowValues;
  created_by_this: boolean;
}

const personCols = ["first_name", "last_name", "emails", "phones", "job_title"] as const;
const companyCols = ["name", "domain", "address", "industry", "size", "tags"] as const;
const colsOf = (kind: ImportKind): readonly string[] => (kind === "person" ? personCols : kind === "company" ? companyCols : dealCols);
const tableOf = (kind: ImportKind) => ({ person: "rec_people", company: "rec_companies", deal: "rec_deals" })[kind];

function snapshotOf(kind: ImportKind, v: RowValues): Snapshot {
  const out: Snapshot = {};
  for (const c of colsOf(kind)) {
    const x = (v as unknown as Record<string, unknown>)[c];
    if (x !== undefined) out[c] = x as Snapshot[string];
  }
  for (const [k, x] of Object.entries(v.custom)) out[`custom.${k}`] = x as Snapshot[string];
  return out;
}

/** The rows [next_row, next_row + size) of the job, applied (or, on a dry run, judged). */
async function runBatch(sql: Sql, a: Acting, job: ImportRow, size: number): Promise<void> {
  const kind = job.object_type;
  const from = BigInt(job.next_row);
  const { rows } = await sql.query<{ row_no: string; cells: string[] }>(
    // The cells as JSON: JSON.parse reads 5,000 rows several times faster than the text[] parser.
    "SELECT row_no, to_json(cells) AS cells FROM rec_import_rows WHERE import_id = $1 AND row_no >= $2 ORDER BY row_no LIMIT $3",
    [job.id, from.toString(), size],
  );
  const defs = new Map((await loadDefs(sql, kind)).map((d) => [d.key, d]));
  const result = new Map<number, { result: string; reason: string }>();
  const fail = (rowNo: number, reason: string) => result.set(rowNo, { result: "failed", reason });

  // Rows → values; rows with the same match value merged (the first row of a group carries it).
  const groups = new Map<string, { rowNos: number[]; values: RowValues }>();
  const unkeyed: { rowNos: number[]; values: RowValues }[] = [];
  for (const r of rows) {
    const rowNo = Number(r.row_no);
    const p = parseRow(kind, job.mapping, r.cells, defs, job.match_by);
    if ("reason" in p) {
      fail(rowNo, p.reason);
      continue;
    }
    if (p.key === "") {
      if (job.mode === "update") fail(rowNo, `${job.match_by}: is empty: rows are matched on it`);
      else unkeyed.push({ rowNos: [rowNo], values: p.values });
      continue;
    }
    const g = groups.get(p.key);
    if (g) {
      g.values = mergeValues(g.values, p.values);
      g.rowNos.push(rowNo);
    } else groups.set(p.key, { rowNos: [rowNo], values: p.values });
  }

  // The records the groups match (and whether this import created them: then the rows merge).
  const keys = [...groups.keys()];
  const matched = await findMatches(sql, job, keys);
  // On a dry run nothing was written: rows matching earlier rows of the file merge with them.
  if (job.dry_run && keys.length) {
    const { rows: seen } = await sql.query<{ match_key: string }>(
      "SELECT DISTINCT match_key FROM rec_import_rows WHERE import_id = $1 AND match_key = ANY($2::text[]) AND row_no < $3 AND result = 'created'",
      [job.id, keys, from.toString()],
    );
    for (const x of seen) if (!matched.has(x.match_key)) matched.set(x.match_key, { id: "(a row above)", owner_id: a.userId, version: "1", values: { custom: {} }, created_by_this: true });
  }

  const creates: { id: string; values: RowValues; rowNos: number[] }[] = [];
  const updates: { cur: Current; next: RowValues; rowNos: number[]; changes: ReturnType<typeof diff> }[] = [];
  let merged = 0;
  const other = await otherOwners(sql, kind, job, [...groups.values(), ...unkeyed]);
  // Deals: their pipelines, stages and companies, named in the rows, as stored ids.
  const refs: DealRefs | undefined = kind === "deal" ? await loadDealRefs(sql, [...groups.values(), ...unkeyed]) : undefined;
  const settle = (rowNos: number[], first: string, reason = "") => {
    result.set(rowNos[0]!, { result: first, reason });
    for (const x of rowNos.slice(1)) result.set(x, { result: first === "failed" ? "failed" : "merged", reason: first === "failed" ? reason : "" });
    if (first !== "failed") merged += rowNos.length - 1;
  };
  for (const [key, g] of [...groups.entries(), ...unkeyed.map((u) => ["", u] as const)]) {
    const cur = key ? matched.get(key) : undefined;
    const conflict = other.get(g);
    if (conflict) {
      settle(g.rowNos, "failed", conflict);
      continue;
    }
    if (!cur) {
      if (job.mode === "update") {
        settle(g.rowNos, "failed", `no ${kind} matches ${job.match_by} ${JSON.stringify(key)}`);
        continue;
      }
      const missing = missingForCreate(kind, g.values);
      if (missing) {
        settle(g.rowNos, "failed", missing);
        continue;
      }
      let values = g.values;
      if (refs) {
        const r = resolveDeal(refs, values, undefined);
        if ("reason" in r) {
          settle(g.rowNos, "failed", r.reason);
          continue;
        }
        values = r.values;
      }
      creates.push({ id: randomUUID(), values, rowNos: g.rowNos });
      settle(g.rowNos, "created");
      continue;
    }
    if (job.mode === "create" && !cur.created_by_this) {
      settle(g.rowNos, "failed", `exists already: ${kind} ${cur.id} has ${job.match_by} ${JSON.stringify(key)} (mode create only)`);
      continue;
    }
    if (!mayEdit(a, cur.owner_id)) {
      settle(g.rowNos, "failed", `${kind} ${cur.id} is another user's: members update only the records they own`);
      continue;
    }
    let next = mergeValues(cur.values, g.values);
    if (refs) {
      const r = resolveDeal(refs, next, cur.values);
      if ("reason" in r) {
        settle(g.rowNos, "failed", r.reason);
        continue;
      }
      next = r.values;
    }
    const changes = diff(snapshotOf(kind, cur.values), snapshotOf(kind, next));
    if (cur.created_by_this) {
      // Rows merging into a record this import created: all of them are merges.
      result.set(g.rowNos[0]!, { result: "merged", reason: "" });
      for (const x of g.rowNos.slice(1)) result.set(x, { result: "merged", reason: "" });
      merged += g.rowNos.length;
      if (changes.length) updates.push({ cur, next, rowNos: g.rowNos, changes });
      continue;
    }
    if (!changes.length) {
      settle(g.rowNos, "unchanged");
      continue;
    }
    updates.push({ cur, next, rowNos: g.rowNos, changes });
    settle(g.rowNos, "updated");
  }

  if (!job.dry_run) {
    await writeCreates(sql, a, job, creates);
    await writeUpdates(sql, a, job, updates);
  }

  // Each row's result, and the job's progress.
  // Only what is read later is written back: failed rows (the errors) and, on a dry run, the
  // rows that would create a record (later batches merge into them). A million UPDATEs of rows
  // that went well would double the import's writes.
  const keyOf = new Map<number, string>();
  if (job.dry_run) for (const [k, g] of groups) keyOf.set(g.rowNos[0]!, k);
  const nos = [...result.keys()].filter((k) => result.get(k)!.result === "failed" || (keyOf.has(k) && result.get(k)!.result === "created"));
  if (nos.length) await sql.query(
    `UPDATE rec_import_rows r SET result = x.result, reason = x.reason, match_key = x.match_key
     FROM unnest($2::bigint[], $3::text[], $4::text[], $5::text[]) AS x (row_no, result, reason, match_key)
     WHERE r.import_id = $1 AND r.row_no = x.row_no AND r.row_no = ANY($2::bigint[])`,
    [job.id, nos, nos.map((k) => result.get(k)!.result), nos.map((k) => result.get(k)!.reason), nos.map((k) => keyOf.get(k) ?? "")],
  );
  const tally = new Map<string, number>();
  for (const x of result.values()) tally.set(x.result, (tally.get(x.result) ?? 0) + 1);
  const count = (what: string) => tally.get(what) ?? 0;
  const next = from + BigInt(rows.length);
  const finished = rows.length < size || next >= BigInt(job.total_rows);
  await sql.query(
    `UPDATE rec_imports SET next_row = $2, created_count = created_count + $3, updated_count = updated_count + $4, merged_count = merged_count + $5,
            unchanged_count = unchanged_count + $6, failed_count = failed_count + $7,
            state = CASE WHEN $8 THEN 'succeeded' ELSE state END, ended_at = CASE WHEN $8 THEN now() ELSE ended_at END,
            lease_token = CASE WHEN $8 THEN NULL ELSE lease_token END, lease_until = CASE WHEN $8 THEN NULL ELSE lease_until END
     WHERE id = $1`,
    [job.id, next.toString(), count("created"), count("updated"), merged, count("unchanged"), count("failed"), finished],
  );
  // The written tables' statistics, as the job's rows pass 1,000, 2,000, 4,000, … (migration 350:
  // statistics from before the import planned its row-level security checks badly).
  if (!job.dry_run && analyzeStep(next) > analyzeStep(from)) await sql.query("SELECT crm_import_analyze($1)", [kind]);
}

/** Which doubling of 1,000 rows `n` has reached (-1 below 1,000). */
export const analyzeStep = (n: bigint) => (n < 1000n ? -1 : Math.floor(Math.log2(Number(n) / 1000)));

/** The stored records the match values name, with what an import writes of them. */
async function findMatches(sql: Sql, job: ImportRow, keys: string[]): Promise<Map<string, Current>> {
  const out = new Map<string, Current>();
  if (!keys.length) return out;
  const kind = job.object_type;
  const cols = {
    person: "t.first_name, t.last_name, t.emails, t.phones, t.job_title",
    company: "t.name, t.domain, t.address, t.industry, t.size, t.tags",
    deal: "t.name, t.pipeline_id, t.stage_id, t.status, t.amount_minor::text AS amount_minor, t.currency_code, to_char(t.expected_close_date, 'YYYY-MM-DD') AS expected_close_date, t.rec_company_id AS company_id",
  }[kind];
  // E-mails and domains: the batch's values drive the join, one unique-index probe each, whatever
  // the statistics say. (Joined from the table side, statistics taken while the tenant had no
  // records made PostgreSQL scan every e-mail of the tenant for every person of it: 10,000
  // people in, a batch outran the query timeout and the job stalled.)
  let from: string;
  if (job.match_by === "emails") from = "unnest($1::text[]) AS k(k) JOIN rec_person_emails e ON e.address_lower = k.k JOIN rec_people t ON t.id = e.person_id";
  else if (job.match_by === "domain") from = "unnest($1::text[]) AS k(k) JOIN rec_companies t ON t.domain = k.k AND t.domain <> ''";
  else from = `${tableOf(kind)} t CROSS JOIN LATERAL (SELECT t.custom ->> ${sql.escapeLiteral(job.match_by.slice(7))} AS k) k WHERE k.k = ANY($1::text[])`;
  const { rows } = await sql.query<Record<string, unknown> & { k: string; id: string; owner_id: string; version: string; custom: JsonObject; mine: boolean }>(
    `SELECT k.k, t.id, t.owner_id, t.version, t.custom, ${cols},
            EXISTS (SELECT 1 FROM rec_import_records ir WHERE ir.import_id = $2 AND ir.record_id = t.id AND ir.action = 'created') AS mine
     FROM ${from} FOR UPDATE OF t`,
    [keys, job.id],
  );
  for (const r of rows) {
    const values: RowValues = { custom: r.custom };
    for (const c of colsOf(kind)) {
      const x = r[c];
      if (x !== null && x !== undefined && x !== "") (values as unknown as Record<string, unknown>)[c] = x;
    }
    if (Array.isArray(values.emails) && !values.emails.length) delete values.emails;
    if (Array.isArray(values.phones) && !values.phones.length) delete values.phones;
    if (Array.isArray(values.tags) && !values.tags.length) delete values.tags;
    out.set(r.k, { id: r.id, owner_id: r.owner_id, version: r.version, values, created_by_this: r.mine });
  }
  return out;
}

/**
 * Groups whose other unique values (a person's further e-mail addresses, a company's domain when
 * matched by an external id) belong to another record: they fail with the reason.
 */
async function otherOwners(sql: Sql, kind: ImportKind, job: ImportRow, groups: { rowNos: number[]; values: RowValues }[]): Promise<Map<object, string>> {
  const out = new Map<object, string>();
  const want: { g: object; value: string; self: string }[] = [];
  for (const g of groups) {
    if (kind === "person") for (const e of g.values.emails ?? []) want.push({ g, value: emailKey(e), self: job.match_by === "emails" ? emailKey(g.values.emails![0]!) : "" });
    else if (g.values.domain && job.match_by !== "domain") want.push({ g, value: g.values.domain, self: "" });
  }
  if (!want.length) return out;
  const sqlText = kind === "person"
    ? "SELECT e.address_lower AS v, e.person_id AS id FROM unnest($1::text[]) AS k(k) JOIN rec_person_emails e ON e.address_lower = k.k"
    : "SELECT c.domain AS v, c.id FROM unnest($1::text[]) AS k(k) JOIN rec_companies c ON c.domain = k.k AND c.domain <> ''";
  const { rows } = await sql.query<{ v: string; id: string }>(sqlText, [[...new Set(want.map((w) => w.value))]]);
  const holder = new Map(rows.map((r) => [r.v, r.id]));
  // Who the group's own record is: the holder of its match value.
  const ownOf = (w: { self: string }) => (w.self ? holder.get(w.self) : undefined);
  // Within the batch: one value in two groups.
  const seen = new Map<string, object>();
  for (const w of want) {
    const h = holder.get(w.value);
    if (h && h !== ownOf(w) && !out.has(w.g)) out.set(w.g, `${kind === "person" ? "emails" : "domain"}: ${w.value} belongs to ${kind} ${h} already`);
    const s = seen.get(w.value);
    if (s && s !== w.g && !out.has(w.g)) out.set(w.g, `${kind === "person" ? "emails" : "domain"}: ${w.value} is in another row of the file with a different ${job.match_by}`);
    seen.set(w.value, w.g);
  }
  return out;
}

const recordJson = (kind: ImportKind, id: string, v: RowValues) => {
  const o: Record<string, unknown> = { id, custom: v.custom };
  for (const c of colsOf(kind)) o[c] = (v as unknown as Record<string, unknown>)[c] ?? null;
  return o;
};

async function writeCreates(sql: Sql, a: Acting, job: ImportRow, creates: { id: string; values: RowValues }[]): Promise<void> {
  if (!creates.length) return;
  const kind = job.object_type;
  const positions = kind === "deal" ? await placeNewDeals(sql, creates) : undefined;
  const data = JSON.stringify(creates.map((c) => ({ ...recordJson(kind, c.id, c.values), ...(positions ? { position: positions.get(c.id) } : {}) })));
  // A created person or company is what the batch wrote, at the transaction's time: its event
  // carries it as is (no read back of thousands of records); a deal is read back (its board fields).
  const at = kind === "deal" ? undefined : (await sql.query<{ now: Date }>("SELECT now()")).rows[0]!.now;
  const created: PendingChange[] = creates.map((c) => ({ kind, recordId: c.id, action: "created", changes: diff({}, snapshotOf(kind, c.values)), record: at && createdRecord(kind, a, c.id, c.values, at) }));
  if (kind === "person") {
    await sql.query(
      `INSERT INTO rec_people (id, company_id, first_name, last_name, emails, phones, job_title, owner_id, custom)
       SELECT x.id, $1, coalesce(x.first_name, ''), coalesce(x.last_name, ''), coalesce(x.emails, '{}'), coalesce(x.phones, '{}'), coalesce(x.job_title, ''), $2, x.custom
       FROM jsonb_to_recordset($3::jsonb) AS x (id uuid, first_name text, last_name text, emails text[], phones text[], job_title text, custom jsonb)`,
      [a.companyId, a.userId, data],
    );
    await sql.query(
      `INSERT INTO rec_person_emails (company_id, address_lower, person_id)
       SELECT $1, lower(e), x.id FROM jsonb_to_recordset($2::jsonb) AS x (id uuid, emails text[]), unnest(x.emails) AS e`,
      [a.companyId, data],
    );
  } else if (kind === "deal") {
    await insertDeals(sql, a, data);
  } else {
    await sql.query(
      `INSERT INTO rec_companies (id, company_id, name, domain, address, industry, size, tags, owner_id, custom)
       SELECT x.id, $1, x.name, coalesce(x.domain, ''), coalesce(x.address, ''), coalesce(x.industry, ''), x.size, coalesce(x.tags, '{}'), $2, x.custom
       FROM jsonb_to_recordset($3::jsonb) AS x (id uuid, name text, domain text, address text, industry text, size integer, tags text[], custom jsonb)`,
      [a.companyId, a.userId, data],
    );
  }
  await sql.query(
    `INSERT INTO rec_timeline (company_id, object_type, record_id, action, actor_type, actor_id, changes)
     SELECT $1, $2, x.id, 'created', 'import', $3, x.changes FROM jsonb_to_recordset($4::jsonb) AS x (id uuid, changes jsonb)`,
    [a.companyId, kind, job.id, JSON.stringify(created.map((c) => ({ id: c.recordId, changes: c.changes })))],
  );
  await sql.query(
    "INSERT INTO rec_import_records (company_id, import_id, record_id, action, version_after) SELECT $1, $2, unnest($3::uuid[]), 'created', 1",
    [a.companyId, job.id, creates.map((c) => c.id)],
  );
  for (const c of created) a.pending.push(c);
}

async function writeUpdates(sql: Sql, a: Acting, job: ImportRow, updates: { cur: Current; next: RowValues; changes: ReturnType<typeof diff> }[]): Promise<void> {
  if (!updates.length) return;
  const kind = job.object_type;
  const data = JSON.stringify(updates.map((u) => recordJson(kind, u.cur.id, u.next)));
  if (kind === "person") {
    await sql.query(
      `UPDATE rec_people p SET first_name = coalesce(x.first_name, ''), last_name = coalesce(x.last_name, ''), emails = coalesce(x.emails, '{}'),
              phones = coalesce(x.phones, '{}'), job_title = coalesce(x.job_title, ''), custom = x.custom, version = p.version + 1, updated_at = now()
       FROM jsonb_to_recordset($1::jsonb) AS x (id uuid, first_name text, last_name text, emails text[], phones text[], job_title text, custom jsonb)
       WHERE p.id = x.id`,
      [data],
    );
    await sql.query(
      `INSERT INTO rec_person_emails (company_id, address_lower, person_id)
       SELECT $1, lower(e), x.id FROM jsonb_to_recordset($2::jsonb) AS x (id uuid, emails text[]), unnest(x.emails) AS e
       ON CONFLICT DO NOTHING`,
      [a.companyId, data],
    );
  } else if (kind === "deal") {
    await updateDeals(sql, data);
  } else {
    await sql.query(
      `UPDATE rec_companies c SET name = x.name, domain = coalesce(x.domain, ''), address = coalesce(x.address, ''), industry = coalesce(x.industry, ''),
              size = x.size, tags = coalesce(x.tags, '{}'), custom = x.custom, version = c.version + 1, updated_at = now()
       FROM jsonb_to_recordset($1::jsonb) AS x (id uuid, name text, domain text, address text, industry text, size integer, tags text[], custom jsonb)
       WHERE c.id = x.id`,
      [data],
    );
  }
  await sql.query(
    `INSERT INTO rec_timeline (company_id, object_type, record_id, action, actor_type, actor_id, changes)
     SELECT $1, $2, x.id, 'updated', 'import', $3, x.changes FROM jsonb_to_recordset($4::jsonb) AS x (id uuid, changes jsonb)`,
    [a.companyId, kind, job.id, JSON.stringify(updates.map((u) => ({ id: u.cur.id, changes: u.changes })))],
  );
  for (const u of updates) a.pending.push({ kind, recordId: u.cur.id, action: "updated", changes: u.changes });
  // The values before the import's first change of each record (undo restores them).
  await sql.query(
    `INSERT INTO rec_import_records (company_id, import_id, record_id, action, before, version_after)
     SELECT $1, $2, x.id, 'updated', x.before, x.version FROM jsonb_to_recordset($3::jsonb) AS x (id uuid, before jsonb, version bigint)
     ON CONFLICT (import_id, record_id) DO UPDATE SET version_after = EXCLUDED.version_after`,
    [a.companyId, job.id, JSON.stringify(updates.map((u) => ({ id: u.cur.id, before: recordJson(kind, u.cur.id, u.cur.values), version: Number(u.cur.version) + 1 })))],
  );
}

/** A record as this import creates it (the same columns the INSERTs write), for its change event. */
function createdRecord(kind: ImportKind, a: Acting, id: string, v: RowValues, at: Date) {
  const common = { id, owner_id: a.userId, custom: v.custom, version: "1", created_at: at, updated_at: at, deleted_at: null };
  if (kind === "person") {
    return recordSnapshot("person", toPerson({ ...common, first_name: v.first_name ?? "", last_name: v.last_name ?? "", emails: v.emails ?? [], phones: v.phones ?? [], job_title: v.job_title ?? "", companies: [] }));
  }
  return recordSnapshot("company", toCompany({ ...common, name: v.name!, domain: v.domain ?? "", address: v.address ?? "", industry: v.industry ?? "", size: v.size ?? null, tags: v.tags ?? [], assignee_id: null }));
}

/** UndoImport's work: created records to the trash, updated ones back to their values before (unless changed since). */
async function undo(sql: Sql, a: Acting, job: ImportRow): Promise<{ trashedCount: bigint; restoredCount: bigint; skippedCount: bigint }> {
  const kind = job.object_type;
  const table = tableOf(kind);
  const trashed = await sql.query<{ id: string }>(
    `UPDATE ${table} t SET deleted_at = now(), version = t.version + 1, updated_at = now()
     FROM rec_import_records ir WHERE ir.import_id = $1 AND ir.action = 'created' AND ir.record_id = t.id AND t.deleted_at IS NULL RETURNING t.id`,
    [job.id],
  );
  if (trashed.rows.length) {
    await sql.query(
      `INSERT INTO rec_timeline (company_id, object_type, record_id, action, actor_type, actor_id, changes)
       SELECT $1, $2, unnest($3::uuid[]), 'deleted', 'import', $4, '[]'::jsonb`,
      [a.companyId, kind, trashed.rows.map((r) => r.id), job.id],
    );
    for (const r of trashed.rows) a.pending.push({ kind, recordId: r.id, action: "deleted", changes: [] });
  }
  const { rows: olds } = await sql.query<{ record_id: string; before: Record<string, unknown>; same: boolean }>(
    `SELECT ir.record_id, ir.before, t.version = ir.version_after AS same FROM rec_import_records ir JOIN ${table} t ON t.id = ir.record_id
     WHERE ir.import_id = $1 AND ir.action = 'updated' FOR UPDATE OF t`,
    [job.id],
  );
  const restore = olds.filter((o) => o.same);
  if (restore.length) {
    const data = JSON.stringify(restore.map((o) => o.before));
    if (kind === "person") {
      await sql.query(
        `DELETE FROM rec_person_emails e USING jsonb_to_recordset($1::jsonb) AS x (id uuid) WHERE e.person_id = x.id`,
        [data],
      );
      await sql.query(
        `UPDATE rec_people p SET first_name = coalesce(x.first_name, ''), last_name = coalesce(x.last_name, ''), emails = coalesce(x.emails, '{}'),
                phones = coalesce(x.phones, '{}'), job_title = coalesce(x.job_title, ''), custom = x.custom, version = p.version + 1, updated_at = now()
         FROM jsonb_to_recordset($1::jsonb) AS x (id uuid, first_name text, last_name text, emails text[], phones text[], job_title text, custom jsonb) WHERE p.id = x.id`,
        [data],
      );
      await sql.query(
        `INSERT INTO rec_person_emails (company_id, address_lower, person_id)
         SELECT $1, lower(e), x.id FROM jsonb_to_recordset($2::jsonb) AS x (id uuid, emails text[]), unnest(x.emails) AS e ON CONFLICT DO NOTHING`,
        [a.companyId, data],
      );
    } else if (kind === "deal") {
      await updateDeals(sql, data);
    } else {
      await sql.query(
        `UPDATE rec_companies c SET name = x.name, domain = coalesce(x.domain, ''), address = coalesce(x.address, ''), industry = coalesce(x.industry, ''),
                size = x.size, tags = coalesce(x.tags, '{}'), custom = x.custom, version = c.version + 1, updated_at = now()
         FROM jsonb_to_recordset($1::jsonb) AS x (id uuid, name text, domain text, address text, industry text, size integer, tags text[], custom jsonb) WHERE c.id = x.id`,
        [data],
      );
    }
    await sql.query(
      `INSERT INTO rec_timeline (company_id, object_type, record_id, action, actor_type, actor_id, changes)
       SELECT $1, $2, unnest($3::uuid[]), 'updated', 'import', $4, '[]'::jsonb`,
      [a.companyId, kind, restore.map((o) => o.record_id), job.id],
    );
    for (const o of restore) a.pending.push({ kind, recordId: o.record_id, action: "updated", changes: [] });
  }
  return { trashedCount: BigInt(trashed.rows.length), restoredCount: BigInt(restore.length), skippedCount: BigInt(olds.length - restore.length) };
}

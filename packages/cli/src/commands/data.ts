/**
 * crm export OBJECT (CSV to stdout or --output) and crm import FILE (a job: create, upload, map,
 * run with a progress bar, per-row results), plus crm imports list|show|errors|cancel|undo.
 */
import { once } from "node:events";
import { createReadStream, createWriteStream } from "node:fs";
import { stat } from "node:fs/promises";
import { basename } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { toJson } from "@bufbuild/protobuf";
import { durationMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { Presets, SingleBar } from "cli-progress";
import type { Command } from "commander";
import { ExportService } from "@crm/gen/crm/records/v1/export_pb";
import { ImportMode, ImportSchema, ImportService, ImportState, type Import } from "@crm/gen/crm/records/v1/import_pb";
import type { Context, Wrap } from "../context.js";
import { CliError, Exit, unwrap, usageError } from "../errors.js";
import { parseFilters } from "../filter.js";
import { list as names, pairs, table } from "../format.js";
import { buildMapping } from "../mapping.js";
import { objectName, objectTypes } from "../objects.js";
import { collect } from "./records.js";

const CHUNK = 64 * 1024;
const modes: Record<string, ImportMode> = { create: ImportMode.CREATE_ONLY, update: ImportMode.UPDATE_ONLY, upsert: ImportMode.UPSERT };
const ended = new Set([ImportState.SUCCEEDED, ImportState.FAILED, ImportState.CANCELLED, ImportState.UNDONE]);
export const stateName = (s: ImportState) => (ImportState[s] ?? "UNSPECIFIED").toLowerCase().replace(/_/g, " ");

export function registerData(program: Command, act: Wrap) {
  program
    .command("export")
    .description("export a list as CSV (UTF-8 with BOM; custom fields as columns): crm export deals > deals.csv")
    .argument("<object>", "companies, people or deals")
    .option("-f, --filter <expr>", 'a condition, e.g. "status=won" (repeat: all must hold; crm filters)', collect, [])
    .option("-c, --columns <names>", "columns by API name, comma-separated (default: every field)")
    .option("--order-by <fields>", 'e.g. "amount_minor desc"')
    .option("--view <id>", "a saved view's filter, order and columns")
    .option("--deleted", "include records in the trash")
    .option("-o, --output <file>", "write to this file instead of standard output")
    .action(act(exportRecords));

  program
    .command("import")
    .description("import a CSV file (`,` `;` or tab; UTF-8 or Windows-1251) into people or companies")
    .argument("<file>", "the CSV file; its first row is the header")
    .requiredOption("--object <object>", "people or companies")
    .option("-m, --map <column=field>", 'map a column (header or #N) to a field, e.g. "E-mail=emails"; "col=" skips it (repeat)', collect, [])
    .option("--no-suggest", "map only what --map says (default: start from the server's suggestion from the headers)")
    .option("--mode <mode>", "create, update or upsert", "upsert")
    .option("--match-by <field>", 'what finds an existing record: "emails" (people), "domain" (companies) or a custom field custom.<key>')
    .option("--dry-run", "report what would happen, write nothing")
    .option("--errors <file>", "write the failed rows (as they were, plus a reason column) to this CSV file")
    .option("--no-wait", "start the import and print its id without waiting for the end")
    .action(act(importFile))
    .addHelpText("after", "\nExit code 4 when some rows failed (the others are imported), 1 when the job failed or was cancelled.\n");

  const imports = program.command("imports").description("import jobs");
  imports.command("list").description("your company's imports, newest first").action(act(listImports));
  imports.command("show").argument("<id>").description("an import's state and counts").action(act(showImport));
  imports.command("errors").argument("<id>").description("the failed rows as CSV (as they were, plus a reason)").option("-o, --output <file>", "write to this file").action(act(importErrors));
  imports.command("cancel").argument("<id>").description("stop an import after its current batch").action(act(cancelImport));
  imports.command("undo").argument("<id>").description("take an import back (within 24 hours of its end)").action(act(undoImport));
}

/** Writes a stream of byte chunks to `file` or stdout, waiting when the reader is slower. */
async function writeChunks(ctx: Context, file: string | undefined, chunks: AsyncIterable<Uint8Array>): Promise<void> {
  const out = file ? createWriteStream(file) : ctx.io.stdout;
  try {
    for await (const data of chunks) if (data.length && !out.write(data)) await once(out, "drain");
  } finally {
    if (file) await new Promise<void>((resolve, reject) => (out as ReturnType<typeof createWriteStream>).end((e?: Error | null) => (e ? reject(e) : resolve())));
  }
}

async function exportRecords(ctx: Context, objectText: string, opts: { filter: string[]; columns?: string; orderBy?: string; view?: string; deleted?: boolean; output?: string }): Promise<number> {
  const object = objectName(objectText);
  const filter = parseFilters(opts.filter);
  const api = await ctx.connect();
  const stream = api.client(ExportService).exportRecords({
    objectType: objectTypes[object],
    ...(filter ? { filter } : {}),
    orderBy: opts.orderBy ?? "",
    columns: opts.columns ? names(opts.columns) : [],
    showDeleted: Boolean(opts.deleted),
    viewId: opts.view ?? "",
  });
  let rows = 0n;
  const live = ctx.io.stderr.isTTY && !ctx.json;
  await writeChunks(
    ctx,
    opts.output,
    (async function* () {
      for await (const m of stream) {
        rows = m.rows;
        if (live) ctx.io.stderr.write(`\rexported ${rows} rows`);
        yield m.data;
      }
    })(),
  );
  if (live) ctx.io.stderr.write("\r\x1b[K");
  if (ctx.json) ctx.note(JSON.stringify({ object, rows: Number(rows), ...(opts.output ? { file: opts.output } : {}) }));
  else ctx.note(`${rows} ${object} exported${opts.output ? ` to ${opts.output}` : ""}.`);
  return Exit.ok;
}

function summary(imp: Import): string {
  const would = imp.dryRun ? "would be " : "";
  return `${imp.dryRun ? "Dry run: " : ""}${imp.rowsDone} of ${imp.totalRows} rows: ${imp.createdCount} ${would}created, ${imp.updatedCount} ${would}updated, ${imp.mergedCount} merged, ${imp.unchangedCount} unchanged, ${imp.failedCount} ${imp.dryRun ? "would fail" : "failed"}.`;
}

function exitOf(imp: Import): number {
  if (imp.state === ImportState.SUCCEEDED) return imp.failedCount > 0n ? Exit.partial : Exit.ok;
  return Exit.error;
}

async function importFile(ctx: Context, file: string, opts: { object: string; map: string[]; suggest: boolean; mode: string; matchBy?: string; dryRun?: boolean; errors?: string; wait: boolean }): Promise<number> {
  const object = objectName(opts.object, ["people", "companies"]);
  const mode = modes[opts.mode.toLowerCase()];
  if (mode === undefined) throw usageError(`--mode ${JSON.stringify(opts.mode)}: use create, update or upsert`);
  const size = (await stat(file)).size; // a missing file ends here, before anything is created
  const api = await ctx.connect();
  const imports = api.client(ImportService);
  const created = await imports.createImport({ import: { objectType: objectTypes[object], fileName: basename(file), mode, matchBy: opts.matchBy ?? "" } });
  const id = created.import!.id;
  const quiet = ctx.json;
  if (!quiet) ctx.note(`Import ${id}: uploading ${file} (${size} bytes)…`);
  const uploaded = await imports.uploadImport(
    (async function* () {
      let first = true;
      for await (const data of createReadStream(file, { highWaterMark: CHUNK })) {
        yield { importId: first ? id : "", data: data as Buffer };
        first = false;
      }
      if (first) yield { importId: id, data: new Uint8Array() };
    })(),
  );
  const ready = uploaded.import!;
  const mapping = buildMapping(ready.columns, ready.suggestedMapping, opts.map, opts.suggest);
  if (mapping.length === 0) throw usageError(`no column of ${file} is mapped to a field: give --map COLUMN=FIELD (its columns: ${ready.columns.map((c) => JSON.stringify(c)).join(", ")})`);
  if (!quiet) {
    const mapped = new Map(mapping.map((m) => [m.column, m.field]));
    ctx.note(`${ready.totalRows} rows (${ready.encoding}, delimiter ${JSON.stringify(ready.delimiter)}); columns:`);
    ctx.note(pairs(ready.columns.map((c, i) => [`  #${i + 1} ${c}`, mapped.has(i) ? `→ ${mapped.get(i)}` : "(not imported)"])).trimEnd());
  }
  let imp = (await imports.startImport({ id, mapping, dryRun: Boolean(opts.dryRun) })).import!;
  if (!opts.wait) {
    if (ctx.json) ctx.out(`${JSON.stringify(toJson(ImportSchema, imp))}\n`);
    else ctx.note(`Started; follow it with: crm imports show ${id}`);
    return Exit.ok;
  }
  imp = await follow(ctx, id, imp);
  if (imp.failedCount > 0n && opts.errors) await writeChunks(ctx, opts.errors, errorChunks(ctx, id));
  return report(ctx, imp, opts.errors);
}

/** Watches the import to its end with a progress bar on a terminal; reconnects if the stream breaks. */
async function follow(ctx: Context, id: string, start: Import): Promise<Import> {
  const imports = (await ctx.connect()).client(ImportService);
  const bar = ctx.io.stderr.isTTY && !ctx.json ? new SingleBar({ stream: ctx.io.stderr as NodeJS.WriteStream, format: "{bar} {percentage}% | {value}/{total} rows | {speed} rows/s | {left} left", hideCursor: true, etaBuffer: 20 }, Presets.shades_classic) : undefined;
  let imp = start;
  const show = (i: Import) => {
    if (!bar) return;
    const total = Math.max(1, Number(i.totalRows));
    const payload = { speed: Math.round(i.rowsPerSecond), left: i.timeLeft ? `${Math.ceil(durationMs(i.timeLeft) / 1000)} s` : "?" };
    if (!bar.isActive) bar.start(total, Number(i.rowsDone), payload);
    else bar.update(Number(i.rowsDone), payload);
  };
  show(imp);
  let failures = 0;
  try {
    while (!ended.has(imp.state)) {
      try {
        for await (const m of imports.watchImport({ id })) {
          if (m.import) show((imp = m.import));
          failures = 0;
        }
        if (!ended.has(imp.state)) imp = (await imports.getImport({ id })).import ?? imp;
      } catch (e) {
        if (unwrap(e) instanceof CliError) throw unwrap(e); // e.g. the session ended: exit 3
        const err = ConnectError.from(e);
        if (err.code !== Code.Unavailable && err.code !== Code.Unknown && err.code !== Code.Internal) throw err;
        const wait = Math.min(10_000, 500 * 2 ** failures++);
        ctx.note(`crm: lost the import's progress stream (${err.rawMessage}); the import goes on, reconnecting in ${(wait / 1000).toFixed(1)} s`);
        await delay(wait);
      }
    }
  } finally {
    bar?.stop();
  }
  return imp;
}

async function* errorChunks(ctx: Context, id: string): AsyncIterable<Uint8Array> {
  for await (const m of (await ctx.connect()).client(ImportService).getImportErrors({ id })) yield m.data;
}

/** The end of an import: counts, the first failed rows, the exit code. */
async function report(ctx: Context, imp: Import, errorsFile?: string): Promise<number> {
  if (ctx.json) {
    ctx.out(`${JSON.stringify(toJson(ImportSchema, imp))}\n`);
    return exitOf(imp);
  }
  if (imp.state === ImportState.FAILED) throw new CliError(`import ${imp.id} failed: ${imp.error || "no reason given"}`);
  if (imp.state !== ImportState.SUCCEEDED) {
    ctx.note(`Import ${imp.id} ${stateName(imp.state)}. ${summary(imp)}`);
    return exitOf(imp);
  }
  ctx.note(summary(imp));
  if (imp.failedCount > 0n) {
    const r = await (await ctx.connect()).client(ImportService).listImportErrors({ id: imp.id, pageSize: 20 });
    ctx.out(table(["ROW", "REASON"], r.errors.map((e) => [String(e.rowNumber), e.reason])));
    if (imp.failedCount > BigInt(r.errors.length)) ctx.note(`… ${imp.failedCount - BigInt(r.errors.length)} more.`);
    ctx.note(errorsFile ? `The failed rows are in ${errorsFile}.` : `All failed rows as CSV: crm imports errors ${imp.id} > errors.csv`);
  }
  if (imp.dryRun) ctx.note(`Nothing was written. To run it for real, repeat without --dry-run.`);
  return exitOf(imp);
}

async function listImports(ctx: Context): Promise<number> {
  const r = await (await ctx.connect()).client(ImportService).listImports({ pageSize: 100 });
  if (ctx.json) ctx.out(`${JSON.stringify(r.imports.map((i) => toJson(ImportSchema, i)))}\n`);
  else ctx.out(table(["ID", "FILE", "STATE", "ROWS", "FAILED", "DRY RUN"], r.imports.map((i) => [i.id, i.fileName, stateName(i.state), `${i.rowsDone}/${i.totalRows}`, String(i.failedCount), i.dryRun ? "yes" : ""])));
  return Exit.ok;
}

async function showImport(ctx: Context, id: string): Promise<number> {
  const imp = (await (await ctx.connect()).client(ImportService).getImport({ id })).import!;
  if (ctx.json) ctx.out(`${JSON.stringify(toJson(ImportSchema, imp))}\n`);
  else ctx.out(pairs([["id", imp.id], ["file", imp.fileName], ["state", stateName(imp.state)], ["progress", summary(imp)], ...(imp.error ? [["error", imp.error] as [string, string]] : [])]));
  return Exit.ok;
}

async function importErrors(ctx: Context, id: string, opts: { output?: string }): Promise<number> {
  await writeChunks(ctx, opts.output, errorChunks(ctx, id));
  return Exit.ok;
}

async function cancelImport(ctx: Context, id: string): Promise<number> {
  const imp = (await (await ctx.connect()).client(ImportService).cancelImport({ id })).import!;
  if (ctx.json) ctx.out(`${JSON.stringify(toJson(ImportSchema, imp))}\n`);
  else ctx.note(`Import ${id}: ${stateName(imp.state)}.`);
  return Exit.ok;
}

async function undoImport(ctx: Context, id: string): Promise<number> {
  const r = await (await ctx.connect()).client(ImportService).undoImport({ id });
  if (ctx.json) ctx.out(`${JSON.stringify({ import: toJson(ImportSchema, r.import!), trashed: Number(r.trashedCount), restored: Number(r.restoredCount), skipped: Number(r.skippedCount) })}\n`);
  else ctx.note(`Import ${id} undone: ${r.trashedCount} records to the trash, ${r.restoredCount} restored, ${r.skippedCount} changed since and left alone.`);
  return Exit.ok;
}

/**
 * Importing people or companies from a CSV file (ImportService; a chunk of its own): the file goes
 * to `/imports/<id>/file` as it is (the server detects the encoding and the delimiter), the
 * server's suggested mapping is shown per column and can be changed, a dry run reports what would
 * be created, updated or fail, the real run shows its live progress (WatchImport), failed rows can
 * be read and downloaded as the server's error file, and a finished run can be undone.
 * Also the lists' "Export CSV" (ExportService: the list's filter, order and columns).
 */
import { useEffect, useId, useRef, useState } from "react";
import { Link, useLocation, useSearch } from "wouter";
import { createClient } from "@connectrpc/connect";
import { ImportMode, ImportService, ImportState, type ColumnMapping, type Import, type ImportError } from "@crm/gen/crm/records/v1/import_pb";
import { ObjectType } from "@crm/gen/crm/records/v1/common_pb";
import { transport } from "../../session";
import { useI18n } from "../../i18n";
import { describeError } from "../../errors";
import { useFields } from "./custom";

const imports = createClient(ImportService, transport);

const enWords = {
  "importPeople": "Import people",
  "importCompanies": "Import companies",
  "importDeals": "Import deals",
  "intro": "A CSV file with a header row: UTF-8 (with or without BOM) or Windows-1251; comma, semicolon or tab.",
  "file": "CSV file",
  "mode": "Mode",
  "upsert": "Create new and update matching",
  "createOnly": "Create only",
  "updateOnly": "Update only",
  "upload": "Upload",
  "mapping": "Columns",
  "column": "Column in the file",
  "sample": "First value",
  "field": "Field",
  "skip": "— skip —",
  "rowsInFile": "{rows} rows, {encoding}, delimiter “{delimiter}”.",
  "dryRun": "Dry run",
  "run": "Import",
  "runAgain": "Import for real",
  "state": "State",
  "progress": "Progress",
  "rowsDone": "{done} of {total} rows",
  "speed": "{rate} rows/s, about {left} s left",
  "created": "Created",
  "updated": "Updated",
  "merged": "Merged",
  "unchanged": "Unchanged",
  "failed": "Failed",
  "wouldCreate": "Would create",
  "wouldUpdate": "Would update",
  "wouldMerge": "Would merge",
  "wouldFail": "Would fail",
  "dryRunResult": "Dry run: nothing was written.",
  "errors": "Rows that failed",
  "row": "Row",
  "reason": "Reason",
  "values": "Values",
  "downloadErrors": "Download the error file",
  "undo": "Undo the import",
  "undone": "Undone: {trashed} moved to the trash, {restored} restored, {skipped} changed since and left.",
  "undoUntil": "Can be undone until {when}.",
  "backToList": "Back to the list",
  "cancel": "Cancel",
  "s.awaiting": "waiting for the file",
  "s.ready": "ready",
  "s.queued": "queued",
  "s.running": "running",
  "s.succeeded": "finished",
  "s.failed": "failed",
  "s.cancelled": "cancelled",
  "s.undone": "undone",
  "export": "Export CSV",
  "exported": "Exported {rows} rows.",
};
type Word = keyof typeof enWords;
const ruWords: Record<Word, string> = {
  "importPeople": "Импорт людей",
  "importCompanies": "Импорт компаний",
  "importDeals": "Импорт сделок",
  "intro": "Файл CSV со строкой заголовков: UTF-8 (с BOM или без) или Windows-1251; запятая, точка с запятой или табуляция.",
  "file": "Файл CSV",
  "mode": "Режим",
  "upsert": "Создать новые и обновить совпавшие",
  "createOnly": "Только создать",
  "updateOnly": "Только обновить",
  "upload": "Загрузить",
  "mapping": "Столбцы",
  "column": "Столбец файла",
  "sample": "Первое значение",
  "field": "Поле",
  "skip": "— пропустить —",
  "rowsInFile": "Строк: {rows}, {encoding}, разделитель «{delimiter}».",
  "dryRun": "Пробный прогон",
  "run": "Импортировать",
  "runAgain": "Импортировать по-настоящему",
  "state": "Состояние",
  "progress": "Ход",
  "rowsDone": "{done} из {total} строк",
  "speed": "{rate} строк/с, осталось около {left} с",
  "created": "Создано",
  "updated": "Обновлено",
  "merged": "Объединено",
  "unchanged": "Без изменений",
  "failed": "С ошибкой",
  "wouldCreate": "Будет создано",
  "wouldUpdate": "Будет обновлено",
  "wouldMerge": "Будет объединено",
  "wouldFail": "Будет с ошибкой",
  "dryRunResult": "Пробный прогон: ничего не записано.",
  "errors": "Строки с ошибкой",
  "row": "Строка",
  "reason": "Причина",
  "values": "Значения",
  "downloadErrors": "Скачать файл ошибок",
  "undo": "Отменить импорт",
  "undone": "Отменено: {trashed} в корзину, {restored} восстановлено, {skipped} изменены после импорта и оставлены.",
  "undoUntil": "Можно отменить до {when}.",
  "backToList": "К списку",
  "cancel": "Отменить",
  "s.awaiting": "ждёт файл",
  "s.ready": "готов",
  "s.queued": "в очереди",
  "s.running": "идёт",
  "s.succeeded": "завершён",
  "s.failed": "ошибка",
  "s.cancelled": "отменён",
  "s.undone": "отменён откатом",
  "export": "Выгрузить CSV",
  "exported": "Выгружено строк: {rows}.",
};

export function useImportWords() {
  const i18n = useI18n();
  const dict = i18n.locale === "ru" ? ruWords : enWords;
  return { ...i18n, i18n, w: (key: Word, params?: Record<string, string | number>) => i18n.format(dict[key], params) };
}

const stateWord: Record<ImportState, Word> = {
  [ImportState.UNSPECIFIED]: "s.ready",
  [ImportState.AWAITING_UPLOAD]: "s.awaiting",
  [ImportState.READY]: "s.ready",
  [ImportState.QUEUED]: "s.queued",
  [ImportState.RUNNING]: "s.running",
  [ImportState.SUCCEEDED]: "s.succeeded",
  [ImportState.FAILED]: "s.failed",
  [ImportState.CANCELLED]: "s.cancelled",
  [ImportState.UNDONE]: "s.undone",
};
const ended = (s: ImportState) => s === ImportState.SUCCEEDED || s === ImportState.FAILED || s === ImportState.CANCELLED || s === ImportState.UNDONE;

const standardFields: Record<"person" | "company" | "deal", string[]> = {
  person: ["first_name", "last_name", "full_name", "emails", "phones", "job_title"],
  company: ["name", "domain", "address", "industry", "size", "tags"],
  // A deal's pipeline and stage by name, its amount in the currency's units, its company by domain.
  deal: ["name", "pipeline", "stage", "amount", "currency_code", "expected_close_date", "company_domain"],
};
const kinds = {
  person: { objectType: ObjectType.PERSON, listPath: "/people", title: "importPeople" },
  company: { objectType: ObjectType.COMPANY, listPath: "/companies", title: "importCompanies" },
  deal: { objectType: ObjectType.DEAL, listPath: "/deals/list", title: "importDeals" },
} as const;

/** Saves bytes as a file download. */
export function download(parts: BlobPart[], name: string) {
  const url = URL.createObjectURL(new Blob(parts, { type: "text/csv;charset=utf-8" }));
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

export function ImportScreen({ kind }: { kind: keyof typeof kinds }) {
  const words = useImportWords();
  const { w } = words;
  const id = useId();
  const { objectType, listPath } = kinds[kind];
  const fields = useFields(objectType);
  const [file, setFile] = useState<File>();
  const [mode, setMode] = useState(ImportMode.UPSERT);
  const [job, setJob] = useState<Import>();
  const [mapping, setMapping] = useState<ColumnMapping[]>([]);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();
  const [errors, setErrors] = useState<ImportError[]>([]);
  const [notice, setNotice] = useState<string>();
  const watching = useRef<AbortController | undefined>(undefined);
  const [, navigate] = useLocation();
  const search = useSearch();
  const importParam = new URLSearchParams(search).get("id");
  useEffect(() => () => watching.current?.abort(), []);

  const fieldOptions = [...standardFields[kind], ...fields.map((f) => `custom.${f.key}`)];
  for (const m of job?.suggestedMapping ?? []) if (m.field && !fieldOptions.includes(m.field)) fieldOptions.push(m.field);

  const guard = async (fn: () => Promise<void>) => {
    setBusy(true);
    setError(undefined);
    try {
      await fn();
    } catch (e) {
      setError(describeError(e, words.i18n));
    } finally {
      setBusy(false);
    }
  };

  const upload = () =>
    guard(async () => {
      if (!file) return;
      const created = await imports.createImport({ import: { objectType, fileName: file.name, mode } });
      const importId = created.import!.id;
      const res = await fetch(`/imports/${encodeURIComponent(importId)}/file`, { method: "POST", body: file, credentials: "include", headers: { "content-type": "text/csv" } });
      if (!res.ok) {
        const body = (await res.json().catch(() => ({}))) as { message?: string };
        throw new Error(body.message || `HTTP ${res.status}`);
      }
      await open(importId);
      // The job in the address: a reload or a later visit comes back to it (to undo it, say).
      navigate(`${listPath.replace(/\/list$/, "")}/import?id=${encodeURIComponent(importId)}`, { replace: true });
    });

  const open = async (importId: string) => {
    const got = (await imports.getImport({ id: importId })).import!;
    setJob(got);
    setErrors([]);
    setNotice(undefined);
    const chosen = got.mapping.length ? got.mapping : got.suggestedMapping;
    setMapping(got.columns.map((header, column) => ({ column, header, field: chosen.find((m) => m.column === column)?.field ?? "" }) as ColumnMapping));
    if (got.state === ImportState.QUEUED || got.state === ImportState.RUNNING || (ended(got.state) && got.failedCount > 0n)) await watch(importId);
  };
  useEffect(() => {
    if (importParam && importParam !== job?.id) void guard(() => open(importParam));
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [importParam]);

  const watch = async (importId: string) => {
    watching.current?.abort();
    const ctl = new AbortController();
    watching.current = ctl;
    let last: Import | undefined;
    for await (const r of imports.watchImport({ id: importId }, { signal: ctl.signal })) {
      last = r.import;
      setJob(r.import);
      if (r.import && ended(r.import.state)) break;
    }
    if (last && last.failedCount > 0n) {
      const e = await imports.listImportErrors({ id: importId, pageSize: 50 });
      setErrors(e.errors);
    } else setErrors([]);
  };

  const start = (dryRun: boolean) =>
    guard(async () => {
      if (!job) return;
      setNotice(undefined);
      const r = await imports.startImport({ id: job.id, dryRun, mapping: mapping.filter((m) => m.field) });
      setJob(r.import);
      await watch(job.id);
    });

  const downloadErrors = () =>
    guard(async () => {
      if (!job) return;
      const parts: Uint8Array[] = [];
      for await (const c of imports.getImportErrors({ id: job.id })) parts.push(c.data);
      download(parts as BlobPart[], `${job.fileName.replace(/\.csv$/i, "")}-errors.csv`);
    });

  const undo = () =>
    guard(async () => {
      if (!job) return;
      const r = await imports.undoImport({ id: job.id });
      setJob(r.import);
      setNotice(w("undone", { trashed: words.number(Number(r.trashedCount)), restored: words.number(Number(r.restoredCount)), skipped: words.number(Number(r.skippedCount)) }));
    });

  const running = job && (job.state === ImportState.QUEUED || job.state === ImportState.RUNNING);
  const finished = job && ended(job.state) && job.state !== ImportState.UNDONE;
  const n = (v: bigint) => words.number(Number(v));
  const counts = job && (job.dryRun ? ([["wouldCreate", job.createdCount], ["wouldUpdate", job.updatedCount], ["wouldMerge", job.mergedCount], ["unchanged", job.unchangedCount], ["wouldFail", job.failedCount]] as const) : ([["created", job.createdCount], ["updated", job.updatedCount], ["merged", job.mergedCount], ["unchanged", job.unchangedCount], ["failed", job.failedCount]] as const));
  const undoDeadline = job?.undoDeadline ? new Date(Number(job.undoDeadline.seconds) * 1000) : undefined;

  return (
    <section aria-labelledby={`${id}-title`} className="import">
      <div className="list-head">
        <h1 id={`${id}-title`}>{w(kinds[kind].title)}</h1>
        <Link href={listPath}>{w("backToList")}</Link>
      </div>
      <p className="hint">{w("intro")}</p>
      <form
        className="filters"
        onSubmit={(e) => {
          e.preventDefault();
          void upload();
        }}
      >
        <div className="field">
          <label htmlFor={`${id}-file`}>{w("file")}</label>
          <input id={`${id}-file`} type="file" accept=".csv,.txt,text/csv" onChange={(e) => setFile(e.target.files?.[0])} />
        </div>
        <div className="field">
          <label htmlFor={`${id}-mode`}>{w("mode")}</label>
          <select id={`${id}-mode`} value={mode} onChange={(e) => setMode(Number(e.target.value) as ImportMode)}>
            <option value={ImportMode.UPSERT}>{w("upsert")}</option>
            <option value={ImportMode.CREATE_ONLY}>{w("createOnly")}</option>
            <option value={ImportMode.UPDATE_ONLY}>{w("updateOnly")}</option>
          </select>
        </div>
        <button type="submit" disabled={!file || busy}>
          {w("upload")}
        </button>
      </form>
      {error && (
        <p role="alert" className="error">
          {error}
        </p>
      )}
      {job && job.columns.length > 0 && (
        <>
          <h2 id={`${id}-map`}>{w("mapping")}</h2>
          <p>{w("rowsInFile", { rows: n(job.totalRows), encoding: job.encoding, delimiter: job.delimiter === "\t" ? "Tab" : job.delimiter })}</p>
          <div className="table-wrap">
            <table className="entries" aria-labelledby={`${id}-map`}>
              <thead>
                <tr>
                  <th scope="col">{w("column")}</th>
                  <th scope="col">{w("sample")}</th>
                  <th scope="col">{w("field")}</th>
                </tr>
              </thead>
              <tbody>
                {mapping.map((m, i) => (
                  <tr key={m.column}>
                    <th scope="row">{m.header}</th>
                    <td>{job.sampleRows[0]?.cells[m.column] ?? ""}</td>
                    <td>
                      <select
                        aria-label={`${w("field")}: ${m.header}`}
                        value={m.field}
                        disabled={busy || running}
                        onChange={(e) => setMapping(mapping.map((x, j) => (j === i ? ({ ...x, field: e.target.value } as ColumnMapping) : x)))}
                      >
                        <option value="">{w("skip")}</option>
                        {fieldOptions.map((f) => (
                          <option key={f} value={f}>
                            {f}
                          </option>
                        ))}
                      </select>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          <div className="actions">
            <button type="button" className="secondary" onClick={() => void start(true)} disabled={busy || running || job.state === ImportState.UNDONE || (finished && !job.dryRun)}>
              {w("dryRun")}
            </button>
            <button type="button" onClick={() => void start(false)} disabled={busy || running || job.state === ImportState.UNDONE || (finished && !job.dryRun)}>
              {finished && job.dryRun ? w("runAgain") : w("run")}
            </button>
            {running && (
              <button type="button" className="secondary" onClick={() => void guard(async () => void (await imports.cancelImport({ id: job.id })))}>
                {w("cancel")}
              </button>
            )}
          </div>
        </>
      )}
      {job && job.state !== ImportState.READY && job.state !== ImportState.AWAITING_UPLOAD && (
        <section aria-labelledby={`${id}-progress`} className="import-progress">
          <h2 id={`${id}-progress`}>{w("progress")}</h2>
          <p role="status" data-state={ImportState[job.state]}>
            {w("state")}: {w(stateWord[job.state])}
            {job.dryRun && ended(job.state) ? ` — ${w("dryRunResult")}` : ""}
          </p>
          <progress max={Number(job.totalRows) || 1} value={Number(job.rowsDone)} aria-label={w("progress")} />
          <p>
            {w("rowsDone", { done: n(job.rowsDone), total: n(job.totalRows) })}
            {running && job.rowsPerSecond > 0 ? ` · ${w("speed", { rate: words.number(Math.round(job.rowsPerSecond)), left: words.number(Number(job.timeLeft?.seconds ?? 0n)) })}` : ""}
          </p>
          {job.error && (
            <p role="alert" className="error">
              {job.error}
            </p>
          )}
          <dl className="import-counts">
            {counts!.map(([k, v]) => (
              <div key={k} data-count={k}>
                <dt>{w(k)}</dt>
                <dd>{n(v)}</dd>
              </div>
            ))}
          </dl>
          {finished && !job.dryRun && job.state === ImportState.SUCCEEDED && (
            <p>
              {undoDeadline && `${w("undoUntil", { when: words.dateTime(undoDeadline) })} `}
              <button type="button" className="secondary danger" onClick={() => void undo()} disabled={busy}>
                {w("undo")}
              </button>
            </p>
          )}
        </section>
      )}
      {notice && (
        <p role="status" className="notice">
          {notice}
        </p>
      )}
      {errors.length > 0 && job && (
        <section aria-labelledby={`${id}-errors`}>
          <h2 id={`${id}-errors`}>{w("errors")}</h2>
          <button type="button" className="secondary" onClick={() => void downloadErrors()} disabled={busy}>
            {w("downloadErrors")}
          </button>
          <div className="table-wrap">
            <table className="entries" aria-labelledby={`${id}-errors`}>
              <thead>
                <tr>
                  <th scope="col">{w("row")}</th>
                  <th scope="col">{w("reason")}</th>
                  <th scope="col">{w("values")}</th>
                </tr>
              </thead>
              <tbody>
                {errors.map((e) => (
                  <tr key={e.rowNumber.toString()}>
                    <td className="num">{n(e.rowNumber)}</td>
                    <td>{e.reason}</td>
                    <td>{e.cells.join(", ")}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </section>
      )}
    </section>
  );
}

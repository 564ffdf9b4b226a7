/**
 * "Export CSV" on the companies, people and all-deals lists: ExportService.ExportRecords with the list's
 * filter, order, trash view and visible columns; the server writes the CSV (UTF-8 with a BOM,
 * formula-like cells escaped) and streams it in chunks, saved here as one download.
 */
import { useState } from "react";
import { createClient } from "@connectrpc/connect";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { ExportService, type ExportRecordsRequestSchema } from "@crm/gen/crm/records/v1/export_pb";
import { transport } from "../../session";
import { useI18n } from "../../i18n";
import { describeError } from "../../errors";

const exporter = createClient(ExportService, transport);

const words = { en: { export: "Export CSV", exported: "Exported {rows} rows." }, ru: { export: "Выгрузить CSV", exported: "Выгружено строк: {rows}." } };

export function ExportButton({ request, fileName }: { request: MessageInitShape<typeof ExportRecordsRequestSchema>; fileName: string }) {
  const i18n = useI18n();
  const w = words[i18n.locale === "ru" ? "ru" : "en"];
  const [busy, setBusy] = useState(false);
  const [notice, setNotice] = useState<{ text: string; error?: boolean }>();
  const run = async () => {
    setBusy(true);
    setNotice(undefined);
    try {
      const parts: Uint8Array[] = [];
      let rows = 0n;
      for await (const c of exporter.exportRecords(request)) {
        parts.push(c.data);
        rows += c.rows;
      }
      const url = URL.createObjectURL(new Blob(parts as BlobPart[], { type: "text/csv;charset=utf-8" }));
      const a = document.createElement("a");
      a.href = url;
      a.download = `${fileName}-${new Date().toISOString().slice(0, 10)}.csv`;
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
      setNotice({ text: i18n.format(w.exported, { rows: i18n.number(Number(rows)) }) });
    } catch (e) {
      setNotice({ text: describeError(e, i18n), error: true });
    } finally {
      setBusy(false);
    }
  };
  return (
    <>
      <button type="button" className="secondary" onClick={() => void run()} disabled={busy} aria-busy={busy || undefined}>
        {w.export}
      </button>
      {notice && (
        <span role={notice.error ? "alert" : "status"} className={notice.error ? "error" : "notice"}>
          {notice.text}
        </span>
      )}
    </>
  );
}

/**
 * An uploaded CSV file read as it streams, never whole in memory: the encoding (a UTF-8 BOM, else
 * UTF-8 when the first 64 KiB decode as UTF-8, else Windows-1251, what Russian Excel writes) and the
 * delimiter (`,` `;` or tab: the most frequent outside quotes in the first line) are detected from
 * the head of the file; iconv-lite decodes, csv-parse splits (quoted fields may hold delimiters,
 * quotes and line breaks). The first row is the header; data rows come in batches.
 */
import { Readable } from "node:stream";
import { parse } from "csv-parse";
import iconv from "iconv-lite";
import { AppError } from "@crm/kit";

export interface FileShape {
  encoding: "utf-8" | "windows-1251";
  delimiter: "," | ";" | "\t";
  /** The header row was a BOM-prefixed UTF-8 file. */
  bom: boolean;
}

const HEAD = 64 * 1024;
const controls = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/;
const controlsAll = new RegExp(controls.source, "g");

/** The encoding of a file's head (a multi-byte character cut at the end of the head is allowed). */
export function detectEncoding(head: Uint8Array): { encoding: FileShape["encoding"]; bom: boolean } {
  if (head.length >= 3 && head[0] === 0xef && head[1] === 0xbb && head[2] === 0xbf) return { encoding: "utf-8", bom: true };
  // Cut back to a character boundary: drop up to 3 trailing continuation/lead bytes.
  let end = head.length;
  for (let i = 0; i < 3 && end > 0; i++) {
    const b = head[end - 1]!;
    if (b < 0x80) break;
    end--;
    if (b >= 0xc0) break;
  }
  try {
    new TextDecoder("utf-8", { fatal: true }).decode(head.subarray(0, end));
    return { encoding: "utf-8", bom: false };
  } catch {
    return { encoding: "windows-1251", bom: false };
  }
}

/** The delimiter of the first line (outside quotes): the most frequent of `;`, `,` and tab; `,` when none. */
export function detectDelimiter(text: string): FileShape["delimiter"] {
  const counts = { ",": 0, ";": 0, "\t": 0 };
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === '"') quoted = !quoted;
    else if (!quoted && (c === "\n" || c === "\r")) break;
    else if (!quoted && (c === "," || c === ";" || c === "\t")) counts[c]++;
  }
  const best = (Object.entries(counts) as [FileShape["delimiter"], number][]).sort((a, b) => b[1] - a[1])[0]!;
  return best[1] > 0 ? best[0] : ",";
}

export interface ReadOptions {
  maxBytes: number;
  maxRows: number;
  /** Rows per batch. */
  batch: number;
}

export interface FileRead {
  shape: FileShape;
  header: string[];
  /** Data rows, in batches, as they are parsed. */
  batches: AsyncGenerator<string[][]>;
  /** Bytes read so far (all of them once batches is done). */
  bytes(): number;
  /** Data rows read so far. */
  rows(): number;
}

/** Reads `source` (the upload's chunks): resource_exhausted beyond maxBytes or maxRows, invalid_argument for a file that is not CSV. */
export async function readCsv(source: AsyncIterable<Uint8Array>, o: ReadOptions): Promise<FileRead> {
  const it = source[Symbol.asyncIterator]();
  let bytes = 0;
  const count = (c: Uint8Array) => {
    bytes += c.length;
    if (bytes > o.maxBytes) throw new AppError("too_large", `the file is over ${o.maxBytes} bytes: split it into several imports`);
  };
  // The head: enough bytes to detect the encoding and the delimiter.
  const head: Buffer[] = [];
  let headLen = 0;
  let ended = false;
  while (headLen < HEAD) {
    const n = await it.next();
    if (n.done) {
      ended = true;
      break;
    }
    if (!n.value.length) continue;
    count(n.value);
    head.push(Buffer.from(n.value));
    headLen += n.value.length;
  }
  const first = Buffer.concat(head);
  if (first.length === 0) throw new AppError("invalid_argument", "the file is empty: send a CSV file with a header row", [{ field: "data", description: "is empty" }]);
  const { encoding, bom } = detectEncoding(first.subarray(0, HEAD));
  const delimiter = detectDelimiter(iconv.decode(first.subarray(bom ? 3 : 0, Math.min(first.length, 16 * 1024)), encoding));
  const shape: FileShape = { encoding, delimiter, bom };

  async function* chunks(): AsyncGenerator<Buffer> {
    yield bom ? first.subarray(3) : first;
    if (ended) return;
    for (;;) {
      const n = await it.next();
      if (n.done) return;
      count(n.value);
      yield Buffer.from(n.value);
    }
  }
  const decoded = Readable.from(chunks()).pipe(iconv.decodeStream(encoding));
  const parser = decoded.pipe(
    parse({ delimiter, relax_column_count: true, relax_quotes: true, skip_empty_lines: true, max_record_size: 1024 * 1024 }),
  );
  decoded.on("error", (err) => parser.destroy(err));
  const records = parser[Symbol.asyncIterator]() as AsyncIterator<string[]>;
  const h = await records.next().catch(badCsv);
  if (h.done) throw new AppError("invalid_argument", "the file has no header row", [{ field: "data", description: "has no rows" }]);
  const header = (h.value as string[]).map((x) => x.replace(controlsAll, "").replace(/[\r\n\t]+/g, " ").trim());
  let rows = 0;
  async function* batches(): AsyncGenerator<string[][]> {
    let batch: string[][] = [];
    for (;;) {
      const r = await records.next().catch(badCsv);
      if (r.done) break;
      rows++;
      if (rows > o.maxRows) throw new AppError("too_large", `the file has over ${o.maxRows} rows: split it into several imports`);
      // NUL and the other control characters but tab and line breaks cannot be stored as text.
      batch.push((r.value as string[]).map((c) => (controls.test(c) ? c.replace(controlsAll, "") : c)));
      if (batch.length >= o.batch) {
        yield batch;
        batch = [];
      }
    }
    if (batch.length) yield batch;
  }
  return { shape, header, batches: batches(), bytes: () => bytes, rows: () => rows };
}

function badCsv(err: unknown): never {
  if (err instanceof AppError) throw err;
  const e = err as { code?: string; message?: string; lines?: number };
  if (e.code === "CSV_MAX_RECORD_SIZE") throw new AppError("too_large", `a row near line ${e.lines ?? "?"} is over 1 MiB: is the file CSV?`);
  if (typeof e.code === "string" && e.code.startsWith("CSV_")) {
    throw new AppError("invalid_argument", `the file is not CSV as expected: ${e.message?.slice(0, 200) ?? e.code}`, [{ field: "data", description: "is not a CSV file" }]);
  }
  throw err;
}

/**
 * Reading an upload in memory: encodings (UTF-8 with and without a BOM, Windows-1251), delimiters
 * (`,` `;` tab), quoted fields with delimiters, quotes and line breaks, chunk boundaries inside
 * multi-byte characters, limits, and a file that is not CSV.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import iconv from "iconv-lite";
import { Code, ConnectError } from "@connectrpc/connect";
import { toConnectError, AppError } from "@crm/kit";
import { detectDelimiter, detectEncoding, readCsv } from "./import-file.js";

async function* chunks(b: Buffer, size: number): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < b.length; i += size) yield b.subarray(i, i + size);
}

async function read(b: Buffer, size = 5, o: { maxBytes?: number; maxRows?: number } = {}) {
  const f = await readCsv(chunks(b, size), { maxBytes: o.maxBytes ?? 1e6, maxRows: o.maxRows ?? 1000, batch: 2 });
  const rows: string[][] = [];
  for await (const batch of f.batches) rows.push(...batch);
  return { shape: f.shape, header: f.header, rows, bytes: f.bytes() };
}

const codeOf = (err: unknown) => (err instanceof AppError ? toConnectError(err) : ConnectError.from(err)).code;

test("UTF-8 with a BOM, semicolons, a quoted field with a line break, a delimiter and quotes", async () => {
  const text = '\uFEFFИмя;Почта;Заметка\r\nАнна;anna@example.com;"строка 1\nстрока 2; ""цитата"""\r\n\r\nБорис;b@example.com\r\n';
  for (const size of [1, 3, 7, 1000]) {
    const r = await read(Buffer.from(text), size);
    assert.deepEqual(r.shape, { encoding: "utf-8", delimiter: ";", bom: true });
    assert.deepEqual(r.header, ["Имя", "Почта", "Заметка"]);
    assert.deepEqual(r.rows, [["Анна", "anna@example.com", 'строка 1\nстрока 2; "цитата"'], ["Борис", "b@example.com"]], `chunks of ${size}`);
    assert.equal(r.bytes, Buffer.byteLength(text));
  }
});

test("Windows-1251 is detected; tabs and commas too", async () => {
  const r = await read(iconv.encode("Фамилия\tИмя\nПетров\tПётр\n", "win1251"));
  assert.deepEqual([r.shape.encoding, r.shape.delimiter, r.header, r.rows], ["windows-1251", "\t", ["Фамилия", "Имя"], [["Петров", "Пётр"]]]);
  const c = await read(Buffer.from('name,"a; b",x\n1,2,3\n'));
  assert.deepEqual([c.shape.encoding, c.shape.delimiter, c.header], ["utf-8", ",", ["name", "a; b", "x"]]);
  assert.equal(detectDelimiter("one column\n"), ",");
  // A head cut inside a two-byte character is still UTF-8.
  assert.equal(detectEncoding(Buffer.from("abcд").subarray(0, 4)).encoding, "utf-8");
  assert.equal(detectEncoding(iconv.encode("абв", "win1251")).encoding, "windows-1251");
});

test("control characters are dropped; limits; an empty file", async () => {
  const r = await read(Buffer.from("a,b\nx\u0000y,z\u0007\n"));
  assert.deepEqual(r.rows, [["xy", "z"]]);
  await assert.rejects(read(Buffer.from("a\n" + "x\n".repeat(100)), 5, { maxBytes: 50 }), (e) => codeOf(e) === Code.ResourceExhausted);
  await assert.rejects(read(Buffer.from("a\n" + "x\n".repeat(10)), 5, { maxRows: 5 }), (e) => codeOf(e) === Code.ResourceExhausted);
  await assert.rejects(read(Buffer.alloc(0)), (e) => codeOf(e) === Code.InvalidArgument);
});

/**
 * A live list's changes applied to its loaded pages (web/src/screens/records/live-pages.ts), the
 * rule that keeps a change from rereading every page: in place, removed, placed by the sort, the
 * total kept, and the first page read again only where the browser cannot know the order.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { applyChanges, flatRows, mergeFirstPage, rowOrder, type Pages } from "../../web/src/screens/records/live-pages.ts";

interface R {
  id: string;
  name: string;
  createTime?: { seconds: bigint; nanos: number };
  size?: number;
}
interface P {
  companies: R[];
  nextPageToken: string;
  totalSize: bigint;
  totalIsExact: boolean;
}
const at = (s: number) => ({ seconds: BigInt(s), nanos: 0 });
const row = (n: number, extra: Partial<R> = {}): R => ({ id: `00000000-0000-0000-0000-${String(n).padStart(12, "0")}`, name: `c${n}`, createTime: at(n), ...extra });
/** Rows 100..1 newest first in pages of `size`, `loaded` pages of them. */
function pages(loaded: number, size = 10, total = 100): Pages<P> {
  const all = Array.from({ length: total }, (_, i) => row(total - i));
  const ps: P[] = [];
  for (let i = 0; i < loaded; i++) ps.push({ companies: all.slice(i * size, (i + 1) * size), nextPageToken: (i + 1) * size < total ? `t${i + 1}` : "", totalSize: BigInt(total), totalIsExact: true });
  return { pages: ps, pageParams: ps.map((_, i) => (i ? `t${i}` : "")) };
}
const order = "create_time desc";
const names = (d: Pages<P>) => flatRows(d.pages, "companies").map((r) => r.name);

test("an update of a loaded row is applied in place: nothing reread", () => {
  const d = pages(3);
  const r = applyChanges<P, R>(d, "companies", order, [{ id: row(85).id, record: row(85, { name: "renamed" }), inView: true, entered: false }]);
  assert.equal(r.refetchFirst, false);
  assert.equal(names(r.data)[15], "renamed");
  assert.equal(names(r.data).length, 30);
  assert.equal(r.data.pages[0]!.totalSize, 100n);
  assert.equal(names(d)[15], "c85", "the cached data is copied, not mutated");
});

test("a row that left the list is removed and the total goes down", () => {
  const r = applyChanges<P, R>(pages(3), "companies", order, [{ id: row(85).id, record: row(85), inView: false, entered: false }]);
  assert.equal(names(r.data).length, 29);
  assert.ok(!names(r.data).includes("c85"));
  assert.equal(r.data.pages[0]!.totalSize, 99n);
  // One not loaded leaves too: only the total changes.
  const r2 = applyChanges<P, R>(pages(3), "companies", order, [{ id: row(5).id, record: undefined, inView: false, entered: false }]);
  assert.equal(names(r2.data).length, 30);
  assert.equal(r2.data.pages[0]!.totalSize, 99n);
});

test("a created row goes where the sort puts it, or to the page that will bring it", () => {
  const top = applyChanges<P, R>(pages(3), "companies", order, [{ id: row(101).id, record: row(101), inView: true, entered: true }]);
  assert.equal(top.refetchFirst, false);
  assert.equal(names(top.data)[0], "c101");
  assert.equal(top.data.pages[0]!.totalSize, 101n);
  const mid = applyChanges<P, R>(pages(3), "companies", order, [{ id: "ffffffff-0000-0000-0000-000000000000", record: { ...row(85), id: "ffffffff-0000-0000-0000-000000000000", name: "tie" }, inView: true, entered: true }]);
  assert.deepEqual(names(mid.data).slice(15, 17), ["tie", "c85"], "the id breaks a tie in the last key's direction (desc: the larger id first)");
  const later = applyChanges<P, R>(pages(3), "companies", order, [{ id: "x", record: { ...row(5), id: "x" }, inView: true, entered: true }]);
  assert.equal(names(later.data).length, 30, "after the loaded rows while pages remain: not shown yet");
  assert.equal(later.data.pages[0]!.totalSize, 101n);
});

test("a change of a sort key moves the row", () => {
  const r = applyChanges<P, R>(pages(3), "companies", order, [{ id: row(75).id, record: row(75, { createTime: at(1000) }), inView: true, entered: false }]);
  assert.equal(names(r.data)[0], "c75");
  assert.equal(names(r.data).length, 30);
  const bySize = rowOrder("size asc");
  assert.ok(bySize && bySize(row(1, { size: 5 }), row(2)) < 0, "empty values last");
  assert.ok(bySize && bySize(row(1), row(2, { size: 5 })) > 0);
});

test("a text sort is the server's: the row changes in place and the first page is read again", () => {
  const r = applyChanges<P, R>(pages(3), "companies", "name asc", [{ id: row(85).id, record: row(85, { name: "aaa" }), inView: true, entered: false }]);
  assert.equal(r.refetchFirst, true);
  assert.equal(names(r.data)[15], "aaa");
  const created = applyChanges<P, R>(pages(3), "companies", "name asc", [{ id: "n", record: { ...row(1), id: "n" }, inView: true, entered: true }]);
  assert.equal(created.refetchFirst, true);
  assert.equal(created.data.pages[0]!.totalSize, 101n);
  // An update bringing in a row not loaded while pages remain: entered the filter or moved? The server says.
  const unknown = applyChanges<P, R>(pages(3), "companies", order, [{ id: "u", record: { ...row(95), id: "u" }, inView: true, entered: false }]);
  assert.equal(unknown.refetchFirst, true);
  assert.equal(unknown.data.pages[0]!.totalSize, 100n);
});

test("the first page read again is merged without losing or repeating rows", () => {
  const d = pages(3);
  // Two new rows on top: the old first page's last two rows are pushed out and stay; c96 left the list.
  const fresh: P = { companies: [row(102), row(101), ...d.pages[0]!.companies.filter((r) => r.name !== "c96").slice(0, 8)], nextPageToken: "new", totalSize: 101n, totalIsExact: true };
  const m = mergeFirstPage<P, R>(d, "companies", fresh);
  const n = names(m);
  assert.equal(n.length, 31);
  assert.deepEqual(n.slice(0, 3), ["c102", "c101", "c100"]);
  assert.ok(!n.includes("c96"));
  assert.equal(new Set(n).size, n.length);
  assert.equal(m.pages[0]!.nextPageToken, "t1", "the old page's token leads on from its last row");
  assert.equal(m.pages[0]!.totalSize, 101n);
  // A row the fresh first page brings from a later page is taken out of it.
  const moved: P = { ...fresh, companies: [row(75), ...d.pages[0]!.companies] };
  assert.equal(names(mergeFirstPage<P, R>(d, "companies", moved)).filter((x) => x === "c75").length, 1);
});

import assert from "node:assert/strict";
import { test } from "node:test";
import { chunksBySize } from "./admin-service.js";

const row = (n: number, htmlBytes: number) => ({ email: `u${n}@example.com`, phone: "", name: `U${n}`, inviteEmail: { to: `u${n}@example.com`, subject: "s", text: "t", html: "h".repeat(htmlBytes) } });

test("AddUsers chunks: consecutive, in order, each under the budget (a row bigger than the budget goes alone)", () => {
  const rows = Array.from({ length: 10 }, (_, i) => row(i, i === 4 ? 5000 : 300));
  const chunks = chunksBySize(rows, 1500);
  assert.deepEqual(chunks.flatMap((c) => c.items), rows);
  for (const c of chunks) assert.deepEqual(c.items, rows.slice(c.offset, c.offset + c.items.length));
  assert.ok(chunks.some((c) => c.items.length === 1 && c.items[0] === rows[4]));
  assert.ok(chunks.length >= 4);
  assert.equal(chunksBySize(rows, 1 << 20).length, 1);
  assert.deepEqual(chunksBySize([], 100), []);
});

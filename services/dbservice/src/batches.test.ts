import assert from "node:assert/strict";
import { test } from "node:test";
import { keyedBatches } from "./batches.js";

/** A runner whose batches finish when the test says so. */
function controlled() {
  const calls: { key: string; items: number[]; finish: (r?: (number | Error)[] | Error) => void }[] = [];
  const run = (key: string, items: number[]) =>
    new Promise<(number | Error)[]>((resolve, reject) => {
      calls.push({ key, items, finish: (r) => (r instanceof Error ? reject(r) : resolve(r ?? items.map((x) => x * 10))) });
    });
  return { calls, run };
}

test("the first item of a key runs alone at once; items arriving meanwhile form the next batch", async () => {
  const { calls, run } = controlled();
  const b = keyedBatches(run, 100);
  const first = b.submit("chat", 1);
  assert.deepEqual(calls.map((c) => c.items), [[1]]);
  const later = [b.submit("chat", 2), b.submit("chat", 3)];
  const other = b.submit("other", 7); // another key is not held back
  assert.deepEqual(calls.map((c) => c.items), [[1], [7]]);
  calls[0]!.finish();
  assert.equal(await first, 10);
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(calls.map((c) => c.items), [[1], [7], [2, 3]]);
  calls[2]!.finish();
  calls[1]!.finish();
  assert.deepEqual(await Promise.all([...later, other]), [20, 30, 70]);
  await new Promise((r) => setImmediate(r));
  assert.equal(b.busy(), 0);
});

test("batches hold at most maxBatch items; per-item errors and a failed batch reject only their items", async () => {
  const { calls, run } = controlled();
  const b = keyedBatches(run, 2);
  const p1 = b.submit("k", 1);
  const rest = [2, 3, 4].map((x) => b.submit("k", x));
  calls[0]!.finish([new Error("not a member")]);
  await assert.rejects(p1, /not a member/);
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(calls[1]!.items, [2, 3]);
  calls[1]!.finish(new Error("database unavailable"));
  await assert.rejects(rest[0]!, /database unavailable/);
  await assert.rejects(rest[1]!, /database unavailable/);
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(calls[2]!.items, [4]);
  calls[2]!.finish();
  assert.equal(await rest[2], 40);
});

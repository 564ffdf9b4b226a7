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
  const b = keyedBatches(run, 2, { retryAlone: () => false });
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

test("a batch that fails as a whole runs again item by item: only the culprit fails", async () => {
  const runs: number[][] = [];
  const b = keyedBatches(async (_key, items: number[]) => {
    runs.push(items);
    if (items.includes(13)) throw new Error(`item 13 is refused (batch of ${items.length})`);
    return items.map((x) => x * 10);
  }, 100);
  // The first item runs alone and holds the key; the next ones queue into one batch.
  const first = b.submit("k", 1);
  const queued = [2, 13, 4].map((x) => b.submit("k", x).then((v) => v, (e: Error) => e.message));
  assert.equal(await first, 10);
  assert.deepEqual(await Promise.all(queued), [20, "item 13 is refused (batch of 1)", 40]);
  assert.deepEqual(runs, [[1], [2, 13, 4], [2], [13], [4]]);

  const never = keyedBatches(async (_k, items: number[]) => {
    throw new Error(`down (${items.length})`);
  }, 100, { retryAlone: () => false });
  const all = [1, 2, 3].map((x) => never.submit("k", x).then(() => "ok", (e: Error) => e.message));
  assert.deepEqual(await Promise.all(all), ["down (1)", "down (2)", "down (2)"], "no retry when retryAlone says the failure is the batch's");
});

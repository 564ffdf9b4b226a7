import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { test } from "node:test";

/** Runs `code` in a fresh node (the young generation's size is per process), returning its stdout. */
function fresh(code: string, execArgv: string[] = []): string {
  const r = spawnSync(process.execPath, [...execArgv, "--conditions=source", "--import", "tsx", "--input-type=module", "-e", code], { encoding: "utf8", cwd: new URL(".", import.meta.url).pathname });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim();
}

const probe = `
import v8 from "node:v8";
import { holdYoungGeneration } from "./heap.ts";
const young = () => v8.getHeapSpaceStatistics().find((s) => s.space_name === "new_space").space_size;
const keep = [];
const allocate = () => { for (let i = 0; i < 400_000; i++) keep.push({ i, s: "x" + i }); };
const start = young();
const release = holdYoungGeneration();
allocate();
const held = young();
release();
allocate();
console.log(JSON.stringify({ start, held, after: young() }));
`;

test("the young generation keeps its size until released, then grows under allocation as before", () => {
  const { start, held, after } = JSON.parse(fresh(probe)) as { start: number; held: number; after: number };
  assert.equal(held, start, "no growth while held, though ~30 MB of objects survived");
  assert.ok(after > held, `grows again once released (${held} → ${after} bytes)`);
});

test("a growth factor given on the command line is left alone", () => {
  const { start, held } = JSON.parse(fresh(probe, ["--semi-space-growth-factor=2"])) as { start: number; held: number; after: number };
  assert.ok(held > start, "not held: the operator's factor applies");
});

/**
 * Proves the harness works (not a benchmark: numbers from tiny runs mean nothing): percentiles,
 * /proc sampling, the markdown table, and one real scenario (rpc) end to end with tiny bounds.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { need } from "@crm/testkit";
import { h2loadProblem } from "./lib/h2load.js";
import { sample } from "./lib/proc.js";
import { markdown, type ScenarioResult } from "./lib/report.js";
import { latency, percentile } from "./lib/stats.js";
import { runScenario } from "./run.js";

test("percentiles are nearest-rank over every sample", () => {
  const sorted = Float64Array.from({ length: 100 }, (_, i) => i + 1);
  assert.equal(percentile(sorted, 50), 50);
  assert.equal(percentile(sorted, 99), 99);
  assert.equal(percentile(sorted, 100), 100);
  assert.deepEqual(latency([5, 1, 3]), { p50Ms: 3, p99Ms: 5, maxMs: 5 });
  assert.ok(Number.isNaN(latency([]).p50Ms));
});

test("/proc sampling reads this process's CPU time and RSS", () => {
  const before = sample(process.pid);
  let x = 0;
  const until = performance.now() + 50;
  while (performance.now() < until) x += Math.sqrt(x + 1);
  const after = sample(process.pid);
  assert.ok(after.rssBytes > 10 * 1024 * 1024, `RSS ${after.rssBytes}`);
  assert.ok(after.cpuMs >= before.cpuMs, "CPU time does not go backwards");
  assert.ok(after.peakBytes >= after.rssBytes);
});

test("the markdown table shows rows, floors, checks and skipped scenarios", () => {
  const base = { startedAt: "2026-01-01T00:00:00Z", seconds: 1, notes: ["a note"] };
  const results: ScenarioResult[] = [
    {
      ...base, name: "x", title: "X", status: "ok",
      rows: [{ label: "floor thing", floor: true, tool: "h2load", requests: 10, errors: 0, rps: 1234.5, p50Ms: 1.234, p99Ms: 9.87, cpuMsPerReq: 0.01234, rssMB: 50 }],
      checks: [{ label: "ratio", value: 0.95, unit: "×", target: "≥ 0.9", met: true }],
    },
    { ...base, name: "y", title: "Y", status: "skipped", reason: "nginx is not installed", rows: [], checks: [] },
  ];
  const md = markdown(results);
  assert.match(md, /\| \*\*floor\*\*: floor thing \| h2load \| 10 \| 0 \| 1235 \| 1\.23 \| 9\.87 \| 0\.0123 \| 50 \|/);
  assert.match(md, /ratio: \*\*0\.95 ×\*\* \(target ≥ 0\.9\) — \*\*met\*\*/);
  assert.match(md, /\*\*skipped\*\*: nginx is not installed/);
});

test("the rpc scenario runs end to end with tiny bounds", { skip: need("h2load", !h2loadProblem(), "apt-get install -y nghttp2-client"), timeout: 120_000 }, async () => {
  const r = await runScenario("rpc", { quick: true, log: () => {} });
  assert.equal(r.status, "ok", r.reason);
  assert.ok(r.rows.length >= 8);
  for (const row of r.rows) {
    assert.equal(row.errors, 0, `${row.label} had errors`);
    assert.ok(row.requests > 0 && row.rps > 0, `${row.label} made no calls`);
    assert.ok(row.cpuMsPerReq !== undefined && row.cpuMsPerReq >= 0, `${row.label} has no CPU figure`);
    assert.ok(row.rssMB !== undefined && row.rssMB > 10, `${row.label} has no RSS`);
  }
  assert.ok(r.rows.some((row) => row.floor), "a floor row is measured in the same run");
});

test("an unknown scenario name is refused with the list of names", async () => {
  await assert.rejects(runScenario("nope", { quick: true, log: () => {} }), /unknown scenario "nope": use one of rpc, .*login/);
});

#!/usr/bin/env node
// Runs every *.test.ts under packages/, services/, test/, charts/ and bench/ with node's test runner (tsx loads
// TypeScript). Pass file or directory paths to run a subset: `npm test -- services/auth`.
// CI=true (or CRM_STRICT=1) makes any test that would skip for a missing component fail instead.
import { spawnSync } from "node:child_process";
import { lstatSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";

const roots = process.argv.slice(2).filter((a) => !a.startsWith("-"));
const flags = process.argv.slice(2).filter((a) => a.startsWith("-"));
const skip = new Set(["node_modules", "dist", "data", ".git"]);

function collect(path, out) {
  const st = lstatSync(path);
  if (st.isSymbolicLink()) return out; // e.g. the chart's link to services/gateway: run each test once
  if (st.isFile()) {
    if (path.endsWith(".test.ts")) out.push(path);
    return out;
  }
  for (const name of readdirSync(path)) if (!skip.has(name)) collect(join(path, name), out);
  return out;
}

const files = (roots.length ? roots : ["packages", "services", "test", "charts", "bench"])
  .filter((r) => { try { statSync(r); return true; } catch { return false; } })
  .flatMap((r) => collect(r, []))
  .sort();
if (files.length === 0) {
  console.error("no test files found");
  process.exit(1);
}
const concurrency = process.env.TEST_CONCURRENCY ?? "2";
const res = spawnSync(
  process.execPath,
  ["--conditions=source", "--import", "tsx", "--test", `--test-concurrency=${concurrency}`, ...flags, ...files],
  { stdio: "inherit" },
);
process.exit(res.status ?? 1);

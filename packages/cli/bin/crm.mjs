#!/usr/bin/env node
// `crm`, the command-line tool (packages/cli/README.md). The workspace's packages export their
// TypeScript sources. Loading them through tsx costs about 1.5 s of CPU at every start, so the
// first run bundles src/ with esbuild (one file, about 0.3 s to load) into
// node_modules/.cache/crm-cli/, and later runs use that bundle until one of its sources (or the
// installed packages) changes. Without esbuild, or where the cache cannot be written, tsx runs
// the sources as they are.
import { mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const pkg = join(dirname(fileURLToPath(import.meta.url)), "..");
const root = join(pkg, "..", "..");
const cache = join(pkg, "node_modules", ".cache", "crm-cli");
const bundle = join(cache, "crm.mjs");
const inputsFile = join(cache, "inputs.json");
/** Changes with every npm install / npm ci. */
const installed = () => statSync(join(root, "node_modules", ".package-lock.json")).mtimeMs;

function fresh() {
  try {
    const built = statSync(bundle).mtimeMs;
    const { inputs, lock } = JSON.parse(readFileSync(inputsFile, "utf8"));
    return lock === installed() && inputs.every((f) => statSync(f).mtimeMs <= built);
  } catch {
    return false;
  }
}

async function rebuild() {
  const { build } = await import("esbuild");
  mkdirSync(cache, { recursive: true });
  const tmp = `${bundle}.${process.pid}.tmp`;
  const lock = installed();
  const result = await build({
    stdin: { contents: 'import { run } from "./src/main.ts";\nprocess.exitCode = await run(process.argv.slice(2));\n', resolveDir: pkg, sourcefile: "crm-entry.ts", loader: "ts" },
    absWorkingDir: root,
    outfile: tmp,
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    // CommonJS packages (commander, papaparse, cli-progress) require node's modules
    banner: { js: 'import { createRequire as __crmRequire } from "node:module"; const require = __crmRequire(import.meta.url);' },
    metafile: true,
    logLevel: "silent",
  });
  const inputs = Object.keys(result.metafile.inputs)
    .filter((f) => !f.includes("node_modules/") && !f.endsWith("crm-entry.ts"))
    .map((f) => join(root, f));
  writeFileSync(inputsFile, JSON.stringify({ inputs, lock }));
  renameSync(tmp, bundle); // atomic: a crm starting meanwhile loads the old bundle or the new one
}

let loaded = false;
try {
  if (!fresh()) await rebuild();
  loaded = true;
} catch {
  // no esbuild (installed without dev dependencies) or a read-only install: run the sources
}
if (loaded) await import(pathToFileURL(bundle).href);
else {
  const { register } = await import("tsx/esm/api");
  register();
  const { run } = await import("../src/main.ts");
  process.exitCode = await run(process.argv.slice(2));
}

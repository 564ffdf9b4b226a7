#!/usr/bin/env node
// Builds the one production entry point: dist/crm.mjs (every service; pick one with an argument),
// with the workspace's TypeScript bundled and npm dependencies left in node_modules.
// Migrations are copied beside it (dist/migrations), where dbservice looks for them.
import { build } from "esbuild";
import { cpSync, readFileSync, rmSync } from "node:fs";

const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8"));
rmSync("dist", { recursive: true, force: true });
await build({
  entryPoints: ["services/all/src/main.ts"],
  outfile: "dist/crm.mjs",
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  conditions: ["source"],
  external: Object.keys(pkg.dependencies ?? {}).flatMap((d) => [d, `${d}/*`]),
  sourcemap: true,
  legalComments: "none",
  logLevel: "warning",
});
cpSync("services/dbservice/src/migrations", "dist/migrations", { recursive: true });
console.log("built dist/crm.mjs");

#!/usr/bin/env node
// Builds the one production entry point: dist/crm.mjs (every service; pick one with an argument),
// with the workspace's TypeScript (and a few pure-JavaScript packages) bundled and the other npm
// dependencies left in node_modules; the code of each target is in chunks beside it (dist/*.mjs),
// loaded only by the targets that need it.
// Migrations (dbservice's own and every domain store's, services/*/store/migrations) are copied
// into one folder beside it (dist/migrations), where each of them resolves in the bundle; the
// all-in-one's first-start database (PGlite, initdb and migrations done) is dist/pgdata.tar.gz.
import { execFileSync } from "node:child_process";
import { build } from "esbuild";
import { cpSync, existsSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

/**
 * npm packages bundled with the code rather than loaded from node_modules: pure JavaScript made of
 * many small ES modules (zod, protobuf-es, Connect, jose), which Node's ES module loader would
 * find, read and link one file at a time at every start. Every other dependency stays external:
 * native code and WebAssembly (argon2, PGlite), and the clients OpenTelemetry patches where
 * `require` loads them (pg, ioredis, amqplib).
 */
const bundled = new Set(["zod", "@bufbuild/protobuf", "@connectrpc/connect", "@connectrpc/connect-node", "jose", "fractional-indexing"]);

/**
 * The npm packages the code may load at run time: the dependencies of the root and of every
 * workspace (a service's own, such as records' CSV parser), not the workspaces themselves, which
 * are bundled. A package missing here would be bundled, and a CommonJS one then fails at start
 * ("Dynamic require of ... is not supported").
 */
function runtimeDependencies() {
  const read = (file) => JSON.parse(readFileSync(file, "utf8"));
  const top = fileURLToPath(new URL("..", import.meta.url));
  const manifests = [join(top, "package.json")];
  for (const dir of ["packages", "services"]) {
    for (const name of readdirSync(join(top, dir))) {
      const file = join(top, dir, name, "package.json");
      if (existsSync(file)) manifests.push(file);
    }
  }
  const names = new Set();
  for (const file of manifests) for (const d of Object.keys(read(file).dependencies ?? {})) if (!d.startsWith("@crm/")) names.add(d);
  return names;
}

/** The bundle's esbuild options, relative to `root` (bench/lib/app.ts builds with them into its own folder). */
export function bundleOptions(root = process.cwd()) {
  return {
    absWorkingDir: root,
    entryPoints: ["services/all/src/main.ts"],
    outfile: "dist/crm.mjs",
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    conditions: ["source"],
    external: [...runtimeDependencies()].filter((d) => !bundled.has(d)).flatMap((d) => [d, `${d}/*`]),
    // Each process keeps its code's text, and with --enable-source-maps its maps, in the heap: no
    // whitespace or comments (one non-ASCII character in a comment made V8 store a whole chunk as
    // UTF-16) and no copies of the sources in the maps (stack traces need only the mappings).
    // Names are kept, so stack traces and CPU profiles read as the source does.
    sourcemap: true,
    sourcesContent: false,
    minifyWhitespace: true,
    legalComments: "none",
    logLevel: "warning",
  };
}

/**
 * The bundle and its migrations into `outDir` (relative to `root`), and the all-in-one's
 * first-start database (pgdata.tar.gz, services/dbservice/src/pglite-template.ts) unless
 * `pgliteTemplate` is false (a cluster needs none). Returns the bundle's path.
 */
export async function buildBundle(root = process.cwd(), outDir = "dist", { pgliteTemplate = true } = {}) {
  rmSync(join(root, outDir), { recursive: true, force: true });
  // Split into chunks beside crm.mjs: every target is imported on demand (services/all/src/main.ts),
  // so a single-service process loads only its own code and npm packages, not every service's.
  // The embedded PostgreSQL's worker thread is an entry of its own (embedded-worker.mjs), found
  // beside the chunk that starts it (services/dbservice/src/embedded.ts).
  const { outfile: _, entryPoints: [main], ...options } = bundleOptions(root);
  const entryPoints = { crm: main, "embedded-worker": "services/dbservice/src/embedded-worker.ts" };
  await build({ ...options, entryPoints, outdir: join(root, outDir), splitting: true, entryNames: "[name]", outExtension: { ".js": ".mjs" } });
  for (const dir of migrationFolders(root)) cpSync(dir, join(root, outDir, "migrations"), { recursive: true, errorOnExist: true, force: false });
  if (pgliteTemplate) {
    // initdb and every migration once here, so a new DATA_DIR does not spend seconds on them
    execFileSync(process.execPath, ["--conditions=source", "--import", "tsx", "services/dbservice/src/pglite-template.ts", join(root, outDir, "pgdata.tar.gz")], { cwd: root, stdio: ["ignore", "ignore", "inherit"] });
  }
  return join(root, outDir, "crm.mjs");
}

/** dbservice's migrations and each domain store's; file names are unique across them (one sequence). */
export function migrationFolders(root = process.cwd()) {
  const stores = readdirSync(join(root, "services"))
    .map((name) => join(root, "services", name, "store", "migrations"))
    .filter((dir) => existsSync(dir));
  return [join(root, "services/dbservice/src/migrations"), ...stores];
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await buildBundle();
  console.log("built dist/crm.mjs");
}

#!/usr/bin/env node
// Builds the web console (web/ → web/dist) with Vite. Runs as the root package's `prepare`, so
// `npm ci` leaves a served console behind and `npm start` needs no extra step (docs/console.md).
//   --if-stale   build only when web/dist is missing or older than a source file (the tests use it)
// Without Vite (a production install, npm ci --omit=dev) it says so and succeeds: nothing to build with.
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { extname, join } from "node:path";
import { fileURLToPath } from "node:url";
import zlib from "node:zlib";

const root = fileURLToPath(new URL("..", import.meta.url));
const web = join(root, "web");
const stamp = join(web, "dist", "index.html");

function newest(path) {
  if (!existsSync(path)) return 0;
  const st = statSync(path);
  if (!st.isDirectory()) return st.mtimeMs;
  let max = 0;
  for (const name of readdirSync(path)) if (name !== "node_modules" && name !== "dist") max = Math.max(max, newest(join(path, name)));
  return max;
}

export function webIsStale() {
  if (!existsSync(stamp)) return true;
  const built = statSync(stamp).mtimeMs;
  return Math.max(newest(web), newest(join(root, "packages", "gen", "src"))) > built;
}

export async function buildWeb() {
  let vite;
  try {
    vite = await import("vite");
  } catch {
    console.log("web: vite is not installed (a production install?): the console in web/dist is not built");
    return false;
  }
  const started = performance.now();
  await vite.build({ root: web, logLevel: "warn", configFile: join(web, "vite.config.ts") });
  precompress(join(web, "dist"));
  console.log(`web: built web/dist in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  return true;
}

/**
 * file.br (brotli 11) and file.gz (gzip 9) beside every text file over 512 bytes: the server sends
 * them as they are (services/all/src/web.ts); brotli 11 takes seconds, too slow for a request.
 */
function precompress(dir) {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) {
      precompress(path);
      continue;
    }
    if (![".html", ".js", ".css", ".svg", ".json", ".map", ".txt"].includes(extname(name))) continue;
    const body = readFileSync(path);
    if (body.length <= 512) continue;
    writeFileSync(`${path}.br`, zlib.brotliCompressSync(body, { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 11, [zlib.constants.BROTLI_PARAM_SIZE_HINT]: body.length } }));
    writeFileSync(`${path}.gz`, zlib.gzipSync(body, { level: 9 }));
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  if (!existsSync(join(web, "index.html"))) {
    console.log("web: no web/ folder here: nothing to build");
  } else if (process.argv.includes("--if-stale") && !webIsStale()) {
    console.log("web: web/dist is up to date");
  } else {
    await buildWeb();
  }
}

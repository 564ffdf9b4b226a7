/**
 * The all-in-one as a child process, as a user runs it: from source (`npm start`'s command) or
 * from the production bundle (bench/.build/crm.mjs, built like `npm run build`). Ready when it
 * prints its "ready: CRM all-in-one at URL" line (whose `ms` is its own start-up time).
 */
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { allInOneReady, nodeFlags, repoRoot, startChild, tsNode, type Child } from "./child.js";

export type Entry = "source" | "bundle";

const bundleFolder = "bench/.build";
export const bundleDir = join(repoRoot, bundleFolder);

type BuildScript = typeof import("../../scripts/build.mjs");
/** The build script of the tree under test (repoRoot: this checkout, or another with --compare). */
const buildScript = async () => (await import(join(repoRoot, "scripts/build.mjs"))) as BuildScript;

/** Builds the bundle exactly as `npm run build` does (scripts/build.mjs), into bench/.build (dist/ is left alone). */
export async function buildBundle(): Promise<string> {
  const { buildBundle: build } = await buildScript();
  return build(repoRoot, bundleFolder);
}

/**
 * Bundles one server entry (e.g. bench/servers/kit-health.ts) with the production build's esbuild
 * options into bench/.build/<name>.mjs; returns its path. `external`: more npm packages left in
 * node_modules, as they would be if they were runtime dependencies (e.g. a devDependency under test).
 */
export async function buildServerBundle(entry: string, external: string[] = []): Promise<string> {
  const { bundleOptions } = await buildScript();
  const { build } = await import("esbuild");
  const outfile = join(bundleFolder, `${entry.split("/").pop()!.replace(/\.ts$/, "")}.mjs`);
  const options = bundleOptions(repoRoot);
  await build({ ...options, external: [...(options.external ?? []), ...external], entryPoints: [entry], outfile, sourcemap: false });
  return join(repoRoot, outfile);
}

export interface AppChild extends Child<{ url: string; ms: number }> {
  dataDir: string;
}

export async function startApp(o: { entry?: Entry; env?: Record<string, string | undefined>; dataDir?: string; timeoutMs?: number; name?: string } = {}): Promise<AppChild> {
  const dataDir = o.dataDir ?? mkdtempSync(join(tmpdir(), "crm-bench-data-"));
  const entry = o.entry ?? "source";
  const bundle = join(bundleDir, "crm.mjs");
  if (entry === "bundle" && !existsSync(bundle)) throw new Error(`${bundle} is missing: buildBundle() first`);
  const { cmd, args } = entry === "source" ? tsNode("services/all/src/main.ts", "all") : { cmd: process.execPath, args: [...nodeFlags("crm"), bundle, "all"] };
  const child = await startChild({
    name: o.name ?? `all-in-one (${entry})`,
    cmd,
    args,
    env: { LOG_LEVEL: "info", HOST: "127.0.0.1", PORT: "0", DATA_DIR: dataDir, ...o.env },
    ready: allInOneReady,
    timeoutMs: o.timeoutMs ?? 120_000,
  });
  const stop = child.stop.bind(child);
  // Our own idle keep-alive connections would hold the server's drain (see bench/README.md): close them first.
  child.stop = (timeoutMs?: number) => (closeClients(child.value.url), stop(timeoutMs ?? 40_000));
  return Object.assign(child, { dataDir });
}

const agents = new Map<string, http.Agent>();
let trusted: Buffer | undefined;

/** CA certificate(s) that https:// calls of connectJson trust (the cluster's dev CA). */
export function trustCa(pem: Buffer) {
  trusted = pem;
}

/** Destroys the keep-alive connections connectJson holds to `baseUrl`. */
export function closeClients(baseUrl: string) {
  const origin = new URL(baseUrl).origin;
  agents.get(origin)?.destroy();
  agents.delete(origin);
}

export const removeDir = (dir: string) => rmSync(dir, { recursive: true, force: true });

/** POST a Connect JSON unary call (HTTP/1.1, keep-alive); throws with the server's message on a non-200. */
export function connectJson<T = Record<string, unknown>>(baseUrl: string, method: string, body: unknown, token?: string): Promise<T> {
  const url = new URL(`${baseUrl}/${method}`);
  const tls = url.protocol === "https:";
  let agent = agents.get(url.origin);
  if (!agent) agents.set(url.origin, (agent = tls ? new https.Agent({ keepAlive: true, maxSockets: 64, ...(trusted ? { ca: trusted } : {}) }) : new http.Agent({ keepAlive: true, maxSockets: 64 })));
  const payload = Buffer.from(JSON.stringify(body));
  return new Promise<T>((resolve, reject) => {
    const req = (tls ? https : http).request(url, {
      method: "POST",
      agent,
      headers: { "content-type": "application/json", "connect-protocol-version": "1", "content-length": payload.length, ...(token ? { authorization: `Bearer ${token}` } : {}) },
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.once("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        if (res.statusCode !== 200) return reject(new Error(`${method} answered ${res.statusCode}: ${text.slice(0, 300)}`));
        try {
          resolve(JSON.parse(text) as T);
        } catch {
          reject(new Error(`${method} answered 200 with a body that is not JSON: ${text.slice(0, 200)}`));
        }
      });
    });
    req.setTimeout(60_000, () => req.destroy(new Error(`${method} took over 60 s`)));
    req.once("error", reject);
    req.end(payload);
  });
}

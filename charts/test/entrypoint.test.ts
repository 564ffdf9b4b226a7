/**
 * The image's start command, run outside Docker the way the container runs it: the production
 * bundle (npm run build's dist/crm.mjs) in a directory laid out like the image's /app, the
 * Dockerfile's ENTRYPOINT + the chart's argument, the chart's environment (file paths mapped to
 * local files, in-cluster hosts to this machine's servers, ports to free ones), as an unprivileged
 * user for whom the working directory is read-only. Each target must print its ready line, answer
 * /healthz, and exit 0 on SIGTERM, having written nothing outside DATA_DIR and /tmp.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { chmodSync, cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, chownSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { freshDatabase, need, needNone, postgresUp, rabbitUp, redisUp, installHint, TEST_AMQP_URL, TEST_REDIS_URL, type TestDatabase } from "@crm/testkit";
import { goProblem, render, repo, type K8sObject } from "./lib.ts";

const opensslOk = spawnSync("openssl", ["version"], { stdio: "ignore" }).status === 0;
const skip =
  needNone(goProblem()) ||
  need("openssl", opensslOk, "apt-get install openssl") ||
  need("PostgreSQL", await postgresUp(), installHint.postgres) ||
  need("Redis", await redisUp(), installHint.redis) ||
  need("RabbitMQ", await rabbitUp(), installHint.rabbitmq);

/** The Dockerfile's final-stage ENV and ENTRYPOINT (what every container starts with). */
function imageStart() {
  const text = readFileSync(join(repo, "Dockerfile"), "utf8").replace(/\\\n/g, " ");
  const finalStage = text.slice(text.lastIndexOf("\nFROM "));
  const env: Record<string, string> = {};
  for (const m of finalStage.matchAll(/^ENV\s+(.+)$/gm)) for (const kv of m[1]!.trim().split(/\s+/)) { const [k, v] = kv.split("="); env[k!] = v!; }
  const entrypoint = JSON.parse(/^ENTRYPOINT\s+(\[.*\])$/m.exec(finalStage)![1]!) as string[];
  return { env, entrypoint };
}

function listTree(dir: string, base = dir, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (name === "node_modules") continue;
    const st = statSync(p);
    out.push(`${p.slice(base.length)}:${st.size}:${st.mtimeMs}`);
    if (st.isDirectory()) listTree(p, base, out);
  }
  return out.sort();
}

describe("the image's entry point, run as the container runs it", { skip }, () => {
  const root = skip ? "" : mkdtempSync(join(tmpdir(), "crm-entry-"));
  const app = join(root, "app"); // the image's WORKDIR /app
  const certs = join(root, "certs");
  const keys = join(root, "keys");
  // as root, run as "nobody" so the read-only working directory is really read-only (root ignores
  // permissions) — when nobody can read the checkout; else as ourselves, checking for writes after
  const nobodyCanRead = (p: string) => spawnSync(process.execPath, ["-e", `require("fs").accessSync(${JSON.stringify(p)})`], { uid: 65534, gid: 65534, stdio: "ignore" }).status === 0;
  const asRoot = process.getuid?.() === 0 && !skip && nobodyCanRead(join(repo, "node_modules/pino/package.json"));
  const uid = asRoot ? 65534 : process.getuid!();
  const gid = asRoot ? 65534 : process.getgid!();
  let db: TestDatabase | undefined;
  const children: ChildProcess[] = [];
  let micro: K8sObject[] = [];
  let aio: K8sObject[] = [];
  const { env: imageEnv, entrypoint } = skip ? { env: {}, entrypoint: [] } : imageStart();

  before(async () => {
    // 1. npm run build, in a scratch copy of the layout (so the repo's own dist/ is left alone)
    const work = join(root, "build");
    mkdirSync(work);
    for (const name of ["package.json", "node_modules", "packages", "services", "scripts", "proto"]) symlinkSync(join(repo, name), join(work, name));
    const build = spawnSync(process.execPath, [join(repo, "scripts/build.mjs")], { cwd: work, encoding: "utf8" });
    assert.equal(build.status, 0, `npm run build failed:\n${build.stdout}\n${build.stderr}`);
    // 2. the image's /app: manifests, production node_modules (here: the repo's), dist/
    mkdirSync(app);
    cpSync(join(work, "dist"), join(app, "dist"), { recursive: true });
    cpSync(join(repo, "package.json"), join(app, "package.json"));
    symlinkSync(join(repo, "node_modules"), join(app, "node_modules"));
    // 3. certificates and JWT keys as the chart mounts them
    const pki = spawnSync(process.execPath, [join(repo, "scripts/certs.mjs"), certs, keys], { encoding: "utf8" });
    assert.equal(pki.status, 0, pki.stderr);
    for (const d of [root, app, certs, keys]) chmodSync(d, 0o755);
    for (const d of [certs, keys]) for (const f of readdirSync(d)) chmodSync(join(d, f), 0o644);
    spawnSync("chmod", ["-R", "a+rX", app]);
    if (process.getuid?.() !== 0) spawnSync("chmod", ["-R", "a-w", app]);
    db = await freshDatabase("crm_entry");
    micro = render([], { values: { jwt: { existingSecret: "crm-jwt" } } }).objects;
    aio = render([], { values: { mode: "allInOne", postgresql: { enabled: false }, redis: { enabled: false }, rabbitmq: { enabled: false } } }).objects;
  });

  after(async () => {
    for (const c of children) if (c.exitCode === null) c.kill("SIGKILL");
    await db?.drop();
    if (root) {
      spawnSync("chmod", ["-R", "u+w", root]);
      rmSync(root, { recursive: true, force: true });
    }
  });

  /** The chart's env for a container, made runnable here. */
  async function localEnv(container: any, target: string, dataDir: string): Promise<Record<string, string>> {
    const files: Record<string, string> = {
      "/etc/crm/tls/tls.crt": join(certs, `${target}.crt`),
      "/etc/crm/tls/tls.key": join(certs, `${target}.key`),
      "/etc/crm/tls/ca.crt": join(certs, "ca.crt"),
      "/etc/crm/jwt/jwks.json": join(keys, "jwks.json"),
      "/etc/crm/jwt-private/jwt-private-key.pem": join(keys, "private.pem"),
    };
    const env: Record<string, string> = { PATH: process.env.PATH!, ...imageEnv };
    for (const e of container.env as { name: string; value?: string; valueFrom?: unknown }[]) {
      if (e.valueFrom) continue; // *_PASSWORD from Secrets: the local servers need none
      let v = e.value ?? "";
      if (v in files) v = files[v]!;
      else if (e.name === "PORT" || e.name === "OPS_PORT") v = "0"; // free ports, named by the ready line (no race with other tests for a port picked here)
      else if (e.name === "DATABASE_URL") v = db!.url;
      else if (e.name === "REDIS_URL") v = TEST_REDIS_URL;
      else if (e.name === "AMQP_URL") v = TEST_AMQP_URL;
      else if (e.name === "DATA_DIR") v = dataDir;
      env[e.name] = v;
    }
    return env;
  }

  async function startAndStop(target: string, container: any) {
    const dataDir = join(root, `data-${target}`);
    mkdirSync(dataDir);
    chownSync(dataDir, uid, gid);
    const env = await localEnv(container, target, dataDir);
    // the image's DATA_DIR is writable only where the pod mounts a volume there
    if (!container.env.some((e: any) => e.name === "DATA_DIR") && (container.volumeMounts ?? []).some((m: any) => m.mountPath === imageEnv.DATA_DIR)) env.DATA_DIR = dataDir;
    const before = listTree(app);
    const [cmd, ...rest] = entrypoint;
    assert.equal(cmd, "node");
    const child = spawn(process.execPath, [...rest, ...container.args], { cwd: app, env, uid, gid, stdio: ["ignore", "pipe", "pipe"] });
    children.push(child);
    let out = "";
    child.stdout!.on("data", (d) => (out += d));
    child.stderr!.on("data", (d) => (out += d));
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    const ready = await new Promise<any>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${target}: no ready line in 180 s:\n${out}`)), 180_000);
      const check = () => {
        for (const line of out.split("\n")) {
          try {
            const j = JSON.parse(line);
            if (typeof j.msg === "string" && (j.msg === "ready" || /^ready: /.test(j.msg))) return clearTimeout(timer), resolve(j);
          } catch {}
        }
      };
      child.stdout!.on("data", check);
      child.stderr!.on("data", check);
      exited.then((code) => (clearTimeout(timer), reject(new Error(`${target} exited ${code} before ready:\n${out}`))));
    });
    const healthPort = target === "all" ? Number(new URL(ready.url).port) : Number(ready.opsPort);
    // one request on a connection that is closed after it (a probe's), then SIGTERM
    const status = await new Promise<number>((resolve, reject) =>
      http.get({ host: "127.0.0.1", port: healthPort, path: "/healthz", agent: false, headers: { connection: "close" } }, (res) => (res.resume(), resolve(res.statusCode!))).on("error", reject),
    );
    assert.equal(status, 200, `${target}: /healthz`);
    const stopAt = Date.now();
    child.kill("SIGTERM");
    const code = await Promise.race([exited, new Promise((r) => setTimeout(() => r("timeout"), 30_000))]);
    assert.equal(code, 0, `${target}: exits 0 after draining on SIGTERM\n${out.slice(-2000)}`);
    const drainMs = Date.now() - stopAt;
    assert.ok(drainMs < Number(env.SHUTDOWN_TIMEOUT_MS ?? 25_000), `${target}: an idle process stops at once on SIGTERM (took ${drainMs} ms)`);
    assert.deepEqual(listTree(app), before, `${target} wrote into the working directory`);
  }

  for (const target of ["auth", "dbservice", "chats", "timers", "admin", "email", "logs", "cache", "records"]) {
    it(`${target} starts with the chart's command and environment`, async () => {
      const d = micro.find((o) => o.kind === "Deployment" && o.metadata.labels?.["app.kubernetes.io/component"] === target)!;
      await startAndStop(target, d.spec.template.spec.containers[0]);
    });
  }

  it("all-in-one starts, writing only under DATA_DIR", async () => {
    const d = aio.find((o) => o.kind === "Deployment")!;
    await startAndStop("all", d.spec.template.spec.containers[0]);
    assert.ok(readdirSync(join(root, "data-all")).length > 0, "all-in-one keeps its data in DATA_DIR");
  });
});


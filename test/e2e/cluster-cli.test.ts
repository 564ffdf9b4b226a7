/**
 * `npm run cluster` itself (scripts/cluster.mjs): one clear line naming the package when a piece is
 * missing; one "ready" line when up; Ctrl-C (SIGINT) stops every process it started.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { dropDatabase, needNone, until } from "@crm/testkit";
import { checkPrerequisites, defaults, repoRoot } from "../../scripts/cluster/lib.mjs";
import { nginxProblem } from "../../services/gateway/run.mjs";
import { request } from "../../services/gateway/test/helpers.ts";

const cli = join(repoRoot, "scripts", "cluster.mjs");
const backing = await checkPrerequisites({ ...defaults, gateway: false });
const skip = needNone(nginxProblem(), ...backing);

function run(env: Record<string, string>) {
  return spawnSync(process.execPath, [cli, "--free-ports", "--data-dir", join(tmpdir(), "crm-cli-never-used")], {
    env: { ...process.env, ...env },
    encoding: "utf8",
    timeout: 30_000,
  });
}

describe("npm run cluster: missing pieces", () => {
  it("names the apt package of a missing nginx, njs module, Redis or RabbitMQ in one line each", () => {
    let r = run({ NGINX_BIN: "/nonexistent/nginx" });
    assert.equal(r.status, 1);
    assert.equal(r.stderr.trim(), "cluster: the nginx binary is missing; install with: apt-get install -y nginx", "only what is missing");
    r = run({ CRM_GW_NJS_MODULE: "/nonexistent/ngx_http_js_module.so" });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /^cluster: the nginx njs module \(\/nonexistent\/ngx_http_js_module\.so\) is missing; install with: apt-get install -y libnginx-mod-http-js$/m);
    r = run({ AMQP_URL: "amqp://guest:guest@127.0.0.1:1", NGINX_BIN: process.env.NGINX_BIN ?? "" });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /^cluster: RabbitMQ is not reachable at 127\.0\.0\.1:1 \(AMQP_URL\): start it, or install it with: apt-get install -y rabbitmq-server$/m);
    r = run({ REDIS_URL: "redis://127.0.0.1:1" });
    assert.match(r.stderr, /^cluster: Redis is not reachable at 127\.0\.0\.1:1 \(REDIS_URL\): start it, or install it with: apt-get install -y redis-server$/m);
    r = run({ DATABASE_URL: "postgres://postgres@127.0.0.1:1/crm" });
    assert.match(r.stderr, /^cluster: PostgreSQL is not reachable at 127\.0\.0\.1:1 \(DATABASE_URL\): start it, or install it with: apt-get install -y postgresql$/m);
  });
});


function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: "127.0.0.1", port });
    s.once("connect", () => (s.destroy(), resolve(true)));
    s.once("error", () => resolve(false));
  });
}

describe("npm run cluster: start and Ctrl-C", { skip, timeout: 400_000 }, () => {
  it("prints one ready line, serves through the gateway, and stops everything on SIGINT", async () => {
    const dir = mkdtempSync(join(tmpdir(), "crm-cli-"));
    const db = `crm_cli_${process.pid}`;
    const child = spawn(process.execPath, [cli, "--only", "dbservice,auth", "--free-ports", "--data-dir", dir], {
      env: { ...process.env, DATABASE_URL: `postgres://postgres@127.0.0.1:5432/${db}`, LOGS_REPORT_ERRORS: "false" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (err += d));
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    try {
      const line = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no ready line in 300 s: ${err}`)), 300_000);
        child.stdout.on("data", () => {
          const m = /^cluster ready in .*$/m.exec(out);
          if (m) (clearTimeout(timer), resolve(m[0]));
        });
        void exited.then((code) => reject(new Error(`cluster exited ${code}: ${err}`)));
      });
      assert.equal(out.trim().split("\n").length, 1, "exactly one line on stdout");
      const url = /(https:\/\/127\.0\.0\.1:(\d+))/.exec(line);
      assert.ok(url, line);
      const port = Number(url[2]);
      const ports = [...line.matchAll(/(?:dbservice|auth):(\d+)/g)].map((m) => Number(m[1]));
      assert.equal(ports.length, 2, line);
      const ca = readFileSync(join(dir, "certs", "ca.crt"));
      for (const f of ["client.crt", "client.key", "gateway.crt", "auth.crt", "dbservice.crt"]) readFileSync(join(dir, "certs", f));
      assert.ok(JSON.parse(readFileSync(join(dir, "keys", "jwks.json"), "utf8")).keys[0].kid);
      const jwks = await request({ port, ca, path: "/.well-known/jwks.json" });
      assert.equal(jwks.status, 200, jwks.body);

      child.kill("SIGINT");
      assert.equal(await exited, 0, err);
      assert.match(err, /cluster: stopped/);
      for (const p of [port, ...ports]) assert.equal(await portOpen(p), false, `port ${p} still open after Ctrl-C`);
    } finally {
      if (child.exitCode === null) child.kill("SIGKILL");
      await dropDatabase(db);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("`npm run cluster` leaves nothing behind when npm itself is killed (SIGKILL)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "crm-cli-npm-"));
    const db = `crm_cli_npm_${process.pid}`;
    const child = spawn("npm", ["run", "--silent", "cluster", "--", "--only", "dbservice,auth", "--free-ports", "--data-dir", dir], {
      cwd: repoRoot,
      env: { ...process.env, DATABASE_URL: `postgres://postgres@127.0.0.1:5432/${db}`, LOGS_REPORT_ERRORS: "false" },
      stdio: ["ignore", "pipe", "pipe"],
      detached: true, // its own process group, so the test can clean up whatever is left
    });
    let out = "";
    let err = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (err += d));
    try {
      const line = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no ready line in 300 s: ${err}`)), 300_000);
        child.stdout.on("data", () => {
          const m = /^cluster ready in .*$/m.exec(out);
          if (m) (clearTimeout(timer), resolve(m[0]));
        });
        child.once("exit", (code) => reject(new Error(`npm exited ${code} before ready: ${err}`)));
      });
      const ports = [Number(/https:\/\/127\.0\.0\.1:(\d+)/.exec(line)![1]), ...[...line.matchAll(/(?:dbservice|auth):(\d+)/g)].map((m) => Number(m[1]))];
      assert.equal(ports.length, 3, line);
      for (const p of ports) assert.equal(await portOpen(p), true, `port ${p} open while running`);
      process.kill(child.pid!, "SIGKILL"); // npm only: its children are not signalled
      for (const p of ports) await until(`port ${p} closed after npm was killed`, async () => !(await portOpen(p)), 60_000);
      await until("the cluster script to say it stopped", () => /cluster: stopped/.test(err), 10_000);
    } finally {
      try {
        process.kill(-child.pid!, "SIGKILL");
      } catch {
        // nothing left
      }
      await dropDatabase(db);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

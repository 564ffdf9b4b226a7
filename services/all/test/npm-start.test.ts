/**
 * A newcomer's first run: `npm start` with a fresh ./data, wait for the ready line, register a
 * company over plain HTTP (Connect JSON), then Ctrl-C stops it cleanly. Then a restart on the
 * same data finds the company.
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { after, test } from "node:test";
import { until } from "@crm/testkit";

const root = new URL("../../../", import.meta.url).pathname;
const dataDir = mkdtempSync(join(tmpdir(), "crm-newcomer-"));
after(() => rmSync(dataDir, { recursive: true, force: true }));

function start(): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn("npm", ["start", "--silent"], { cwd: root, env: { ...process.env, PORT: "0", DATA_DIR: dataDir, DATABASE_URL: "", REDIS_URL: "" }, stdio: ["ignore", "pipe", "inherit"], detached: true });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("no ready line within 150 s")), 150_000);
    createInterface({ input: child.stdout! }).on("line", (line) => {
      const m = /"url":"(http:\/\/[^"]+)".*ready/.exec(line);
      if (m) {
        clearTimeout(timer);
        resolve({ child, url: m[1]! });
      }
    });
    child.once("exit", (code) => reject(new Error(`npm start exited with ${code} before ready`)));
  });
}

/** Ctrl-C (SIGINT to the process group); resolves when the app logged "stopped" and npm exited. */
function stop(child: ChildProcess): Promise<boolean> {
  return new Promise((resolve) => {
    let stopped = false;
    createInterface({ input: child.stdout! }).on("line", (line) => (stopped ||= /"msg":"stopped"/.test(line)));
    child.once("exit", (code, signal) => resolve(stopped && (code === 0 || signal === "SIGINT")));
    process.kill(-child.pid!, "SIGINT");
  });
}

const post = (url: string, body: unknown) => fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });

test("npm start on a fresh machine: ready line, register over HTTP, clean stop, data kept", { timeout: 400_000 }, async () => {
  const first = await start();
  const reg = await post(`${first.url}/crm.auth.v1.AuthService/RegisterCompany`, { companyName: "Newcomer Ltd", email: "new@comer.io", password: "a long enough passphrase", ownerName: "Nia" });
  assert.equal(reg.status, 200, await reg.clone().text());
  const body = (await reg.json()) as { companyId: string; accessToken: string };
  assert.match(body.companyId, /^[0-9a-f-]{36}$/);
  assert.ok(await stop(first.child), "stopped cleanly on Ctrl-C");

  const second = await start();
  try {
    const login = await post(`${second.url}/crm.auth.v1.AuthService/Login`, { email: "new@comer.io", password: "a long enough passphrase" });
    assert.equal(login.status, 200, await login.clone().text());
    assert.equal(((await login.json()) as { companyId: string }).companyId, body.companyId);
  } finally {
    assert.ok(await stop(second.child), "stopped cleanly on Ctrl-C");
  }
});

/** True when nothing accepts TCP connections at `url` any more (refused), false while something does. */
function closed(url: string): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const s = net.connect({ host: hostname, port: Number(port) });
    s.once("connect", () => (s.destroy(), resolve(false)));
    s.once("error", () => resolve(true));
  });
}

for (const signal of ["SIGTERM", "SIGKILL"] as const) {
  test(`kill -${signal} <pid of npm> after npm start: the server does not stay behind`, { timeout: 200_000 }, async () => {
    const { child, url } = await start();
    try {
      assert.equal(await closed(url), false, "serving before npm is killed");
      process.kill(child.pid!, signal); // npm alone, not its process group
      await until(`${url} closed after npm got ${signal}`, () => closed(url), 10_000);
    } finally {
      try {
        process.kill(-child.pid!, "SIGKILL"); // whatever is left of the group
      } catch {
        // nothing left
      }
    }
  });
}

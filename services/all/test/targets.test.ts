/** The entry point's targets: a bad or missing setting stops a service with ONE clear line. */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { test } from "node:test";

const root = new URL("../../../", import.meta.url).pathname;
const run = (args: string[], env: Record<string, string>) =>
  spawnSync(process.execPath, ["--conditions=source", "--import", "tsx", "services/all/src/main.ts", ...args], { cwd: root, env: { PATH: process.env.PATH!, ...env }, encoding: "utf8", timeout: 60_000 });

test("a service without its JWKS file stops with one line naming the variable", () => {
  const r = run(["auth"], {});
  assert.equal(r.status, 1);
  assert.equal(r.stderr.trim(), "config: JWT_PUBLIC_KEYS_FILE must name the JWKS file with the public keys that verify access tokens (it is not set)");
});

test("a malformed value names the variable, the expectation and the value", () => {
  const r = run(["dbservice"], { PORT: "eighty", JWT_PUBLIC_KEYS_FILE: "/etc/hostname" });
  assert.equal(r.status, 1);
  assert.equal(r.stderr.trim().split("\n").length, 1);
  assert.match(r.stderr, /^config: PORT must be a TCP port .*\(got "eighty"\)/);
});

test("an unknown target lists the valid ones", () => {
  const r = run(["nope"], {});
  assert.equal(r.status, 2);
  assert.match(r.stderr, /unknown target "nope": use all, auth, dbservice, chats/);
});

/**
 * JWT key rotation at the gateway (issue 20 item 1; docs/operations.md, "Rotating the JWT signing
 * key"): njs/jwt.js reads CRM_GW_JWKS_FILE for every token it has not verified yet, so a kid added
 * to the file is taken by the running nginx — no reload, no new workers — while the old kid keeps
 * working, and a kid dropped from the file is refused for tokens the gateway has not seen before.
 * The key sets are made by scripts/jwks.mjs, as the documented procedure makes them.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { readFileSync, renameSync, writeFileSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import { needNone } from "@crm/testkit";
import { jwksOf } from "../../../scripts/jwks.mjs";
import { nginxProblem } from "../run.mjs";
import { startGatewayFixture, type GatewayFixture } from "./fixture.ts";
import { request, TokenMaker, type Res } from "./helpers.ts";

const skip = needNone(nginxProblem());

/** The pids of nginx's worker processes (a reload, SIGHUP, replaces every one of them). */
function workerPids(masterPid: number): number[] {
  const out = execFileSync("ps", ["-o", "pid=,args=", "--ppid", String(masterPid)], { encoding: "utf8" });
  return out
    .split("\n")
    .filter((l) => /worker process/.test(l))
    .map((l) => Number(l.trim().split(/\s+/)[0]))
    .sort((a, b) => a - b);
}

/** Replaces the file in one step, as the kubelet swaps a Secret's files (never a half-written JWKS). */
function writeAtomically(file: string, text: string) {
  writeFileSync(`${file}.next`, text);
  renameSync(`${file}.next`, file);
}

describe("JWT key rotation at the running gateway", { skip, timeout: 120_000 }, () => {
  let gw: GatewayFixture;
  before(async () => {
    gw = await startGatewayFixture();
  });
  after(async () => {
    await gw?.close();
  });

  const check = (token: string): Promise<Res> =>
    request({ port: gw.port, ca: gw.ca, path: "/crm.auth.v1.AuthService/Check", method: "POST", headers: { "content-type": "application/json", authorization: `Bearer ${token}` }, body: "{}" });
  const subOf = (token: string) => JSON.parse(Buffer.from(token.split(".")[1]!, "base64url").toString()).sub as string;
  const assertAccepted = async (token: string, what: string) => {
    const res = await check(token);
    assert.equal(res.status, 200, `${what}: ${res.body}`);
    assert.equal(res.json().userId, subOf(token), `${what}: the service got the token's subject`);
  };
  const assertRefused = async (token: string, what: string, reason: RegExp) => {
    const res = await check(token);
    assert.equal(res.status, 401, `${what}: ${res.body}`);
    assert.equal(res.json().code, "unauthenticated", what);
    assert.match(res.json().message, reason, what);
  };

  it("a kid added to the JWKS file is accepted without a reload; the old kid keeps working; a dropped kid is refused", async () => {
    const oldPem = readFileSync(gw.jwksFile.replace(/jwks\.json$/, "private.pem"), "utf8");
    const newPem = generateKeyPairSync("rsa", { modulusLength: 2048, privateKeyEncoding: { type: "pkcs8", format: "pem" }, publicKeyEncoding: { type: "spki", format: "pem" } }).privateKey;
    const [oldJwk, newJwk] = jwksOf([oldPem, newPem]).keys;
    assert.equal(oldJwk!.kid, gw.tokens.kid, "scripts/jwks.mjs gives the running key the kid its tokens carry");
    const newTokens = await TokenMaker.fromPem(newPem, newJwk!.kid);
    assert.notEqual(newTokens.kid, gw.tokens.kid);

    const master = gw.nginx.pid;
    const workers = workerPids(master);
    assert.ok(workers.length >= 1, "nginx runs workers");

    const oldSeen = await gw.tokens.sign({});
    await assertAccepted(oldSeen, "old kid, before the rotation");

    // 1. the new key is not published yet: its token is refused, and the refusal is not cached
    const early = await newTokens.sign({});
    await assertRefused(early, "new kid before the JWKS has it", /unknown key id/);

    // 2. publish old + new (docs/operations.md step 1); nginx is not told
    writeAtomically(gw.jwksFile, `${JSON.stringify(jwksOf([oldPem, newPem]), null, 2)}\n`);
    await assertAccepted(early, "the same new-kid token once the JWKS has the key");
    await assertAccepted(await newTokens.sign({}), "a fresh new-kid token");
    await assertAccepted(oldSeen, "an old-kid token verified before");
    await assertAccepted(await gw.tokens.sign({}), "a fresh old-kid token, verified against the new file");

    // 3. drop the old key (step 3): tokens of the old kid the gateway has not seen are refused
    writeAtomically(gw.jwksFile, `${JSON.stringify(jwksOf([newPem]), null, 2)}\n`);
    await assertRefused(await gw.tokens.sign({}), "a fresh old-kid token after the old key is gone", /unknown key id/);
    await assertAccepted(await newTokens.sign({}), "a fresh new-kid token after the old key is gone");

    assert.ok(gw.nginx.running, "nginx kept running");
    assert.equal(readFileSync(`${gw.nginx.dir}/nginx.pid`, "utf8").trim(), String(master), "the same master");
    assert.deepEqual(workerPids(master), workers, "the same workers: nginx was not reloaded");
    assert.deepEqual(gw.errors.filter((l) => /js exception/.test(l)), [], "the verifier never threw");
  });
});

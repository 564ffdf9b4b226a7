/**
 * Rotating the JWT signing key with overlapping key ids, step by step as docs/operations.md
 * ("Rotating the JWT signing key") says: publish the new key next to the old one, let auth sign
 * with the new one, remove the old one — WITHOUT restarting auth: it reads its signing key and
 * JWKS again when the files change (signing-keys.ts), as every service reloads its JWKS. The JWKS
 * files are made by scripts/jwks.mjs as there; the other services' verifier is the kit's,
 * reloading JWT_PUBLIC_KEYS_FILE.
 */
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { generateKeyPairSync, randomUUID } from "node:crypto";
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { after, test } from "node:test";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { decodeProtectedHeader } from "jose";
import { pino } from "pino";
import { ConfigError, createLogger, createTokenVerifier, memoryRevocations, readJwks, watchJwks } from "@crm/kit";
import { rotationLoad, until } from "@crm/testkit";
import { AuthService } from "@crm/gen/crm/auth/v1/auth_pb";
import { watchSigningKeys } from "../src/signing-keys.js";
import { createTokenIssuer, loadSigningKey } from "../src/tokens.js";

const root = resolve(fileURLToPath(new URL("../../..", import.meta.url)));
const dir = mkdtempSync(join(tmpdir(), "crm-jwt-rotation-"));
after(() => rmSync(dir, { recursive: true, force: true }));

const pem = () => generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({ type: "pkcs8", format: "pem" }) as string;
function newKeyFile(name: string): string {
  const file = join(dir, name);
  writeFileSync(file, pem());
  return file;
}

/** `node scripts/jwks.mjs KEYS... > jwks.json`, written as the kubelet swaps a Secret's file: at once. */
function publish(jwksFile: string, ...keyFiles: string[]) {
  const jwks = execFileSync(process.execPath, [join(root, "scripts/jwks.mjs"), ...keyFiles], { encoding: "utf8" });
  atomicWrite(jwksFile, jwks);
}
function atomicWrite(file: string, data: string | Buffer) {
  writeFileSync(`${file}.new`, data);
  renameSync(`${file}.new`, file);
}
/** The kid scripts/jwks.mjs gives a key file. */
const kidOf = (keyFile: string) => (JSON.parse(execFileSync(process.execPath, [join(root, "scripts/jwks.mjs"), keyFile], { encoding: "utf8" })) as { keys: { kid: string }[] }).keys[0]!.kid;

const claims = () => ({ userId: randomUUID(), companyId: randomUUID(), role: "member" as const, sessionId: randomUUID() });
const opts = { issuer: "crm-auth", audience: "crm-api" };

/** A logger whose lines the test reads. */
function capture() {
  const lines: { level: number; msg: string }[] = [];
  const log = pino({ level: "debug" }, { write: (s: string) => void lines.push(JSON.parse(s) as { level: number; msg: string }) });
  return { log, lines, warnings: () => lines.filter((l) => l.level >= 40).map((l) => l.msg) };
}

test("auth's key files changed apart: a key the JWKS does not publish is never signed with; broken files keep the last good pair", async () => {
  const sub = mkdtempSync(join(dir, "apart-"));
  const oldKey = join(sub, "old.pem");
  const newKey = join(sub, "new.pem");
  writeFileSync(oldKey, pem());
  writeFileSync(newKey, pem());
  const privateFile = join(sub, "jwt-private-key.pem");
  const jwksFile = join(sub, "jwks.json");
  atomicWrite(privateFile, readFileSync(oldKey));
  publish(jwksFile, oldKey);
  const { log, warnings } = capture();
  const keys = watchSigningKeys({ privateFile, jwksFile }, undefined, { intervalMs: 0, log });
  const issuer = createTokenIssuer({ key: () => keys.current().key, ...opts, accessTtlSeconds: 900 });
  const kidIssued = async () => decodeProtectedHeader((await issuer.issueAccess(claims())).token).kid;
  const [oldKid, newKid] = [kidOf(oldKey), kidOf(newKey)];
  assert.equal(await kidIssued(), oldKid);

  // The new private key arrives before the JWKS that publishes it: auth keeps the old key, and says so.
  atomicWrite(privateFile, readFileSync(newKey));
  await keys.check();
  assert.equal(await kidIssued(), oldKid, "a key the JWKS does not publish is not signed with");
  assert.ok(warnings().some((w) => w.includes(`keeps signing with kid ${oldKid} until the JWKS publishes the new key`)), warnings().join("\n"));
  // The JWKS follows: auth signs with the new key at once.
  publish(jwksFile, oldKey, newKey);
  assert.equal(await keys.check(), true);
  assert.equal(await kidIssued(), newKid);
  assert.deepEqual(keys.current().jwks.keys.map((k) => k.kid), [oldKid, newKid]);

  // Half a file (an operator's editor, a copy in progress): the last good pair stays.
  writeFileSync(jwksFile, '{"keys":[');
  assert.equal(await keys.check(), false);
  writeFileSync(privateFile, readFileSync(newKey).subarray(0, 300));
  assert.equal(await keys.check(), false);
  assert.equal(await kidIssued(), newKid);
  assert.equal(keys.current().jwks.keys.length, 2);
  atomicWrite(privateFile, readFileSync(newKey));
  publish(jwksFile, oldKey, newKey);

  // A JWKS that publishes neither the key in the file nor the one auth signs with is not taken.
  const stranger = join(sub, "stranger.pem");
  writeFileSync(stranger, pem());
  publish(jwksFile, stranger);
  assert.equal(await keys.check(), false);
  assert.ok(warnings().some((w) => w.includes("is not usable yet")));
  assert.equal(await kidIssued(), newKid);
  assert.deepEqual(keys.current().jwks.keys.map((k) => k.kid), [oldKid, newKid]);

  // Step 3 as documented: the old key leaves; auth keeps signing with the new one.
  publish(jwksFile, newKey);
  assert.equal(await keys.check(), true);
  assert.deepEqual(keys.current().jwks.keys.map((k) => k.kid), [newKid]);
  assert.equal(await kidIssued(), newKid);
  keys.close();

  // At the start nothing older can be signed with: a key the JWKS does not publish stops auth (step 2 before step 1).
  atomicWrite(privateFile, readFileSync(stranger));
  assert.throws(() => watchSigningKeys({ privateFile, jwksFile }, undefined, { intervalMs: 0, log }), ConfigError);
  await assert.rejects(loadSigningKey(privateFile, undefined, readJwks(jwksFile)), ConfigError);
});

test("JWT key rotation in a running auth process, no restart: 0 failed calls; old and new tokens verify throughout; the JWKS served follows the file", { timeout: 180_000 }, async () => {
  const oldKey = newKeyFile("old.pem");
  const newKey = newKeyFile("new.pem");
  const [oldKid, newKid] = [kidOf(oldKey), kidOf(newKey)];
  // One Secret as the chart mounts it into auth: the private key and the JWKS.
  const privateFile = join(dir, "jwt-private-key.pem");
  const jwksFile = join(dir, "jwks.json");
  atomicWrite(privateFile, readFileSync(oldKey));
  publish(jwksFile, oldKey);
  // Another service's verifier: the kit's, reloading the same JWKS file.
  const jwks = watchJwks(jwksFile, readJwks, { intervalMs: 50, log: createLogger("test", "silent") });
  after(() => jwks.close());
  const elsewhere = createTokenVerifier({ jwks: jwks.current, ...opts, revocations: memoryRevocations() });

  const email = "rotation@example.com";
  const password = "correct horse battery staple";
  const child = spawn(process.execPath, ["--conditions=source", "--import", "tsx", fileURLToPath(new URL("./rotation.fixture.ts", import.meta.url))], {
    env: {
      PATH: process.env.PATH ?? "",
      HOME: process.env.HOME ?? "",
      HOST: "127.0.0.1",
      PORT: "0",
      LOG_LEVEL: "info",
      LOGS_REPORT_ERRORS: "false",
      PUBLIC_URL: "https://crm.test",
      JWT_PRIVATE_KEY_FILE: privateFile,
      JWT_PUBLIC_KEYS_FILE: jwksFile,
      CREDENTIAL_RELOAD_INTERVAL_MS: "50",
      ROTATION_EMAIL: email,
      ROTATION_PASSWORD: password,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const output: string[] = [];
  child.stdout.on("data", (d: Buffer) => output.push(...d.toString().split("\n").filter(Boolean)));
  child.stderr.on("data", (d: Buffer) => output.push(...d.toString().split("\n").filter(Boolean)));
  const exited = new Promise((r) => child.once("exit", r));
  const logged = (text: string) => output.some((l) => l.includes(text));
  let load: ReturnType<typeof rotationLoad> | undefined;
  try {
    await until("auth to be ready", () => logged('"msg":"ready"') || child.exitCode !== null, 60_000);
    const ready = output.find((l) => l.includes('"msg":"ready"'));
    assert.ok(ready, `auth did not start:\n${output.join("\n")}`);
    const base = `http://127.0.0.1:${(JSON.parse(ready) as { port: number }).port}`;
    const transport = createConnectTransport({ baseUrl: base, httpVersion: "1.1" });
    const auth = createClient(AuthService, transport);
    const bearer = (token: string) => ({ headers: { authorization: `Bearer ${token}` } });
    const served = async () => {
      // Asked twice in a row: a reload may fall between the two answers, never between two rounds.
      let rpc: string[] = [];
      let http: string[] = [];
      for (let round = 0; round < 2; round++) {
        rpc = (await auth.getJwks({})).keys.map((k) => k.kid);
        http = ((await (await fetch(`${base}/.well-known/jwks.json`)).json()) as { keys: { kid: string }[] }).keys.map((k) => k.kid);
        if (JSON.stringify(http) === JSON.stringify(rpc)) break;
      }
      assert.deepEqual(http, rpc, "GetJwks and /.well-known/jwks.json serve the same JWKS");
      return rpc;
    };

    // Load: callers refreshing their sessions; every access token is checked by auth (Check) and
    // by another service's verifier.
    load = rotationLoad({ auth, email, password, check: async (token) => (await auth.check({}, bearer(token)), await elsewhere.verify(token)) });
    await load.calls("calls before the rotation");
    assert.deepEqual([...load.kids], [oldKid]);
    assert.deepEqual(await served(), [oldKid]);
    const { accessToken: oldToken } = await auth.login({ email, password });
    assert.equal(decodeProtectedHeader(oldToken).kid, oldKid);

    // Step 1: publish the new key next to the old one; auth keeps signing with the old key.
    publish(jwksFile, oldKey, newKey);
    await until("auth to reload the JWKS it verifies with", () => logged(`the JWKS ${jwksFile} reloaded`), 30_000);
    await until("auth to serve the new JWKS", async () => (await served()).length === 2, 30_000);
    await until("the other service to reload the JWKS", () => jwks.current().keys.length === 2, 30_000);
    load.fresh();
    await load.calls("calls after step 1");
    assert.deepEqual([...load.kids], [oldKid], "auth signs with the old key until its private key file changes");

    // Step 2: the new private key (the same Secret, the JWKS unchanged): auth signs with it, no restart.
    atomicWrite(privateFile, readFileSync(newKey));
    await until("auth to sign with the new key", () => logged(`auth signs access tokens with kid ${newKid} now`), 30_000);
    load.fresh();
    await load.calls("calls after step 2");
    assert.deepEqual([...load.kids], [newKid]);
    const { accessToken: newToken } = await auth.login({ email, password });
    assert.equal(decodeProtectedHeader(newToken).kid, newKid);
    await auth.check({}, bearer(oldToken)); // the overlap: tokens signed before the switch still verify
    await elsewhere.verify(oldToken);

    // Step 3: the old key leaves the JWKS; its tokens are refused, the new ones verify.
    publish(jwksFile, newKey);
    await until("auth to serve the JWKS without the old key", async () => (await served()).length === 1, 30_000);
    await until("the other service to reload the JWKS", () => jwks.current().keys.length === 1, 30_000);
    await until("auth's verifier to reload the JWKS", async () => {
      try {
        await auth.check({}, bearer(oldToken));
        return false;
      } catch (err) {
        assert.equal(ConnectError.from(err).code, Code.Unauthenticated);
        return true;
      }
    }, 30_000);
    await assert.rejects(elsewhere.verify(oldToken), /access token is invalid/);
    assert.deepEqual(await served(), [newKid]);
    await auth.check({}, bearer(newToken));
    await elsewhere.verify(newToken);
    load.fresh();
    await load.calls("calls after step 3");
    await load.stop();
    assert.deepEqual(load.failures, [], "no call failed during the rotation");
    assert.deepEqual([...load.kids], [newKid]);
    assert.equal(child.exitCode, null, "auth was not restarted");
    assert.ok(!output.some((l) => /"level":"(warn|error|fatal)"/.test(l) && l.includes("signing key")), "no warning about the signing key in the documented order");
  } finally {
    void load?.stop(); // its calls end with the process
    child.kill("SIGTERM");
    await exited;
  }
});

test("the development Secret's JWKS names its key as scripts/jwks.mjs does, so step 1 of a rotation keeps the old key's kid", async () => {
  const { devJwtSecret } = (await import(join(root, "charts/crm/scripts/dev-jwt-secret.mjs"))) as { devJwtSecret(name: string): { stringData: Record<string, string> } };
  const secret = devJwtSecret("crm-dev-jwt");
  const pemFile = join(dir, "dev.pem");
  writeFileSync(pemFile, secret.stringData["jwt-private-key.pem"]!);
  const jwks = JSON.parse(secret.stringData["jwks.json"]!) as { keys: { kid: string }[] };
  assert.deepEqual(jwks.keys.map((k) => k.kid), [kidOf(pemFile)]);
  const other = newKeyFile("other.pem");
  const jwksFile = join(dir, "dev-jwks.json");
  publish(jwksFile, pemFile, other); // step 1 as documented
  assert.equal((await loadSigningKey(pemFile, undefined, readJwks(jwksFile))).kid, jwks.keys[0]!.kid);
});

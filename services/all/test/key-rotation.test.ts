/**
 * The all-in-one with its own key pair (JWT_PRIVATE_KEY_FILE, JWT_PUBLIC_KEYS_FILE) takes a JWT
 * signing-key rotation as a cluster does, WITHOUT a restart: the three steps of docs/operations.md
 * ("Rotating the JWT signing key") — publish the new key next to the old one, switch the private
 * key, remove the old one — under load, through the real entry point (services/all/src/main.ts).
 * auth signs with the new key once the JWKS publishes it; every module's token check (auth's Check,
 * the timers' RPCs) takes tokens of any key in the current JWKS. The JWKS files are made by
 * scripts/jwks.mjs and written as the kubelet swaps a Secret's file (at once).
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, test } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import { decodeProtectedHeader } from "jose";
import { rotationLoad, testAppAt, until } from "@crm/testkit";
import { AuthService } from "@crm/gen/crm/auth/v1/auth_pb";
import { TimerService } from "@crm/gen/crm/timer/v1/timer_pb";
import { jwksOf } from "../../../scripts/jwks.mjs";

const root = fileURLToPath(new URL("../../../", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "crm-all-rotation-"));
after(() => rmSync(dir, { recursive: true, force: true }));

const pem = () => generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({ type: "pkcs8", format: "pem" }) as string;
/** Written at once, as the kubelet swaps a Secret's file (or `mv` of a finished file). */
function atomicWrite(file: string, data: string) {
  writeFileSync(`${file}.new`, data);
  renameSync(`${file}.new`, file);
}
const kidOf = (key: string) => jwksOf([key]).keys[0]!.kid;

test("JWT key rotation in the running all-in-one, no restart: 0 failed calls; old tokens verify while published; new logins signed with the new kid", { timeout: 240_000 }, async () => {
  const [oldKey, newKey] = [pem(), pem()];
  const [oldKid, newKid] = [kidOf(oldKey), kidOf(newKey)];
  const privateFile = join(dir, "jwt-private-key.pem");
  const jwksFile = join(dir, "jwks.json");
  const publish = (...keys: string[]) => atomicWrite(jwksFile, `${JSON.stringify(jwksOf(keys), null, 2)}\n`);
  atomicWrite(privateFile, oldKey);
  publish(oldKey);

  const dataDir = join(dir, "data");
  const child = spawn(process.execPath, ["--conditions=source", "--import", "tsx", "services/all/src/main.ts"], {
    cwd: root,
    env: {
      PATH: process.env.PATH ?? "",
      HOME: process.env.HOME ?? "",
      HOST: "127.0.0.1",
      PORT: "0",
      DATA_DIR: dataDir,
      LOG_LEVEL: "info",
      JWT_PRIVATE_KEY_FILE: privateFile,
      JWT_PUBLIC_KEYS_FILE: jwksFile,
      CREDENTIAL_RELOAD_INTERVAL_MS: "50",
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const output: string[] = [];
  child.stdout.on("data", (d: Buffer) => output.push(...d.toString().split("\n").filter(Boolean)));
  child.stderr.on("data", (d: Buffer) => output.push(...d.toString().split("\n").filter(Boolean)));
  const exited = new Promise((r) => child.once("exit", r));
  const count = (text: string) => output.filter((l) => l.includes(text)).length;
  // The verifier's JWKS (kit watchJwks) and auth's key pair (signing-keys.ts) each log their reload.
  const verifierReloaded = `"msg":"the JWKS ${jwksFile} reloaded"`;
  const authReloaded = `the JWT signing key and JWKS (${privateFile}, ${jwksFile}) reloaded`;
  let load: ReturnType<typeof rotationLoad> | undefined;
  try {
    await until("the all-in-one to be ready", () => count("ready: CRM all-in-one at") > 0 || child.exitCode !== null, 120_000);
    const ready = output.find((l) => l.includes("ready: CRM all-in-one at"));
    assert.ok(ready, `the all-in-one did not start:\n${output.join("\n")}`);
    const app = testAppAt((JSON.parse(ready) as { url: string }).url, dataDir, async () => {});
    const auth = app.client(AuthService);
    const served = async () => {
      // Asked twice in a row: a reload may fall between the two answers, never between two rounds.
      let rpc: string[] = [];
      let http: string[] = [];
      for (let round = 0; round < 2; round++) {
        rpc = (await auth.getJwks({})).keys.map((k) => k.kid);
        http = ((await (await fetch(`${app.baseUrl}/.well-known/jwks.json`)).json()) as { keys: { kid: string }[] }).keys.map((k) => k.kid);
        if (JSON.stringify(http) === JSON.stringify(rpc)) break;
      }
      assert.deepEqual(http, rpc, "GetJwks and /.well-known/jwks.json serve the same JWKS");
      return rpc;
    };
    /** The token checked by auth (Check) and by another module (timers), both through the one verifier. */
    const verified = async (token: string) => {
      await app.client(AuthService, { token }).check({});
      await app.client(TimerService, { token }).getWorkingTimer({});
    };
    const refused = async (token: string) => {
      for (const call of [() => app.client(AuthService, { token }).check({}), () => app.client(TimerService, { token }).getWorkingTimer({})]) {
        await assert.rejects(call(), (err: unknown) => ConnectError.from(err).code === Code.Unauthenticated);
      }
    };

    const email = "rotation@example.com";
    const password = "correct horse battery staple";
    await auth.registerCompany({ companyName: "Rotation", address: "", email, phone: "", password, ownerName: "Rota", locale: "en" });

    // Load: callers refreshing their sessions; every access token is checked by auth and by the
    // timers.
    load = rotationLoad({ auth, email, password, check: verified });
    await load.calls("calls before the rotation");
    assert.deepEqual([...load.kids], [oldKid]);
    assert.deepEqual(await served(), [oldKid]);
    const { accessToken: oldToken } = await auth.login({ email, password });
    assert.equal(decodeProtectedHeader(oldToken).kid, oldKid);

    // Step 1: publish the new key next to the old one; auth keeps signing with the old key.
    publish(oldKey, newKey);
    await until("the verifier and auth to reload the JWKS", () => count(verifierReloaded) === 1 && count(authReloaded) === 1, 30_000);
    assert.deepEqual(await served(), [oldKid, newKid]);
    load.fresh();
    await load.calls("calls after step 1");
    assert.deepEqual([...load.kids], [oldKid], "auth signs with the old key until its private key file changes");

    // Step 2: the new private key (the JWKS unchanged): new logins are signed with it, old tokens still verify.
    atomicWrite(privateFile, newKey);
    await until("auth to sign with the new key", () => count(`auth signs access tokens with kid ${newKid} now`) === 1, 30_000);
    load.fresh();
    await load.calls("calls after step 2");
    assert.deepEqual([...load.kids], [newKid]);
    const { accessToken: newToken } = await auth.login({ email, password });
    assert.equal(decodeProtectedHeader(newToken).kid, newKid);
    await verified(oldToken); // the overlap: a token signed before the switch verifies while its key is published
    await verified(newToken);

    // Step 3: the old key leaves the JWKS: its tokens are refused, the new ones verify.
    publish(newKey);
    await until("the verifier and auth to reload the JWKS without the old key", () => count(verifierReloaded) === 2 && count(authReloaded) === 3, 30_000);
    assert.deepEqual(await served(), [newKid]);
    await refused(oldToken);
    await verified(newToken);
    load.fresh();
    await load.calls("calls after step 3");
    await load.stop();
    assert.deepEqual(load.failures, [], "no call failed during the rotation");
    assert.ok(load.ok >= 80, `calls made: ${load.ok}`);
    assert.deepEqual([...load.kids], [newKid]);
    assert.equal(child.exitCode, null, "the all-in-one was not restarted");
    const warnings = output.filter((l) => /"level":"(warn|error|fatal)"/.test(l) && /signing key|JWKS/.test(l));
    assert.deepEqual(warnings, [], "no warning about the key files in the documented order");
  } finally {
    void load?.stop(); // its calls end with the process
    child.kill("SIGTERM");
    await exited;
  }
});

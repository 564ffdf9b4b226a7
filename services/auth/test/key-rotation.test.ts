/**
 * Rotating the JWT signing key with overlapping key ids, step by step as docs/operations.md
 * ("Rotating the JWT signing key") says: publish the new key next to the old one, let auth sign
 * with the new one, remove the old one. The JWKS files are made by scripts/jwks.mjs as there, and
 * the verifier is the kit's, reloading JWT_PUBLIC_KEYS_FILE as every service does.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { generateKeyPairSync, randomUUID } from "node:crypto";
import { mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { after, test } from "node:test";
import { decodeProtectedHeader } from "jose";
import { ConfigError, createLogger, createTokenVerifier, memoryRevocations, readJwks, watchJwks } from "@crm/kit";
import { createTokenIssuer, loadSigningKey } from "../src/tokens.js";

const root = resolve(fileURLToPath(new URL("../../..", import.meta.url)));
const dir = mkdtempSync(join(tmpdir(), "crm-jwt-rotation-"));
after(() => rmSync(dir, { recursive: true, force: true }));

function newKeyFile(name: string): string {
  const file = join(dir, name);
  writeFileSync(file, generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({ type: "pkcs8", format: "pem" }));
  return file;
}

/** `node scripts/jwks.mjs KEYS... > jwks.json`, written as the kubelet swaps a Secret's file: at once. */
function publish(jwksFile: string, ...keyFiles: string[]) {
  const jwks = execFileSync(process.execPath, [join(root, "scripts/jwks.mjs"), ...keyFiles], { encoding: "utf8" });
  writeFileSync(`${jwksFile}.new`, jwks);
  renameSync(`${jwksFile}.new`, jwksFile);
}

const claims = () => ({ userId: randomUUID(), companyId: randomUUID(), role: "member" as const, sessionId: randomUUID() });
const opts = { issuer: "crm-auth", audience: "crm-api" };

test("JWT key rotation: old and new kids overlap in the JWKS; old tokens verify until the old key leaves, new ones carry the new kid", async () => {
  const oldKey = newKeyFile("old.pem");
  const newKey = newKeyFile("new.pem");
  const jwksFile = join(dir, "jwks.json");
  publish(jwksFile, oldKey);
  const jwks = watchJwks(jwksFile, readJwks, { intervalMs: 0, log: createLogger("test", "silent") });
  const verifier = createTokenVerifier({ jwks: jwks.current, ...opts, revocations: memoryRevocations() });

  // Before: auth signs with the old key.
  const signingOld = await loadSigningKey(oldKey, undefined, jwks.current());
  const issuerOld = createTokenIssuer({ key: signingOld, ...opts, accessTtlSeconds: 900 });
  const oldToken = (await issuerOld.issueAccess(claims())).token;
  await verifier.verify(oldToken);
  // auth refuses to start with a key that is not published yet (step 2 before step 1).
  await assert.rejects(loadSigningKey(newKey, undefined, jwks.current()), ConfigError);

  // Step 1: publish the new key next to the old one; every verifier reloads the file.
  publish(jwksFile, oldKey, newKey);
  assert.equal(await jwks.check(), true);
  assert.deepEqual(jwks.current().keys.map((k) => k.kid), [signingOld.kid, jwks.current().keys[1]!.kid]);

  // Step 2: auth restarts with the new signing key: new tokens carry the new kid.
  const signingNew = await loadSigningKey(newKey, undefined, jwks.current());
  assert.notEqual(signingNew.kid, signingOld.kid);
  const newToken = (await createTokenIssuer({ key: signingNew, ...opts, accessTtlSeconds: 900 }).issueAccess(claims())).token;
  assert.equal(decodeProtectedHeader(newToken).kid, signingNew.kid);
  await verifier.verify(newToken);
  await verifier.verify(oldToken); // the overlap: tokens signed before the switch still verify
  const lateOld = (await issuerOld.issueAccess(claims())).token; // an auth pod not yet restarted
  await verifier.verify(lateOld);

  // Step 3: once every old token has expired, the old key leaves the JWKS.
  publish(jwksFile, newKey);
  assert.equal(await jwks.check(), true);
  await assert.rejects(verifier.verify(oldToken), /access token is invalid/);
  await assert.rejects(verifier.verify(lateOld), /access token is invalid/);
  await verifier.verify(newToken);
  jwks.close();
});

#!/usr/bin/env node
/**
 * Prints the JWKS (the public keys that verify access tokens) for RS256 key files, in the order
 * given: what JWT_PUBLIC_KEYS_FILE (the chart's jwks.json) holds during a key rotation.
 *
 *   node scripts/jwks.mjs old-private.pem new-private.pem > jwks.json
 *
 * Each file may hold a private key (PKCS#8 or PKCS#1 PEM) or a public one; only the public half is
 * written. The kid is the key's RFC 7638 thumbprint (its first 16 characters, as scripts/certs.mjs
 * and auth's generated keys), so the same key always gets the same kid. See docs/operations.md,
 * "Rotating the JWT signing key".
 */
import { createHash, createPublicKey } from "node:crypto";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** The JWKS of these PEM texts (private or public RSA keys). */
export function jwksOf(pems) {
  const keys = pems.map((pem, i) => {
    let jwk;
    try {
      jwk = createPublicKey(pem).export({ format: "jwk" });
    } catch (err) {
      throw new Error(`jwks: key ${i + 1} is not a PEM key (${err.message})`);
    }
    if (jwk.kty !== "RSA") throw new Error(`jwks: key ${i + 1} is a ${jwk.kty} key; access tokens are RS256 (RSA)`);
    const kid = createHash("sha256").update(JSON.stringify({ e: jwk.e, kty: jwk.kty, n: jwk.n })).digest("base64url").slice(0, 16);
    return { kty: "RSA", n: jwk.n, e: jwk.e, kid, use: "sig", alg: "RS256" };
  });
  if (new Set(keys.map((k) => k.kid)).size !== keys.length) throw new Error("jwks: the same key is given twice");
  return { keys };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const files = process.argv.slice(2);
  if (files.length === 0) {
    console.error("usage: node scripts/jwks.mjs KEY.pem [KEY.pem ...] > jwks.json");
    process.exit(2);
  }
  try {
    process.stdout.write(`${JSON.stringify(jwksOf(files.map((f) => readFileSync(f, "utf8"))), null, 2)}\n`);
  } catch (err) {
    console.error(err instanceof Error ? err.message : String(err));
    process.exit(1);
  }
}

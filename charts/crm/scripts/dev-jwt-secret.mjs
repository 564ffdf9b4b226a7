#!/usr/bin/env node
// Creates the Secret "crm-dev-jwt" (RS256 signing key + JWKS) in the current kubectl namespace if
// it is not there yet. skaffold.yaml runs it before deploying to kind; for DEVELOPMENT only: in
// production, create your own Secret and set jwt.existingSecret.
import { execFileSync, spawnSync } from "node:child_process";
import { createHash, generateKeyPairSync } from "node:crypto";

const name = process.argv[2] ?? "crm-dev-jwt";
const ns = process.env.SKAFFOLD_NAMESPACES?.split(",")[0] || undefined;
const nsArgs = ns ? ["-n", ns] : [];
const exists = spawnSync("kubectl", ["get", "secret", name, ...nsArgs], { stdio: "ignore" }).status === 0;
if (exists) {
  console.log(`secret ${name} exists`);
  process.exit(0);
}
const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
const jwk = publicKey.export({ format: "jwk" });
const kid = createHash("sha256").update(JSON.stringify({ e: jwk.e, kty: jwk.kty, n: jwk.n })).digest("base64url");
const jwks = { keys: [{ ...jwk, kid, alg: "RS256", use: "sig" }] };
const secret = {
  apiVersion: "v1",
  kind: "Secret",
  metadata: { name, labels: { "app.kubernetes.io/part-of": "crm" } },
  type: "Opaque",
  stringData: {
    "jwt-private-key.pem": privateKey.export({ format: "pem", type: "pkcs8" }).toString(),
    "jwks.json": JSON.stringify(jwks),
  },
};
execFileSync("kubectl", ["apply", ...nsArgs, "-f", "-"], { input: JSON.stringify(secret), stdio: ["pipe", "inherit", "inherit"] });
console.log(`created secret ${name} (kid ${kid})`);

#!/usr/bin/env node
// Creates the Secret "crm-dev-jwt" (RS256 signing key + JWKS) if it is not there yet, in the
// namespace given with -n, else skaffold's (SKAFFOLD_NAMESPACES), else kubectl's current one.
// skaffold.yaml runs it before deploying to kind; for DEVELOPMENT only: in production, create your
// own Secret and set jwt.existingSecret.
//
//   node charts/crm/scripts/dev-jwt-secret.mjs [NAME] [-n NAMESPACE]
//
// The JWKS is made as scripts/jwks.mjs makes it (kid = the key's thumbprint, 16 characters), so
// the key rotation of docs/operations.md, which runs that script, keeps the key's kid.
import { execFileSync, spawnSync } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { jwksOf } from "../../../scripts/jwks.mjs";

/** The Secret `name` with a new key pair: jwt-private-key.pem and jwks.json. */
export function devJwtSecret(name) {
  const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const pem = privateKey.export({ format: "pem", type: "pkcs8" }).toString();
  return {
    apiVersion: "v1",
    kind: "Secret",
    metadata: { name, labels: { "app.kubernetes.io/part-of": "crm" } },
    type: "Opaque",
    stringData: { "jwt-private-key.pem": pem, "jwks.json": JSON.stringify(jwksOf([pem])) },
  };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const n = args.indexOf("-n");
  const ns = (n >= 0 ? args.splice(n, 2)[1] : undefined) || process.env.SKAFFOLD_NAMESPACES?.split(",")[0] || undefined;
  const name = args[0] ?? "crm-dev-jwt";
  const nsArgs = ns ? ["-n", ns] : [];
  if (spawnSync("kubectl", ["get", "secret", name, ...nsArgs], { stdio: "ignore" }).status === 0) {
    console.log(`secret ${name} exists`);
    process.exit(0);
  }
  const secret = devJwtSecret(name);
  execFileSync("kubectl", ["apply", ...nsArgs, "-f", "-"], { input: JSON.stringify(secret), stdio: ["pipe", "inherit", "inherit"] });
  console.log(`created secret ${name} (kid ${JSON.parse(secret.stringData["jwks.json"]).keys[0].kid})`);
}

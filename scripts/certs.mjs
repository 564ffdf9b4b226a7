#!/usr/bin/env node
/**
 * Development PKI and JWT keys for the local cluster (never for production).
 *
 *   node scripts/certs.mjs [certsDir] [keysDir]      defaults: ./data/certs ./data/keys
 *
 * certsDir: ca.crt/ca.key (one dev CA signs everything), <name>.crt/.key for every service and the
 * gateway (CN = name; SAN DNS:localhost, DNS:<name>, IP:127.0.0.1, IP:::1; usable as server AND
 * client certificate, since services call each other with mTLS), client.crt/.key (CN=client, for
 * tests and curl). keysDir: private.pem (PKCS#8, RS256) and jwks.json (its public key, with kid).
 * Existing files are kept; a certificate is re-issued when it is missing, expires within a day or
 * was not signed by the current CA. Everything is written to a temporary file and renamed, so two
 * runs at once never see half a file. Needs the openssl command (Debian: openssl).
 */
import { spawnSync } from "node:child_process";
import { createHash, createPublicKey, generateKeyPairSync, randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const serviceNames = ["auth", "dbservice", "chats", "timers", "admin", "email", "logs", "cache", "records", "webhooks"];

function openssl(args, opts = {}) {
  const res = spawnSync("openssl", args, { encoding: "utf8", ...opts });
  if (res.error?.code === "ENOENT") throw new Error("certs: the openssl command is missing; install it with: apt-get install -y openssl");
  if (res.status !== 0) throw new Error(`certs: openssl ${args[0]} failed: ${(res.stderr || "").trim().split("\n").pop()}`);
  return res.stdout;
}

function atomicWrite(path, data, mode = 0o644) {
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
  writeFileSync(tmp, data, { mode });
  chmodSync(tmp, mode);
  renameSync(tmp, path);
}

function validFor(certPath, seconds) {
  return spawnSync("openssl", ["x509", "-checkend", String(seconds), "-noout", "-in", certPath]).status === 0;
}

function signedBy(certPath, caPath) {
  return spawnSync("openssl", ["verify", "-CAfile", caPath, certPath], { encoding: "utf8" }).status === 0;
}

/** Creates DIR/ca.crt + DIR/ca.key unless a valid pair is there. Returns true when it made a new CA. */
export function ensureCa(dir, { cn = "CRM development CA" } = {}) {
  mkdirSync(dir, { recursive: true });
  const crt = join(dir, "ca.crt");
  const key = join(dir, "ca.key");
  if (existsSync(crt) && existsSync(key) && validFor(crt, 30 * 86400)) return false;
  const work = mkdtempSync(join(dir, ".ca-"));
  try {
    openssl([
      "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
      "-keyout", join(work, "ca.key"), "-out", join(work, "ca.crt"), "-days", "3650", "-subj", `/CN=${cn}`,
      "-addext", "basicConstraints=critical,CA:TRUE,pathlen:0",
      "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    atomicWrite(key, readFileSync(join(work, "ca.key")), 0o600);
    atomicWrite(crt, readFileSync(join(work, "ca.crt")));
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return true;
}

/**
 * Issues DIR/<name>.crt + .key signed by DIR/ca.* (CN = name) unless a valid one is there.
 * `hosts` adds SAN DNS names; localhost, <name>, 127.0.0.1 and ::1 are always in.
 */
export function ensureCert(dir, name, { hosts = [], days = 825, force = false } = {}) {
  const crt = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  const ca = join(dir, "ca.crt");
  if (!force && existsSync(crt) && existsSync(key) && validFor(crt, 86400) && signedBy(crt, ca)) return false;
  const work = mkdtempSync(join(dir, `.${name}-`));
  try {
    const dns = [...new Set(["localhost", name, ...hosts])].map((h) => `DNS:${h}`);
    writeFileSync(
      join(work, "ext.cnf"),
      [
        "basicConstraints=critical,CA:FALSE",
        "keyUsage=critical,digitalSignature,keyEncipherment",
        "extendedKeyUsage=serverAuth,clientAuth",
        `subjectAltName=${[...dns, "IP:127.0.0.1", "IP:::1"].join(",")}`,
        "subjectKeyIdentifier=hash",
        "authorityKeyIdentifier=keyid",
      ].join("\n") + "\n",
    );
    openssl([
      "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
      "-keyout", join(work, "key.pem"), "-out", join(work, "req.csr"), "-subj", `/CN=${name}`,
    ]);
    openssl([
      "x509", "-req", "-in", join(work, "req.csr"), "-CA", ca, "-CAkey", join(dir, "ca.key"),
      "-set_serial", `0x${randomBytes(16).toString("hex")}`, "-days", String(days), "-sha256",
      "-extfile", join(work, "ext.cnf"), "-out", join(work, "cert.pem"),
    ]);
    atomicWrite(key, readFileSync(join(work, "key.pem")), 0o600);
    atomicWrite(crt, readFileSync(join(work, "cert.pem")));
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return true;
}

/** The CA, a certificate per service, the gateway's and a test client's, in DIR. */
export function ensureDevPki(dir, { names = serviceNames, hosts = [] } = {}) {
  const newCa = ensureCa(dir);
  for (const name of [...names, "gateway", "client"]) ensureCert(dir, name, { hosts, force: newCa });
  return {
    dir,
    ca: join(dir, "ca.crt"),
    cert: (name) => join(dir, `${name}.crt`),
    key: (name) => join(dir, `${name}.key`),
  };
}

/** RFC 7638 thumbprint of an RSA public JWK, base64url: a stable kid. */
function thumbprint(jwk) {
  return createHash("sha256").update(JSON.stringify({ e: jwk.e, kty: jwk.kty, n: jwk.n })).digest("base64url");
}

/**
 * DIR/private.pem (PKCS#8 PEM, RSA 2048, for RS256) and DIR/jwks.json ({keys:[{kty,n,e,kid,use,alg}]})
 * unless they are there. Returns { privateKeyFile, jwksFile, kid }.
 */
export function ensureJwtKeys(dir) {
  mkdirSync(dir, { recursive: true });
  const privateKeyFile = join(dir, "private.pem");
  const jwksFile = join(dir, "jwks.json");
  if (!existsSync(privateKeyFile)) {
    const { privateKey } = generateKeyPairSync("rsa", {
      modulusLength: 2048,
      privateKeyEncoding: { type: "pkcs8", format: "pem" },
      publicKeyEncoding: { type: "spki", format: "pem" },
    });
    atomicWrite(privateKeyFile, privateKey, 0o600);
  }
  const jwk = createPublicKey(readFileSync(privateKeyFile)).export({ format: "jwk" });
  const kid = thumbprint(jwk).slice(0, 16);
  let current;
  try {
    current = JSON.parse(readFileSync(jwksFile, "utf8"));
  } catch {
    current = undefined;
  }
  if (!current?.keys?.some((k) => k.kid === kid && k.n === jwk.n)) {
    atomicWrite(jwksFile, JSON.stringify({ keys: [{ kty: "RSA", n: jwk.n, e: jwk.e, kid, use: "sig", alg: "RS256" }] }, null, 2) + "\n");
  }
  return { privateKeyFile, jwksFile, kid };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const certs = resolve(process.argv[2] ?? "data/certs");
  const keys = resolve(process.argv[3] ?? "data/keys");
  try {
    ensureDevPki(certs);
    const { kid } = ensureJwtKeys(keys);
    console.log(`certs: CA and certificates in ${certs}; JWT key ${kid} in ${keys}`);
  } catch (err) {
    console.error(err instanceof Error ? err.message : String(err));
    process.exit(1);
  }
}

/**
 * Access tokens (RS256 JWT, 15 min, typ at+jwt). Refresh, invitation and reset tokens are opaque
 * (@crm/contracts/tokens).
 */
import { createPrivateKey, createPublicKey, generateKeyPair, randomUUID, type KeyObject } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { SignJWT, exportJWK, calculateJwkThumbprint, type JSONWebKeySet } from "jose";
import { ConfigError, type Role } from "@crm/kit";

export interface SigningKey {
  privateKey: KeyObject;
  kid: string;
}

export interface IssuedAccess {
  token: string;
  expiresAt: Date;
}

export interface AccessClaims {
  userId: string;
  companyId: string;
  role: Role;
  /** The session; for an API key, the key's id (revoking the key revokes it). */
  sessionId: string;
  /** An API key's access token: claims `scope` (space-separated), `key_name`, `rpm` (the kit reads them, auth.ts). */
  apiKey?: { scopes: string[]; name: string; requestsPerMinute: number } | undefined;
}

export interface TokenIssuer {
  /** An access token living accessTtlSeconds, or `ttlSeconds` when given. */
  issueAccess(claims: AccessClaims, ttlSeconds?: number): Promise<IssuedAccess>;
  accessTtlSeconds: number;
}

/** `key`: a function is asked on every token (the key reloaded from its file, signing-keys.ts). */
export function createTokenIssuer(opts: { key: SigningKey | (() => SigningKey); issuer: string; audience: string; accessTtlSeconds: number; now?: () => number }): TokenIssuer {
  const now = opts.now ?? Date.now;
  const current = typeof opts.key === "function" ? opts.key : () => opts.key as SigningKey;
  return {
    accessTtlSeconds: opts.accessTtlSeconds,
    async issueAccess(c, ttlSeconds = opts.accessTtlSeconds) {
      const iat = Math.floor(now() / 1000);
      const exp = iat + ttlSeconds;
      const key = c.apiKey ? { scope: c.apiKey.scopes.join(" "), key_name: c.apiKey.name, rpm: c.apiKey.requestsPerMinute } : {};
      const signing = current(); // one key for the header and the signature
      const token = await new SignJWT({ cid: c.companyId, role: c.role, sid: c.sessionId, ...key })
        .setProtectedHeader({ alg: "RS256", kid: signing.kid, typ: "at+jwt" })
        .setIssuer(opts.issuer)
        .setAudience(opts.audience)
        .setSubject(c.userId)
        .setJti(randomUUID())
        .setIssuedAt(iat)
        .setExpirationTime(exp)
        .sign(signing.privateKey);
      return { token, expiresAt: new Date(exp * 1000) };
    },
  };
}

export async function publicJwk(key: KeyObject, kid: string) {
  const jwk = await exportJWK(createPublicKey(key));
  return { ...jwk, kid, alg: "RS256", use: "sig" };
}

/** Loads the signing key (PKCS#8 PEM) and checks the published JWKS contains its public half. */
export async function loadSigningKey(pemFile: string, kid: string | undefined, jwks: JSONWebKeySet): Promise<SigningKey> {
  const privateKey = readPrivateKey(pemFile);
  return { privateKey, kid: publishedKid(privateKey, kid, jwks) };
}

/** JWT_PRIVATE_KEY_FILE's RSA key; a ConfigError naming the file when it is not one (yet: half written). */
export function readPrivateKey(pemFile: string): KeyObject {
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(readFileSync(pemFile));
  } catch (err) {
    throw new ConfigError(`config: JWT_PRIVATE_KEY_FILE ${pemFile} is not a readable PEM private key (${(err as Error).message})`);
  }
  if (privateKey.asymmetricKeyType !== "rsa") throw new ConfigError("config: JWT_PRIVATE_KEY_FILE must hold an RSA key (RS256; the gateway's njs cannot verify other algorithms)");
  return privateKey;
}

/** The kid under which `jwks` publishes the public half of `privateKey`; a ConfigError when it does not (or JWT_KEY_ID names another). */
export function publishedKid(privateKey: KeyObject, kid: string | undefined, jwks: JSONWebKeySet): string {
  const own = createPublicKey(privateKey).export({ format: "jwk" });
  const published = jwks.keys.find((k) => k.n === own.n && k.e === own.e);
  if (!published?.kid) throw new ConfigError("config: JWT_PUBLIC_KEYS_FILE does not contain the public key of JWT_PRIVATE_KEY_FILE (with a kid)");
  if (kid && kid !== published.kid) throw new ConfigError(`config: JWT_KEY_ID ${kid} does not match the kid ${published.kid} published for this key in JWT_PUBLIC_KEYS_FILE`);
  return published.kid;
}

/** Dev/all-in-one: an RSA key pair generated once into `dir` (private.pem, jwks.json). */
export async function ensureKeyFiles(dir: string): Promise<{ privateFile: string; jwksFile: string }> {
  const privateFile = join(dir, "private.pem");
  const jwksFile = join(dir, "jwks.json");
  if (!existsSync(privateFile) || !existsSync(jwksFile)) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    // On libuv's pool (RSA generation takes 0.1–0.5 s): the all-in-one opens its database meanwhile.
    const privateKey = await new Promise<KeyObject>((res, rej) => generateKeyPair("rsa", { modulusLength: 2048 }, (err, _pub, key) => (err ? rej(err) : res(key))));
    const jwk = await exportJWK(createPublicKey(privateKey));
    const kid = (await calculateJwkThumbprint(jwk)).slice(0, 16);
    writeFileSync(privateFile, privateKey.export({ type: "pkcs8", format: "pem" }), { mode: 0o600 });
    writeFileSync(jwksFile, JSON.stringify({ keys: [await publicJwk(privateKey, kid)] }, null, 2));
  }
  return { privateFile, jwksFile };
}

/**
 * ONE table of access tokens and whether they must be accepted, run against every layer that
 * checks tokens: the gateway (nginx + njs/jwt.js, services/gateway/test) and the services (the
 * kit's createTokenVerifier behind a real server, packages/kit/src/token-rules.test.ts). The
 * rules (issue 14, item 11), the same at both layers:
 *
 * - compact JWS of at most 8192 characters; header alg exactly RS256, typ exactly at+jwt or
 *   application/at+jwt, a non-empty kid that names a key of the JWKS, no crit;
 * - a valid RS256 signature by that key;
 * - iss and aud (a string, or an array holding it) as configured;
 * - exp a number in the future (no leeway); iat a number at most CLOCK_SKEW_SECONDS ahead; nbf,
 *   when present, a number at most CLOCK_SKEW_SECONDS ahead;
 * - sub, cid, sid lower-case UUIDs; role owner, admin or member.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, randomUUID, sign as rsaSign } from "node:crypto";
import { SignJWT, type JWTHeaderParameters } from "jose";

/** How far ahead of the verifier's clock iat and nbf may be (njs/jwt.js and kit auth.ts use this number). */
export const CLOCK_SKEW_SECONDS = 60;
/** The longest token either layer reads. */
export const MAX_TOKEN_LENGTH = 8192;

export interface TokenCase {
  name: string;
  token: string;
  valid: boolean;
}

export interface TokenCaseKeys {
  /** PKCS#8 PEM of the signing key whose public half is in the verifier's JWKS under `kid`. */
  privatePem: string;
  kid: string;
  issuer: string;
  audience: string;
}

const b64 = (v: unknown) => Buffer.from(typeof v === "string" ? v : JSON.stringify(v)).toString("base64url");

/** The table, signed now: every case names what it tries. */
export async function tokenCases(keys: TokenCaseKeys): Promise<TokenCase[]> {
  const key = createPrivateKey(keys.privatePem);
  const publicPem = createPublicKey(key).export({ type: "spki", format: "pem" }).toString();
  const other = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey;
  const now = Math.floor(Date.now() / 1000);
  const claims = (over: Record<string, unknown> = {}) =>
    Object.fromEntries(
      Object.entries({
        iss: keys.issuer,
        aud: keys.audience,
        sub: randomUUID(),
        cid: randomUUID(),
        sid: randomUUID(),
        role: "member",
        jti: randomUUID(),
        iat: now,
        exp: now + 900,
        ...over,
      }).filter(([, v]) => v !== undefined),
    );
  const header = (over: Record<string, unknown> = {}) =>
    Object.fromEntries(Object.entries({ alg: "RS256", typ: "at+jwt", kid: keys.kid, ...over }).filter(([, v]) => v !== undefined)) as JWTHeaderParameters;
  const sign = (c: Record<string, unknown> = {}, h: Record<string, unknown> = {}, with_ = key) => new SignJWT(claims(c)).setProtectedHeader(header(h)).sign(with_);

  // jose will not sign what it would not verify (crit): sign those by hand, RS256 all the same
  const raw = (c: Record<string, unknown>, h: Record<string, unknown>) => {
    const input = `${b64(header(h))}.${b64(claims(c))}`;
    return `${input}.${rsaSign("sha256", Buffer.from(input), key).toString("base64url")}`;
  };

  const good = await sign();
  const [h, p, s] = good.split(".") as [string, string, string];
  const tampered = b64({ ...JSON.parse(Buffer.from(p, "base64url").toString()), role: "owner" });
  const flipped = s.slice(0, 10) + (s[10] === "A" ? "B" : "A") + s.slice(11);

  const cases: [string, string | Promise<string>, boolean][] = [
    // accepted
    ["good", good, true],
    ["good, aud an array holding ours", sign({ aud: ["other-api", keys.audience] }), true],
    ["good, typ application/at+jwt", sign({}, { typ: "application/at+jwt" }), true],
    ["good, iat within the skew ahead", sign({ iat: now + CLOCK_SKEW_SECONDS - 15 }), true],
    ["good, nbf within the skew ahead", sign({ nbf: now + CLOCK_SKEW_SECONDS - 15 }), true],
    ["good, nbf in the past", sign({ nbf: now - 10 }), true],
    ["good, role owner", sign({ role: "owner" }), true],
    ["good, role admin", sign({ role: "admin" }), true],
    // header
    ["no kid", sign({}, { kid: undefined }), false],
    ["empty kid", sign({}, { kid: "" }), false],
    ["unknown kid", sign({}, { kid: "no-such-key" }), false],
    ["kid not a string", sign({}, { kid: 7 }), false],
    ["no typ", sign({}, { typ: undefined }), false],
    ["typ JWT", sign({}, { typ: "JWT" }), false],
    ["typ AT+JWT (case differs)", sign({}, { typ: "AT+JWT" }), false],
    ["crit header", raw({}, { crit: ["exp"] }), false],
    ["crit b64 (one jose knows)", raw({}, { crit: ["b64"], b64: true }), false],
    ["good, signed by hand (the raw signer is right)", raw({}, {}), true],
    ["alg none", `${b64({ alg: "none", typ: "at+jwt", kid: keys.kid })}.${p}.`, false],
    ["alg none with a signature", `${b64({ alg: "none", typ: "at+jwt", kid: keys.kid })}.${p}.${s}`, false],
    ["alg RS256 header, HS256 signature with the public key", new SignJWT(claims()).setProtectedHeader({ alg: "HS256", typ: "at+jwt", kid: keys.kid }).sign(new TextEncoder().encode(publicPem)), false],
    ["alg RS512", sign({}, { alg: "RS512" }), false],
    ["alg PS256", sign({}, { alg: "PS256" }), false],
    // signature
    ["signed by another key under our kid", sign({}, {}, other), false],
    ["tampered payload", `${h}.${tampered}.${s}`, false],
    ["signature with one character changed", `${h}.${p}.${flipped}`, false],
    ["signature cut short", good.slice(0, good.length - 12), false],
    ["no signature", `${h}.${p}.`, false],
    // time
    ["expired", sign({ iat: now - 2000, exp: now - 60 }), false],
    ["expired 2 s ago", sign({ iat: now - 900, exp: now - 2 }), false],
    ["no exp", sign({ exp: undefined }), false],
    ["exp a string", sign({ exp: String(now + 900) }), false],
    ["iat beyond the skew ahead", sign({ iat: now + CLOCK_SKEW_SECONDS + 30 }), false],
    ["iat a day ahead", sign({ iat: now + 86_400, exp: now + 86_400 + 900 }), false],
    ["no iat", sign({ iat: undefined }), false],
    ["iat a string", sign({ iat: String(now) }), false],
    ["nbf beyond the skew ahead", sign({ nbf: now + CLOCK_SKEW_SECONDS + 30 }), false],
    ["nbf a string", sign({ nbf: String(now) }), false],
    // issuer, audience, identity claims
    ["wrong issuer", sign({ iss: "someone-else" }), false],
    ["no issuer", sign({ iss: undefined }), false],
    ["wrong audience", sign({ aud: "other-api" }), false],
    ["audience array without ours", sign({ aud: ["other-api"] }), false],
    ["no audience", sign({ aud: undefined }), false],
    ["no sub", sign({ sub: undefined }), false],
    ["no cid", sign({ cid: undefined }), false],
    ["no sid", sign({ sid: undefined }), false],
    ["no role", sign({ role: undefined }), false],
    ["role root", sign({ role: "root" }), false],
    ["sub not a UUID", sign({ sub: "user-1" }), false],
    ["cid not a UUID", sign({ cid: "company-1" }), false],
    ["sid not a UUID", sign({ sid: "" }), false],
    ["sub an upper-case UUID", sign({ sub: randomUUID().toUpperCase() }), false],
    ["sub a number", sign({ sub: 42 }), false],
    // shape
    ["too long", sign({ pad: "x".repeat(MAX_TOKEN_LENGTH) }), false],
    ["garbage", "not-a-token", false],
    ["two parts", `${h}.${p}`, false],
    ["four parts", `${good}.${s}`, false],
    ["header not JSON", `${b64("not json")}.${p}.${s}`, false],
    ["payload not JSON", `${h}.${b64("not json")}.${s}`, false],
    ["payload a JSON array", `${h}.${b64([1, 2])}.${s}`, false],
  ];
  return Promise.all(cases.map(async ([name, token, valid]) => ({ name, token: await token, valid })));
}

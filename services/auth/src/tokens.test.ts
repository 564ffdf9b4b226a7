import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { test } from "node:test";
import { SignJWT, base64url } from "jose";
import { AppError, createTokenVerifier, memoryRevocations } from "@crm/kit";
import { createTokenIssuer, publicJwk } from "./tokens.js";

const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
const other = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey;
const kid = "k1";
const jwks = { keys: [await publicJwk(privateKey, kid)] };
const claims = { userId: "8f62ab6e-4fc1-406c-ae5b-af21723a1b34", companyId: "e5dd3c94-477c-40c2-b972-ea326e5a8da3", role: "admin" as const, sessionId: "2ea54abb-cc24-4712-a18f-2cb3c19679fc" };
const opts = { issuer: "crm-auth", audience: "crm-api" };

async function rejects(token: string, verifier = createTokenVerifier({ jwks, ...opts, revocations: memoryRevocations() })) {
  await assert.rejects(verifier.verify(token), (e: unknown) => e instanceof AppError && (e.reason === "token_invalid" || e.reason === "session_ended"));
}

test("an issued access token verifies and carries the claims", async () => {
  const issuer = createTokenIssuer({ key: { privateKey, kid }, ...opts, accessTtlSeconds: 900 });
  const { token, expiresAt } = await issuer.issueAccess(claims);
  const header = JSON.parse(new TextDecoder().decode(base64url.decode(token.split(".")[0]!)));
  assert.deepEqual(header, { alg: "RS256", kid, typ: "at+jwt" });
  const p = await createTokenVerifier({ jwks, ...opts, revocations: memoryRevocations() }).verify(token);
  assert.equal(p.userId, claims.userId);
  assert.equal(p.companyId, claims.companyId);
  assert.equal(p.role, "admin");
  assert.equal(p.sessionId, claims.sessionId);
  assert.equal(p.expiresAt * 1000, expiresAt.getTime());
});

test("expired, wrong issuer/audience, foreign key, unknown kid, alg none and tampered tokens are refused", async () => {
  const past = createTokenIssuer({ key: { privateKey, kid }, ...opts, accessTtlSeconds: 60, now: () => Date.now() - 3_600_000 });
  await rejects((await past.issueAccess(claims)).token);
  await rejects((await createTokenIssuer({ key: { privateKey, kid }, issuer: "evil", audience: "crm-api", accessTtlSeconds: 60 }).issueAccess(claims)).token);
  await rejects((await createTokenIssuer({ key: { privateKey, kid }, issuer: "crm-auth", audience: "other", accessTtlSeconds: 60 }).issueAccess(claims)).token);
  await rejects((await createTokenIssuer({ key: { privateKey: other, kid }, ...opts, accessTtlSeconds: 60 }).issueAccess(claims)).token);
  await rejects((await createTokenIssuer({ key: { privateKey, kid: "nope" }, ...opts, accessTtlSeconds: 60 }).issueAccess(claims)).token);
  const good = (await createTokenIssuer({ key: { privateKey, kid }, ...opts, accessTtlSeconds: 60 }).issueAccess(claims)).token;
  const [h, p] = good.split(".");
  const none = base64url.encode(JSON.stringify({ alg: "none", kid, typ: "at+jwt" }));
  await rejects(`${none}.${p}.`);
  await rejects(`${h}.${base64url.encode(JSON.stringify({ sub: claims.userId, role: "owner" }))}.${good.split(".")[2]}`);
  await rejects(good.slice(0, -5));
  const hs = await new SignJWT({ cid: claims.companyId, role: "owner", sid: claims.sessionId })
    .setProtectedHeader({ alg: "HS256", kid, typ: "at+jwt" }).setIssuer("crm-auth").setAudience("crm-api").setSubject(claims.userId).setIssuedAt().setExpirationTime("5m")
    .sign(new TextEncoder().encode(JSON.stringify(jwks.keys[0])));
  await rejects(hs);
});

test("a revoked session's token is refused at once", async () => {
  const revocations = memoryRevocations();
  const verifier = createTokenVerifier({ jwks, ...opts, revocations });
  const { token } = await createTokenIssuer({ key: { privateKey, kid }, ...opts, accessTtlSeconds: 900 }).issueAccess(claims);
  await verifier.verify(token);
  await revocations.revokeSessions([claims.sessionId], 960);
  await rejects(token, verifier);
});

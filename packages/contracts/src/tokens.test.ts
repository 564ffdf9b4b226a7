import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { test } from "node:test";
import { hashOpaqueToken, newOpaqueToken, opaqueTokenShape } from "./tokens.js";

test("opaque tokens are 256 random bits in base64url, kept only as their SHA-256", () => {
  const a = newOpaqueToken();
  const b = newOpaqueToken();
  assert.match(a.token, opaqueTokenShape);
  assert.equal(Buffer.from(a.token, "base64url").length, 32);
  assert.notEqual(a.token, b.token);
  assert.deepEqual(a.hash, hashOpaqueToken(a.token));
  assert.deepEqual(a.hash, createHash("sha256").update(a.token).digest());
  assert.equal(a.hash.length, 32);
  assert.doesNotMatch(`${a.token}=`, opaqueTokenShape);
  assert.doesNotMatch(a.token.slice(1), opaqueTokenShape);
});

/**
 * The opaque one-time tokens: 256 random bits in base64url (43 characters), of which only the
 * SHA-256 is stored. Admin mints invitation tokens and auth redeems them (AcceptInvite); auth mints
 * refresh and password-reset tokens of the same form. One format for both services: a copy on
 * each side could let one change it and every invitation fail on the other.
 */
import { createHash, randomBytes } from "node:crypto";

/** What a token looks like; anything else is refused without a database lookup. */
export const opaqueTokenShape = /^[A-Za-z0-9_-]{43}$/;

/** The SHA-256 the database keeps instead of the token. */
export const hashOpaqueToken = (token: string): Buffer => createHash("sha256").update(token).digest();

/** A new token and its hash. */
export function newOpaqueToken(): { token: string; hash: Buffer } {
  const token = randomBytes(32).toString("base64url");
  return { token, hash: hashOpaqueToken(token) };
}

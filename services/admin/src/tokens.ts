/** One-time tokens (invitations): 256 random bits, base64url; only their SHA-256 is stored. */
import { createHash, randomBytes } from "node:crypto";

export function newOneTimeToken(): { token: string; hash: Buffer } {
  const token = randomBytes(32).toString("base64url");
  return { token, hash: hashOneTimeToken(token) };
}

export const hashOneTimeToken = (token: string) => createHash("sha256").update(token).digest();

/** What a token looks like; anything else is refused without a database lookup. */
export const oneTimeTokenShape = /^[A-Za-z0-9_-]{43}$/;

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

/**
 * API keys: `crm_live_<prefix>_<secret>`, a 12-character visible prefix (lower-case hex, what
 * lists show) and 256 random bits in base64url. Only the SHA-256 of the whole key is stored: a
 * fast hash is right for a secret of 256 random bits (nothing to guess), and keeps a key's first
 * call as cheap as a password-free lookup. Auth mints them; the kit and the gateway recognise
 * them by this shape.
 */
export const API_KEY_PREFIX = "crm_live_";
export const apiKeyShape = /^crm_live_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$/;

/** A new API key: the whole key (shown once), its visible prefix and the hash to store. */
export function newApiKey(): { key: string; prefix: string; hash: Buffer } {
  const prefix = randomBytes(6).toString("hex");
  const key = `${API_KEY_PREFIX}${prefix}_${randomBytes(32).toString("base64url")}`;
  return { key, prefix, hash: hashOpaqueToken(key) };
}

/**
 * auth's signing key (JWT_PRIVATE_KEY_FILE) and the JWKS it serves (JWT_PUBLIC_KEYS_FILE: GetJwks,
 * GET /.well-known/jwks.json), read again when either file changes, as every service reloads its
 * JWKS and certificates (@crm/kit reload.ts: polled every CREDENTIAL_RELOAD_INTERVAL_MS, compared
 * by content). A key rotation (docs/operations.md) needs no restart of auth.
 *
 * auth never signs with a key its current JWKS does not publish. The two files may change apart:
 * auth mounts them from two volumes (each updated by the kubelet on its own), and an operator may
 * write them one after the other. So:
 * - a new private key that the JWKS does not publish (yet) is not used: auth keeps signing with the
 *   key it has (and takes the new JWKS, which still publishes that key), warns, and switches once
 *   the JWKS publishes the new key;
 * - a JWKS that publishes neither the new key nor the one auth signs with is not taken: auth keeps
 *   the previous JWKS and key, and says so (the old key was removed before auth could switch);
 * - a file that is unreadable or half written keeps the last good pair (reload.ts warns).
 * At the start the pair must fit (auth refuses to start otherwise, as before).
 */
import type { JSONWebKeySet } from "jose";
import { ConfigError, readJwks, watchFiles, type Reloading, type WatchOptions } from "@crm/kit";
import { publishedKid, readPrivateKey, type SigningKey } from "./tokens.js";

export interface SigningKeys {
  /** The key auth signs with; always published by `jwks`. */
  key: SigningKey;
  /** The JWKS auth serves. */
  jwks: JSONWebKeySet;
}

export interface KeyFiles {
  /** The RS256 signing key, PKCS#8 PEM (JWT_PRIVATE_KEY_FILE). */
  privateFile: string;
  /** The JWKS with the public keys (JWT_PUBLIC_KEYS_FILE); it must hold the signing key's. */
  jwksFile: string;
}

/** The signing key and JWKS of `files`, reloaded when they change (`kid`: JWT_KEY_ID, when set). */
export function watchSigningKeys(files: KeyFiles, kid: string | undefined, opts: WatchOptions): Reloading<SigningKeys> {
  let held: SigningKeys | undefined;
  const make = (): SigningKeys => {
    const jwks = readJwks(files.jwksFile);
    const privateKey = readPrivateKey(files.privateFile);
    if (!held) return (held = { key: { privateKey, kid: publishedKid(privateKey, kid, jwks) }, jwks });
    const signing = held.key;
    try {
      held = { key: { privateKey, kid: publishedKid(privateKey, kid, jwks) }, jwks };
    } catch (err) {
      let stillPublished = false;
      try {
        stillPublished = publishedKid(signing.privateKey, undefined, jwks) === signing.kid;
      } catch {
        // neither key is published: below
      }
      if (!stillPublished) {
        throw new ConfigError(
          `${files.jwksFile} publishes neither the key in ${files.privateFile} nor kid ${signing.kid}, which auth signs with: keeping the previous JWKS and signing key (publish the new key next to the old one first, docs/operations.md "Rotating the JWT signing key")`,
        );
      }
      opts.log.warn(
        { kid: signing.kid, reason: (err as Error).message },
        `the signing key in ${files.privateFile} is not published in ${files.jwksFile} (yet): auth keeps signing with kid ${signing.kid} until the JWKS publishes the new key`,
      );
      held = { key: signing, jwks };
    }
    return held;
  };
  const watch = watchFiles(`the JWT signing key and JWKS (${files.privateFile}, ${files.jwksFile})`, [files.privateFile, files.jwksFile], make, opts);
  let kidInUse = watch.current().key.kid;
  watch.onChange(({ key }) => {
    if (key.kid !== kidInUse) opts.log.info({ kid: key.kid, previous: kidInUse }, `auth signs access tokens with kid ${key.kid} now`);
    kidInUse = key.kid;
  });
  return watch;
}

/**
 * auth's one wiring, used by its own process (main.ts: cluster, Kubernetes) and by the all-in-one:
 * load the signing key and the public keys, and build the module with dbservice as its peer. The
 * caller only chooses the providers: the key files (given, or a pair ensureKeyFiles generates),
 * how peers are reached (mTLS or in memory), the revocation list and counter (Redis or memory).
 */
import { readJwks, type Basics, type Counter, type ServiceModule } from "@crm/kit";
import { DbAdminService } from "@crm/gen/crm/db/v1/db_admin_pb";
import { DbAuthService } from "@crm/gen/crm/db/v1/db_auth_pb";
import { DbEmailService } from "@crm/gen/crm/db/v1/db_email_pb";
import { DbAuditService } from "@crm/gen/crm/db/v1/db_audit_pb";
import type { AuthConfig } from "./config.js";
import { createAuthModule } from "./module.js";
import { loadSigningKey } from "./tokens.js";

/** The all-in-one's key pair when none is configured: generated once into a folder. */
export { ensureKeyFiles } from "./tokens.js";

export interface KeyFiles {
  /** The RS256 signing key, PKCS#8 PEM (JWT_PRIVATE_KEY_FILE). */
  privateFile: string;
  /** The JWKS with the public keys (JWT_PUBLIC_KEYS_FILE); it must hold the signing key's. */
  jwksFile: string;
}

export interface AuthBuildDeps extends Pick<Basics, "log" | "peer" | "revocations"> {
  cfg: AuthConfig & { JWT_ISSUER: string; JWT_AUDIENCE: string };
  keys: KeyFiles;
  /** Login and reset throttling: Redis in a cluster (shared by replicas), memory otherwise. */
  counter: Counter;
  /** PUBLIC_URL: reset links are <it>/reset-password#token=… (a function: the all-in-one knows its port only once listening). */
  publicUrl: () => string;
}

export async function build(d: AuthBuildDeps): Promise<ServiceModule> {
  const jwks = readJwks(d.keys.jwksFile);
  const key = await loadSigningKey(d.keys.privateFile, d.cfg.JWT_KEY_ID, jwks);
  return createAuthModule({
    cfg: d.cfg,
    db: d.peer("dbservice", DbAuthService),
    dbAdmin: d.peer("dbservice", DbAdminService),
    dbEmail: d.peer("dbservice", DbEmailService),
    dbAudit: d.peer("dbservice", DbAuditService),
    key,
    jwks,
    revocations: d.revocations,
    counter: d.counter,
    log: d.log,
    publicUrl: d.publicUrl,
  });
}

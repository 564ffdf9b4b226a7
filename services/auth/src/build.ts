/**
 * auth's one wiring, used by its own process (main.ts: cluster, Kubernetes) and by the all-in-one:
 * load the signing key and the public keys (again when they change), and build the module with dbservice as its peer. The
 * caller only chooses the providers: the key files (given, or a pair ensureKeyFiles generates),
 * how peers are reached (mTLS or in memory), the revocation list and counter (Redis or memory).
 */
import type { Basics, Counter, ServiceModule } from "@crm/kit";
import { DbAdminService } from "@crm/gen/crm/db/v1/db_admin_pb";
import { DbAuthService } from "@crm/gen/crm/db/v1/db_auth_pb";
import { DbEmailService } from "@crm/gen/crm/db/v1/db_email_pb";
import { DbAuditService } from "@crm/gen/crm/db/v1/db_audit_pb";
import type { AuthConfig } from "./config.js";
import { createAuthModule } from "./module.js";
import { watchSigningKeys, type KeyFiles } from "./signing-keys.js";

/** The all-in-one's key pair when none is configured: generated once into a folder. */
export { ensureKeyFiles } from "./tokens.js";

export type { KeyFiles } from "./signing-keys.js";

export interface AuthBuildDeps extends Pick<Basics, "log" | "peer" | "revocations">, Partial<Pick<Basics, "onClose">> {
  /** CREDENTIAL_RELOAD_INTERVAL_MS: how often the key files are compared (signing-keys.ts); unset or 0 = read once. */
  cfg: AuthConfig & { JWT_ISSUER: string; JWT_AUDIENCE: string; CREDENTIAL_RELOAD_INTERVAL_MS?: number };
  keys: KeyFiles;
  /** Login and reset throttling: Redis in a cluster (shared by replicas), memory otherwise. */
  counter: Counter;
  /** PUBLIC_URL: reset links are <it>/reset-password#token=… (a function: the all-in-one knows its port only once listening). */
  publicUrl: () => string;
}

export async function build(d: AuthBuildDeps): Promise<ServiceModule> {
  // A rotated key is taken without a restart, and only once the JWKS publishes it.
  const signing = watchSigningKeys(d.keys, d.cfg.JWT_KEY_ID, { intervalMs: d.cfg.CREDENTIAL_RELOAD_INTERVAL_MS ?? 0, log: d.log });
  d.onClose?.(async () => signing.close());
  return createAuthModule({
    cfg: d.cfg,
    db: d.peer("dbservice", DbAuthService),
    dbAdmin: d.peer("dbservice", DbAdminService),
    dbEmail: d.peer("dbservice", DbEmailService),
    dbAudit: d.peer("dbservice", DbAuditService),
    key: () => signing.current().key,
    jwks: () => signing.current().jwks,
    revocations: d.revocations,
    counter: d.counter,
    log: d.log,
    publicUrl: d.publicUrl,
  });
}

/** auth as its own process. */
import { ConfigError, commonEnv, loadConfig, memoryCounter, readJwks, redisCounter, requirePublicUrl, runService } from "@crm/kit";
import { DbAuthService } from "@crm/gen/crm/db/v1/db_auth_pb";
import { DbAdminService } from "@crm/gen/crm/db/v1/db_admin_pb";
import { DbEmailService } from "@crm/gen/crm/db/v1/db_email_pb";
import { authEnv } from "./config.js";
import { createAuthModule } from "./module.js";
import { loadSigningKey } from "./tokens.js";

export function start() {
  return runService("auth", async ({ log, peer, revocations, redis }) => {
    const cfg = loadConfig(authEnv.extend({ JWT_ISSUER: commonEnv.JWT_ISSUER, JWT_AUDIENCE: commonEnv.JWT_AUDIENCE, JWT_PUBLIC_KEYS_FILE: commonEnv.JWT_PUBLIC_KEYS_FILE }));
    if (!cfg.JWT_PRIVATE_KEY_FILE) throw new ConfigError("config: JWT_PRIVATE_KEY_FILE must name the PKCS#8 PEM file of the RS256 signing key (it is not set)");
    const jwks = readJwks(cfg.JWT_PUBLIC_KEYS_FILE!);
    const key = await loadSigningKey(cfg.JWT_PRIVATE_KEY_FILE, cfg.JWT_KEY_ID, jwks);
    const url = requirePublicUrl();
    return createAuthModule({
      cfg,
      db: peer("dbservice", DbAuthService),
      dbAdmin: peer("dbservice", DbAdminService),
      dbEmail: peer("dbservice", DbEmailService),
      key,
      jwks,
      revocations,
      counter: redis ? redisCounter(redis) : memoryCounter(),
      log,
      publicUrl: () => url,
    });
  });
}

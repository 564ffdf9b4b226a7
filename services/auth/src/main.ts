/** auth as its own process: the key files from the settings, dbservice over mTLS, Redis when set. */
import { ConfigError, commonEnv, loadConfig, memoryCounter, redisCounter, requirePublicUrl, runService } from "@crm/kit";
import { build } from "./build.js";
import { authEnv } from "./config.js";

export function start() {
  return runService("auth", async ({ log, peer, revocations, redis, onClose }) => {
    const { cfg, keys } = authSettings();
    const url = requirePublicUrl();
    return build({ cfg, keys, peer, revocations, counter: redis ? redisCounter(redis) : memoryCounter(), log, onClose, publicUrl: () => url });
  });
}

/** auth's settings as its own process reads them (CREDENTIAL_RELOAD_INTERVAL_MS: the key files are compared that often). */
export function authSettings() {
  const cfg = loadConfig(
    authEnv.extend({
      JWT_ISSUER: commonEnv.JWT_ISSUER,
      JWT_AUDIENCE: commonEnv.JWT_AUDIENCE,
      JWT_PUBLIC_KEYS_FILE: commonEnv.JWT_PUBLIC_KEYS_FILE,
      CREDENTIAL_RELOAD_INTERVAL_MS: commonEnv.CREDENTIAL_RELOAD_INTERVAL_MS,
    }),
  );
  if (!cfg.JWT_PRIVATE_KEY_FILE) throw new ConfigError("config: JWT_PRIVATE_KEY_FILE must name the PKCS#8 PEM file of the RS256 signing key (it is not set)");
  return { cfg, keys: { privateFile: cfg.JWT_PRIVATE_KEY_FILE, jwksFile: cfg.JWT_PUBLIC_KEYS_FILE! } };
}

/** The auth service module: AuthService, ApiKeyService, GET /.well-known/jwks.json and the pages behind e-mailed links (account-pages.ts). */
import type { Client } from "@connectrpc/connect";
import type { JSONWebKeySet } from "jose";
import type { Counter, Logger, Revocations, ServiceModule } from "@crm/kit";
import { AuthService } from "@crm/gen/crm/auth/v1/auth_pb";
import { ApiKeyService } from "@crm/gen/crm/auth/v1/api_keys_pb";
import type { DbAuditService } from "@crm/gen/crm/db/v1/db_audit_pb";
import type { DbAuthService } from "@crm/gen/crm/db/v1/db_auth_pb";
import type { DbAdminService } from "@crm/gen/crm/db/v1/db_admin_pb";
import type { DbEmailService } from "@crm/gen/crm/db/v1/db_email_pb";
import { serveAccountPages } from "./account-pages.js";
import { apiKeyService } from "./api-keys.js";
import { authService } from "./auth-service.js";
import type { AuthConfig } from "./config.js";
import { createLoginThrottle } from "./throttle.js";
import { createTokenIssuer, type SigningKey } from "./tokens.js";

export interface AuthModuleDeps {
  cfg: AuthConfig & { JWT_ISSUER: string; JWT_AUDIENCE: string };
  db: Client<typeof DbAuthService>;
  /** A function is asked on every token and request (the pair reloaded from its files, signing-keys.ts). */
  key: SigningKey | (() => SigningKey);
  jwks: JSONWebKeySet | (() => JSONWebKeySet);
  revocations: Revocations;
  counter: Counter;
  log: Logger;
  /** For password reset and invitations; unset: those RPCs answer unimplemented. */
  dbAdmin?: Client<typeof DbAdminService> | undefined;
  dbEmail?: Client<typeof DbEmailService> | undefined;
  /** Where failed logins are recorded; unset: only logged. */
  dbAudit?: Client<typeof DbAuditService> | undefined;
  /** PUBLIC_URL: reset links are <it>/reset-password#token=… (a function: the all-in-one knows its port only once listening). */
  publicUrl: () => string;
}

export const authPublicMethods = [
  ...["RegisterCompany", "Login", "Refresh", "RequestPasswordReset", "ResetPassword", "AcceptInvite", "GetJwks"].map((m) => `/${AuthService.typeName}/${m}`),
  // The key itself is the credential.
  `/${ApiKeyService.typeName}/ExchangeApiKey`,
];

export function createAuthModule(d: AuthModuleDeps): ServiceModule {
  const jwks = typeof d.jwks === "function" ? d.jwks : () => d.jwks as JSONWebKeySet;
  const tokens = createTokenIssuer({ key: d.key, issuer: d.cfg.JWT_ISSUER, audience: d.cfg.JWT_AUDIENCE, accessTtlSeconds: d.cfg.ACCESS_TOKEN_TTL_SECONDS });
  const throttle = createLoginThrottle(d.counter, {
    perAccountAndIp: d.cfg.LOGIN_FAILURES_PER_ACCOUNT_AND_IP,
    perIp: d.cfg.LOGIN_FAILURES_PER_IP,
    windowSeconds: 15 * 60,
  });
  const links = d.dbAdmin && d.dbEmail
    ? {
        admin: d.dbAdmin,
        email: d.dbEmail,
        counter: d.counter,
        log: d.log,
        appUrl: d.publicUrl,
        resetTtlMinutes: d.cfg.RESET_TOKEN_TTL_MINUTES,
        resetPerLogin: d.cfg.RESET_REQUESTS_PER_LOGIN,
        resetPerIp: d.cfg.RESET_REQUESTS_PER_IP,
        resetMinResponseMs: d.cfg.RESET_MIN_RESPONSE_MS,
      }
    : undefined;
  const impl = authService({ db: d.db, tokens, jwks, revocations: d.revocations, throttle, refreshTtlSeconds: d.cfg.REFRESH_TOKEN_TTL_DAYS * 86_400, log: d.log, links, audit: d.dbAudit });
  const keys = apiKeyService({
    db: d.db,
    tokens,
    revocations: d.revocations,
    keyTokenTtlSeconds: d.cfg.API_KEY_ACCESS_TTL_SECONDS,
    // A revoked key stays listed longer than any access token lives (the keeper's window, too).
    revocationTtlSeconds: Math.max(d.cfg.ACCESS_TOKEN_TTL_SECONDS, d.cfg.API_KEY_ACCESS_TTL_SECONDS) + 60,
    log: d.log,
  });
  // The body is made again only when the JWKS was reloaded.
  let served: { jwks: JSONWebKeySet; body: string } | undefined;
  const jwksBody = () => {
    const current = jwks();
    if (served?.jwks !== current) served = { jwks: current, body: JSON.stringify({ keys: current.keys }) };
    return served.body;
  };
  return {
    name: "auth",
    services: [AuthService, ApiKeyService],
    publicMethods: authPublicMethods,
    routes(router) {
      router.service(AuthService, impl);
      router.service(ApiKeyService, keys);
    },
    http(req, res) {
      if (serveAccountPages(req, res)) return true;
      if (req.method !== "GET" || req.url !== "/.well-known/jwks.json") return false;
      res.writeHead(200, { "content-type": "application/json", "cache-control": "public, max-age=300" });
      res.end(jwksBody());
      return true;
    },
  };
}

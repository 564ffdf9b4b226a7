/**
 * crm.auth.v1.ApiKeyService handlers. Dependencies come in; no wiring here.
 *
 * How a key is accepted (services/auth/README.md, "API keys"): whoever receives one (the gateway,
 * or any service's kit verifier) asks ExchangeApiKey once for a short-lived access token carrying
 * the key's scopes, whose session id is the key's id, and then treats the key like that token:
 * answered from memory on every later call, with the revocation list consulted each time. So a
 * key's call costs what a session token's does, and RevokeApiKey (which puts the key's id on the
 * revocation list) ends it at once everywhere.
 */
import type { Client, HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { timestampDate, timestampFromDate, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { AppError, callingService, clientIpKey, requireRole, type Logger, type Principal, type Revocations, type Role } from "@crm/kit";
import { ApiKeyService, type ApiKey } from "@crm/gen/crm/auth/v1/api_keys_pb";
import { type ApiKeyRecord, type DbAuthService, UseApiKeyDBResponse_Outcome as Outcome, UserRole } from "@crm/gen/crm/db/v1/db_auth_pb";
import { apiKeyShape, hashOpaqueToken, newApiKey } from "@crm/contracts/tokens";
import { apiKeyIdOf, checkApiKey } from "./rules.js";
import type { TokenIssuer } from "./tokens.js";

export interface ApiKeyDeps {
  db: Client<typeof DbAuthService>;
  tokens: TokenIssuer;
  revocations: Revocations;
  /** How long a key's access token lives (API_KEY_ACCESS_TTL_SECONDS); it is exchanged again after half of it. */
  keyTokenTtlSeconds: number;
  /** How long a revoked key stays on the revocation list: longer than any access token lives. */
  revocationTtlSeconds: number;
  log: Logger;
  now?: () => number;
}

const fromDbRole: Record<number, Role> = { [UserRole.OWNER]: "owner", [UserRole.ADMIN]: "admin", [UserRole.MEMBER]: "member" };

/** The public view of a stored key (the role enums share their numbering). */
export function toApiKey(k: ApiKeyRecord | undefined): Omit<ApiKey, "$typeName"> | undefined {
  if (!k) return undefined;
  return {
    apiKeyId: k.apiKeyId,
    name: k.name,
    prefix: `crm_live_${k.prefix}`,
    scopes: k.scopes,
    createdAt: k.createdAt,
    createdBy: k.createdBy,
    expiresAt: k.expiresAt,
    lastUsedAt: k.lastUsedAt,
    lastUsedIp: k.lastUsedIp,
    revokedAt: k.revokedAt,
    requestsPerMinute: k.requestsPerMinute,
    creatorRole: k.creatorRole as number,
  };
}

/** Owners and admins with a session; an API key never manages keys. */
function keyManager(ctx: HandlerContext): Principal {
  const p = requireRole(ctx, "owner", "admin");
  if (p.apiKey) throw new AppError("permission_denied", "API keys cannot manage API keys: use an owner's or admin's session");
  return p;
}

const refusals: Record<number, string> = {
  [Outcome.UNKNOWN]: "unknown API key: check it was copied whole, or create a new one",
  [Outcome.REVOKED]: "this API key was revoked: create a new one",
  [Outcome.EXPIRED]: "this API key has expired: create a new one",
  [Outcome.CREATOR_INACTIVE]: "the user who created this API key was deactivated, so the key no longer works: create a new one",
};

export function apiKeyService(deps: ApiKeyDeps): ServiceImpl<typeof ApiKeyService> {
  const now = deps.now ?? Date.now;
  return {
    async createApiKey(req, ctx) {
      keyManager(ctx);
      const valid = checkApiKey({ name: req.name, scopes: req.scopes, expiresAtMs: req.expiresAt ? timestampDate(req.expiresAt).getTime() : undefined, requestsPerMinute: req.requestsPerMinute }, now());
      const key = newApiKey();
      const res = await deps.db.createApiKeyDB({
        name: valid.name,
        prefix: key.prefix,
        keyHash: key.hash,
        scopes: valid.scopes,
        expiresAt: valid.expiresAtMs === undefined ? undefined : timestampFromMs(valid.expiresAtMs),
        requestsPerMinute: valid.requestsPerMinute,
        ip: ctx.values.get(clientIpKey),
      });
      deps.log.info({ api_key_id: res.apiKey?.apiKeyId, prefix: key.prefix, scopes: valid.scopes }, "API key created");
      return { apiKey: toApiKey(res.apiKey), secret: key.key };
    },

    async listApiKeys(req, ctx) {
      keyManager(ctx);
      const res = await deps.db.listApiKeysDB({ includeRevoked: req.includeRevoked });
      return { apiKeys: res.apiKeys.map((k) => toApiKey(k)!) };
    },

    async revokeApiKey(req, ctx) {
      keyManager(ctx);
      const id = apiKeyIdOf(req.apiKeyId);
      const res = await deps.db.revokeApiKeyDB({ apiKeyId: id, ip: ctx.values.get(clientIpKey) });
      // Revoked in the database already; the revocation list ends its access tokens now, everywhere.
      await deps.revocations.revokeSessions([id], deps.revocationTtlSeconds);
      if (res.revokedNow) deps.log.info({ api_key_id: id }, "API key revoked");
      return { apiKey: toApiKey(res.apiKey) };
    },

    async exchangeApiKey(req, ctx) {
      if (!apiKeyShape.test(req.key)) throw new AppError("token_invalid", "this is not an API key: keys look like crm_live_<12 hex digits>_<43 characters>");
      // Our services (and the gateway) say where the key was used from; anyone else is that place.
      const ip = (callingService(ctx.values) && req.clientIp ? req.clientIp : ctx.values.get(clientIpKey)).slice(0, 64);
      const used = await deps.db.useApiKeyDB({ keyHash: hashOpaqueToken(req.key), ip });
      const k = used.apiKey;
      if (used.outcome !== Outcome.VALID || !k) throw new AppError("token_invalid", refusals[used.outcome] ?? "this API key cannot be used");
      const role = fromDbRole[k.creatorRole];
      if (!role) throw new AppError("token_invalid", refusals[Outcome.CREATOR_INACTIVE]!);
      // Never past the key's own expiry.
      const left = k.expiresAt ? Math.floor((timestampDate(k.expiresAt).getTime() - now()) / 1000) : Infinity;
      const ttl = Math.max(1, Math.min(deps.keyTokenTtlSeconds, left));
      const access = await deps.tokens.issueAccess(
        { userId: k.createdBy, companyId: used.companyId, role, sessionId: k.apiKeyId, apiKey: { scopes: k.scopes, name: k.name, requestsPerMinute: k.requestsPerMinute } },
        ttl,
      );
      // For the gateway's auth_request (services/gateway): who the key is, and the token to send on,
      // cached there for half the token's life.
      ctx.responseHeader.set("x-user-id", k.createdBy);
      ctx.responseHeader.set("x-company-id", used.companyId);
      ctx.responseHeader.set("x-role", role);
      ctx.responseHeader.set("x-session-id", k.apiKeyId);
      ctx.responseHeader.set("x-access-token", access.token);
      ctx.responseHeader.set("x-accel-expires", String(Math.max(1, Math.floor(ttl / 2))));
      return {
        accessToken: access.token,
        accessExpiresAt: timestampFromDate(access.expiresAt),
        apiKeyId: k.apiKeyId,
        companyId: used.companyId,
        userId: k.createdBy,
        role: k.creatorRole as number,
        scopes: k.scopes,
        name: k.name,
      };
    },
  };
}

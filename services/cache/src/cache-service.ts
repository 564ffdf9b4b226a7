/** crm.cache.v1.CacheService handlers. Keys are namespaced by the caller's company from the verified token. */
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { AppError, principalOf } from "@crm/kit";
import type { CacheService } from "@crm/gen/crm/cache/v1/cache_pb";
import type { CacheStore } from "./store.js";
import { validateKey, validateSave, type CacheLimits } from "./validation.js";

export interface CacheDeps {
  store: CacheStore;
  limits: CacheLimits;
}

export function cacheService(deps: CacheDeps): ServiceImpl<typeof CacheService> {
  // The tenant comes only from the verified token; the store keeps each tenant's keys (and quota)
  // apart, so a user's key can never reach another company's namespace.
  const tenant = (ctx: HandlerContext) => principalOf(ctx).companyId;
  return {
    async save(req, ctx) {
      const input = validateSave(req, deps.limits);
      const stored = await deps.store.save(tenant(ctx), input.key, input.value, input.ttlSeconds);
      return { stored };
    },
    async get(req, ctx) {
      const hit = await deps.store.get(tenant(ctx), validateKey(req.key));
      if (!hit) throw new AppError("not_found", `no cached value for key ${JSON.stringify(req.key.slice(0, 64))}: it was never saved, has expired or was deleted`);
      return { value: hit.value, ttlSeconds: Math.ceil(hit.ttlMs / 1000) };
    },
    async delete(req, ctx) {
      return { deleted: await deps.store.delete(tenant(ctx), validateKey(req.key)) };
    },
  };
}

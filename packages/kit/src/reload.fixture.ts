/**
 * A kit process for reload.test.ts: runService as every service's main.ts runs it (TLS files,
 * JWKS, peers), serving CacheService's shape. Get is public; Get "relay" calls the peer "logs"
 * (LOGS_URL: the test's observer) with this process's client certificate; Save needs an access
 * token (it checks the reloaded JWKS).
 */
import { CacheService } from "@crm/gen/crm/cache/v1/cache_pb";
import { runService } from "./runtime.js";

void runService("cache", async (b) => {
  const logs = b.peer("logs", CacheService);
  return {
    name: "cache",
    services: [CacheService],
    publicMethods: [`/${CacheService.typeName}/Get`],
    routes(router) {
      router.service(CacheService, {
        async get(req) {
          if (req.key === "relay") return { value: (await logs.get({ key: "relay" })).value };
          return { value: new Uint8Array([1]) };
        },
        save: async () => ({ stored: true }),
        delete: async () => ({ deleted: false }),
      });
    },
  };
});

/**
 * The token verifier's way to auth for API keys (auth.ts `apiKeys`): ApiKeyService/ExchangeApiKey
 * through the process's peer client (mTLS in a cluster, in memory in the all-in-one). A public
 * RPC: the key is the credential, so any service may ask.
 */
import type { Client } from "@connectrpc/connect";
import type { ApiKeyService } from "@crm/gen/crm/auth/v1/api_keys_pb";
import type { ApiKeyExchange } from "./auth.js";

/** `client` is asked for on first use (a process's peers exist only after its verifier). */
export function apiKeyExchange(client: () => Client<typeof ApiKeyService>): ApiKeyExchange {
  let c: Client<typeof ApiKeyService> | undefined;
  return async (key, call) => {
    c ??= client();
    const res = await c.exchangeApiKey({ key, clientIp: call.ip ?? "" }, { timeoutMs: 10_000 });
    return res.accessToken;
  };
}

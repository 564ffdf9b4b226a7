/**
 * Which client certificates are service identities (issue 14, item 9). A certificate the CA
 * signed proves a name (its CN); only the names on the server's allow-list make the caller a
 * service of ours (peerServiceKey: requirePeer, service callers of logs and email, the gateway's
 * X-Real-IP). Any other CA-signed certificate is just a TLS client: it may still call with a
 * user's access token, like a browser.
 *
 * TLS_PEER_SERVICES sets the list (comma-separated certificate names, or "none"); when unset, a service
 * takes the callers of the architecture below. The Helm chart computes the same lists from its
 * flows (charts/crm/templates/_helpers.tpl crm.flows; charts/test checks both agree).
 */
import type { ServiceName } from "./service-names.js";

/** caller → the services it calls over mTLS (the gateway and the services' peer clients). */
export const serviceCalls: Record<string, readonly ServiceName[]> = {
  gateway: ["auth", "chats", "timers", "admin", "email", "logs", "cache", "records", "webhooks"],
  auth: ["dbservice", "email", "logs"],
  dbservice: ["logs"],
  chats: ["dbservice", "logs"],
  timers: ["dbservice", "logs"],
  admin: ["dbservice", "email", "logs"],
  email: ["dbservice", "logs"],
  logs: [],
  cache: ["logs"],
  records: ["dbservice", "logs"],
  webhooks: ["dbservice", "logs"],
};

/** The certificate names that may call `service` as a service identity, by default. */
export function defaultServiceIdentities(service: ServiceName): string[] {
  return Object.entries(serviceCalls)
    .filter(([, callees]) => callees.includes(service))
    .map(([caller]) => caller)
    .sort();
}

/** A certificate name: what the dev CA and the chart put in a CN. */
export const certificateName = /^[a-z0-9][a-z0-9.-]{0,62}$/;

/** TLS_PEER_SERVICES ("gateway,auth") → the allow-list; "none" → empty; unset → the default for `service`. */
export function serviceIdentities(service: ServiceName, setting: string | undefined): ReadonlySet<string> {
  if (setting === undefined) return new Set(defaultServiceIdentities(service));
  if (setting.trim() === "none") return new Set();
  return new Set(setting.split(",").map((s) => s.trim()).filter(Boolean));
}

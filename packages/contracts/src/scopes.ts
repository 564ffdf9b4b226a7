/**
 * API-key scopes: what a key may do. Auth checks the names when a key is created and writes them
 * into the `scope` claim of the key's access tokens; every service's kit checks them on each call
 * a key makes (packages/kit/src/interceptors.ts). One table for both sides.
 *
 * - `<type>:read` and `<type>:write` per object type of the CRM (crm.records.v1) and for timers
 *   and chats; write does not imply read.
 * - `reports:read`: the CRM's reports and currency settings as they are (crm.records.v1.ReportService's
 *   reads); there is no `reports:write`.
 * - `admin`: every RPC of crm.admin.v1 (users, the audit log), crm.webhooks.v1 and crm.email.v1,
 *   and the CRM's admin-only settings: ReportService's writes (base currency, exchange rates) and
 *   every RPC of PermissionService (members' edit grants, read too: a key sees them only when its
 *   creator may change them). Only owners and admins create keys, and a key acts with its
 *   creator's current role, so a demoted creator's key is refused by the handler as well.
 * An RPC is a read when its proto says `idempotency_level = NO_SIDE_EFFECTS`, or it is a server
 * stream (a live subscription); every other RPC is a write. RPCs this table does not name (auth's
 * sessions and API keys, logs, cache, the CRM's other cross-object services) are refused to API
 * keys: they need a user's session.
 */

/** The CRM's object types (crm.records.v1), as scopes name them. */
export const objectTypes = ["companies", "people", "pipelines", "deals", "tasks", "notes"] as const;
export type ObjectType = (typeof objectTypes)[number];

export const ADMIN_SCOPE = "admin";

export const REPORTS_READ_SCOPE = "reports:read";

/** Every scope a key may hold. */
export const apiKeyScopes: readonly string[] = [...[...objectTypes, "timers", "chats"].flatMap((t) => [`${t}:read`, `${t}:write`]), REPORTS_READ_SCOPE, ADMIN_SCOPE];

const known = new Set(apiKeyScopes);
export const isApiKeyScope = (s: string): boolean => known.has(s);

/** The scope area of each service an API key may call. */
const areaOf: Record<string, string> = {
  "crm.records.v1.CompanyService": "companies",
  "crm.records.v1.PersonService": "people",
  "crm.records.v1.PipelineService": "pipelines",
  "crm.records.v1.DealService": "deals",
  "crm.records.v1.TaskService": "tasks",
  "crm.records.v1.NoteService": "notes",
  "crm.timer.v1.TimerService": "timers",
  "crm.chat.v1.ChatService": "chats",
};
/** Packages whose every RPC needs the admin scope. */
const adminPackages = ["crm.admin.v1.", "crm.webhooks.v1.", "crm.email.v1."];
/** Services whose reads need `<area>:read` and whose writes (admin-only RPCs) the admin scope. */
const readOrAdmin: Record<string, string> = { "crm.records.v1.ReportService": REPORTS_READ_SCOPE };
/** Services whose every RPC needs the admin scope (reads included). */
const adminServices = new Set(["crm.records.v1.PermissionService"]);
/** RPCs any key may call (it tells the key who it acts for). */
const anyKey = new Set(["crm.auth.v1.AuthService/Check"]);

/**
 * The scope an API key needs to call `service`/`method`: a scope name, `null` when any key may
 * call it, `undefined` when no key may (it needs a user's session).
 */
export function scopeNeeded(service: string, method: string, readOnly: boolean): string | null | undefined {
  if (anyKey.has(`${service}/${method}`)) return null;
  const area = areaOf[service];
  if (area) return `${area}:${readOnly ? "read" : "write"}`;
  const read = readOrAdmin[service];
  if (read) return readOnly ? read : ADMIN_SCOPE;
  if (adminServices.has(service) || adminPackages.some((p) => service.startsWith(p))) return ADMIN_SCOPE;
  return undefined;
}

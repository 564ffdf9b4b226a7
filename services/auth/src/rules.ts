/**
 * The auth domain's rules used on both sides: by the service's request checks (api-keys.ts) and by
 * its store (services/auth/store), which checks again what it is given (dbservice trusts no
 * caller's input). Pure: no I/O.
 */
import { invalid, isUuid, type Violation } from "@crm/kit";
import { apiKeyScopes, isApiKeyScope } from "@crm/contracts/scopes";

export const apiKeyLimits = {
  nameMax: 100,
  /** Keys a company may hold that are neither revoked nor expired. */
  activePerCompany: 100,
  defaultRequestsPerMinute: 600,
  maxRequestsPerMinute: 100_000,
  /** How far ahead an expiry may be set. */
  maxLifetimeMs: 5 * 365 * 86_400_000,
  maxScopes: 32,
} as const;

/** A CreateApiKey request as given (expiry in ms since the epoch, or undefined for none). */
export interface ApiKeyInput {
  name: string;
  scopes: string[];
  expiresAtMs: number | undefined;
  requestsPerMinute: number;
}

export interface ValidApiKey {
  /** Trimmed. */
  name: string;
  /** Known, each once, in the order of apiKeyScopes. */
  scopes: string[];
  expiresAtMs: number | undefined;
  requestsPerMinute: number;
}

/** Checks a new key's settings at `now`; one invalid_argument naming every bad field. */
export function checkApiKey(input: ApiKeyInput, now: number): ValidApiKey {
  const problems: Violation[] = [];
  const name = input.name.trim();
  const length = [...name].length;
  if (length < 1) problems.push({ field: "name", description: "is required: a name that tells what the key is for" });
  else if (length > apiKeyLimits.nameMax) problems.push({ field: "name", description: `must be at most ${apiKeyLimits.nameMax} characters` });
  if (input.scopes.length === 0) problems.push({ field: "scopes", description: `needs at least one of ${apiKeyScopes.join(", ")}` });
  else if (input.scopes.length > apiKeyLimits.maxScopes) problems.push({ field: "scopes", description: `at most ${apiKeyLimits.maxScopes}` });
  input.scopes.forEach((s, i) => {
    if (!isApiKeyScope(s)) problems.push({ field: `scopes[${i}]`, description: `is not a scope; choose from ${apiKeyScopes.join(", ")}` });
  });
  if (input.expiresAtMs !== undefined) {
    if (!Number.isFinite(input.expiresAtMs) || input.expiresAtMs <= now) problems.push({ field: "expiresAt", description: "must be in the future (or unset: the key does not expire)" });
    else if (input.expiresAtMs > now + apiKeyLimits.maxLifetimeMs) problems.push({ field: "expiresAt", description: "must be at most 5 years ahead" });
  }
  const rpm = input.requestsPerMinute === 0 ? apiKeyLimits.defaultRequestsPerMinute : input.requestsPerMinute;
  if (!Number.isInteger(rpm) || rpm < 1 || rpm > apiKeyLimits.maxRequestsPerMinute) {
    problems.push({ field: "requestsPerMinute", description: `must be 1..${apiKeyLimits.maxRequestsPerMinute} (0 means ${apiKeyLimits.defaultRequestsPerMinute})` });
  }
  if (problems.length) throw invalid(problems);
  const wanted = new Set(input.scopes);
  return { name, scopes: apiKeyScopes.filter((s) => wanted.has(s)), expiresAtMs: input.expiresAtMs, requestsPerMinute: rpm };
}

/** The key a call acts on: a UUID (from ListApiKeys). */
export function apiKeyIdOf(id: string): string {
  if (!isUuid(id)) throw invalid([{ field: "apiKeyId", description: id ? "must be an API key id (UUID) from ListApiKeys" : "is required" }]);
  return id;
}

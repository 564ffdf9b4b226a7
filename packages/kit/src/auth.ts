/**
 * Access-token verification (RS256 JWT, jose) and the caller's identity inside handlers.
 * Every service verifies the token again (defense in depth; all-in-one has no gateway), and
 * consults the revocation list so Logout takes effect at once, not at token expiry.
 */
import { Code, ConnectError, createContextKey, type HandlerContext } from "@connectrpc/connect";
import { createLocalJWKSet, decodeProtectedHeader, errors as joseErrors, jwtVerify, type JSONWebKeySet } from "jose";
import { apiKeyShape } from "@crm/contracts/tokens";
import { AppError } from "./errors.js";
import { dependencyError } from "./dependencies.js";
import type { Revocations } from "./revocations.js";

export const roles = ["owner", "admin", "member"] as const;
export type Role = (typeof roles)[number];

export interface Principal {
  userId: string;
  companyId: string;
  role: Role;
  sessionId: string;
  /** Seconds since the epoch. */
  expiresAt: number;
  /** The raw access token, forwarded on peer calls (for an API key: the access token it was exchanged for). */
  token: string;
  /** Set when the caller is an API key: it acts for `userId` (its creator), limited to its scopes. */
  apiKey?: ApiKeyIdentity | undefined;
}

/** An API key calling (claims `scope`, `key_name`, `rpm` of its access token; its id is the token's sid). */
export interface ApiKeyIdentity {
  id: string;
  name: string;
  scopes: ReadonlySet<string>;
  /** Calls per minute it may make (interceptors.ts limits it per process). */
  requestsPerMinute: number;
}

/** Who did something, for timelines and the audit log: a user, or "API key <name>" acting for its creator. */
export interface Actor {
  type: "user" | "api_key";
  /** The user's or the key's id. */
  id: string;
  /** "API key <name>" for a key; empty for a user (the store knows their name). */
  name: string;
  /** The user acted for (the key's creator). */
  userId: string;
}

export function actorOf(p: Principal): Actor {
  return p.apiKey ? { type: "api_key", id: p.apiKey.id, name: `API key ${p.apiKey.name}`, userId: p.userId } : { type: "user", id: p.userId, name: "", userId: p.userId };
}

/** What the server knows of the call a token came with. */
export interface CallInfo {
  /** The client's address (an API key's last used address). */
  ip?: string | undefined;
}

export interface TokenVerifier {
  /** Verifies an access token, or an API key (`crm_live_…`) when the verifier was given `apiKeys`. */
  verify(token: string, call?: CallInfo): Promise<Principal>;
}

/** Turns an API key into a short-lived access token (auth's ExchangeApiKey); rejects with AppError for a key that is not usable. */
export type ApiKeyExchange = (key: string, call: CallInfo) => Promise<string>;

export interface VerifierOptions {
  /** The public keys; a function is asked on every check (a JWKS reloaded from its file, reload.ts). */
  jwks: JSONWebKeySet | (() => JSONWebKeySet);
  issuer: string;
  audience: string;
  revocations: Revocations;
  /**
   * Accepts API keys: a key is exchanged for an access token once, then answered from memory
   * like any verified token (revocation checked on every call); the exchange is repeated in the
   * background when half the token's life is gone. Unset: API keys are refused.
   */
  apiKeys?: ApiKeyExchange | undefined;
}

const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const CACHE_MAX = 10_000;
/**
 * The token rules, the same as the gateway's (services/gateway/njs/jwt.js; one table of cases,
 * @crm/testkit/token-cases, runs against both): at most MAX_TOKEN_LENGTH characters; header alg
 * RS256, typ exactly at+jwt or application/at+jwt, a kid naming a JWKS key, no crit; iss, aud;
 * exp in the future (no leeway); iat required and nbf when present at most CLOCK_SKEW_SECONDS
 * ahead; sub, cid, sid UUIDs; a known role.
 */
export const CLOCK_SKEW_SECONDS = 60;
export const MAX_TOKEN_LENGTH = 8192;
const TYPES = new Set(["at+jwt", "application/at+jwt"]);

/** Why the token's header is refused, or undefined (jose alone would take a token without kid when the JWKS has one key). */
function headerProblem(token: string): string | undefined {
  if (token.length > MAX_TOKEN_LENGTH) return "too long";
  let header: ReturnType<typeof decodeProtectedHeader>;
  try {
    header = decodeProtectedHeader(token);
  } catch {
    return "malformed";
  }
  if (header.alg !== "RS256") return "alg";
  if (typeof header.typ !== "string" || !TYPES.has(header.typ)) return "typ";
  if (typeof header.kid !== "string" || header.kid === "") return "kid";
  if (header.crit !== undefined) return "crit";
  return undefined;
}

export function createTokenVerifier(opts: VerifierOptions): TokenVerifier {
  const jwksNow = typeof opts.jwks === "function" ? opts.jwks : () => opts.jwks as JSONWebKeySet;
  let jwks = jwksNow();
  let keys = createLocalJWKSet(jwks);
  // Signature checks cost ~0.1 ms; a verified token's claims are cached until it expires.
  // Revocation is still consulted on every call.
  const verified = new Map<string, Principal>();

  async function verifySignature(token: string): Promise<Principal> {
    const latest = jwksNow();
    if (latest !== jwks) {
      // A new key set: tokens of a key that left it must fail from now on, so nothing cached stays.
      jwks = latest;
      keys = createLocalJWKSet(latest);
      verified.clear();
      exchanged.clear();
    }
    const hit = verified.get(token);
    if (hit && hit.expiresAt * 1000 > Date.now()) return hit;
    const invalid = new AppError("token_invalid", "access token is invalid: log in again");
    const expired = new AppError("token_invalid", "access token expired: call /crm.auth.v1.AuthService/Refresh (or /auth/refresh) for a new one");
    if (headerProblem(token)) throw invalid;
    let payload;
    try {
      // clockTolerance applies to nbf here; exp and iat are checked below, as the gateway does
      ({ payload } = await jwtVerify(token, keys, {
        algorithms: ["RS256"],
        issuer: opts.issuer,
        audience: opts.audience,
        requiredClaims: ["sub", "cid", "role", "sid", "iat", "exp"],
        clockTolerance: CLOCK_SKEW_SECONDS,
      }));
    } catch (err) {
      throw err instanceof joseErrors.JWTExpired ? expired : invalid;
    }
    const { sub, cid, role, sid, exp, iat, scope, key_name: keyName, rpm } = payload as Record<string, unknown>;
    const now = Math.floor(Date.now() / 1000);
    if (typeof exp !== "number" || exp <= now) throw expired;
    if (typeof iat !== "number" || iat > now + CLOCK_SKEW_SECONDS) throw invalid;
    if (typeof sub !== "string" || !uuid.test(sub) || typeof cid !== "string" || !uuid.test(cid) || typeof sid !== "string" || !uuid.test(sid) || !roles.includes(role as Role)) {
      throw invalid;
    }
    const principal: Principal = { userId: sub, companyId: cid, role: role as Role, sessionId: sid, expiresAt: exp as number, token };
    // An API key's access token (auth's ExchangeApiKey): its session is the key.
    if (scope !== undefined) {
      if (typeof scope !== "string" || typeof keyName !== "string" || typeof rpm !== "number" || !(rpm > 0)) throw invalid;
      principal.apiKey = { id: sid, name: keyName, scopes: new Set(scope.split(" ").filter(Boolean)), requestsPerMinute: rpm };
    }
    if (verified.size >= CACHE_MAX) verified.delete(verified.keys().next().value!);
    verified.set(token, principal);
    return principal;
  }

  // API keys: key → the principal of the access token it was exchanged for (the same cache as
  // tokens, keyed by the key; the token's own expiry bounds each entry).
  interface KeyEntry {
    principal: Principal;
    /** When to exchange again (half the token's life), in ms. */
    refreshAt: number;
  }
  const exchanged = new Map<string, KeyEntry>();
  const exchanging = new Map<string, Promise<Principal>>();
  /** Keys refused a moment ago (unknown, revoked…): refused again without asking auth, for NEGATIVE_MS. */
  const refused = new Map<string, { err: AppError; until: number }>();
  const NEGATIVE_MS = 5_000;

  function exchange(key: string, call: CallInfo): Promise<Principal> {
    let running = exchanging.get(key);
    if (running) return running;
    running = (async () => {
      const started = Date.now();
      let token: string;
      try {
        token = await opts.apiKeys!(key, call);
      } catch (err) {
        const refusedByAuth = err instanceof AppError ? err.reason === "unauthenticated" || err.reason === "token_invalid" || err.reason === "session_ended" : err instanceof ConnectError && err.code === Code.Unauthenticated;
        if (refusedByAuth) {
          exchanged.delete(key);
          const refusal = new AppError("token_invalid", err instanceof ConnectError ? err.rawMessage : (err as Error).message);
          if (refused.size >= CACHE_MAX) refused.delete(refused.keys().next().value!);
          refused.set(key, { err: refusal, until: Date.now() + NEGATIVE_MS });
          throw refusal;
        }
        if (err instanceof AppError) throw err;
        const why = dependencyError(err)?.message ?? (err instanceof Error ? err.message : String(err));
        throw new AppError("unavailable", `cannot check this API key now (auth does not answer): ${why}; try again shortly`);
      }
      const principal = await verifySignature(token);
      if (!principal.apiKey) throw new AppError("internal", "the API key exchange returned a token without the key's scopes");
      const life = principal.expiresAt * 1000 - started;
      if (exchanged.size >= CACHE_MAX) exchanged.delete(exchanged.keys().next().value!);
      exchanged.set(key, { principal, refreshAt: started + life / 2 });
      return principal;
    })().finally(() => exchanging.delete(key));
    exchanging.set(key, running);
    return running;
  }

  async function verifyApiKey(key: string, call: CallInfo): Promise<Principal> {
    if (!opts.apiKeys) throw new AppError("token_invalid", "API keys are not accepted here: send an access token");
    const now = Date.now();
    const entry = exchanged.get(key);
    if (entry && entry.principal.expiresAt * 1000 > now) {
      // Half its life gone: exchange again in the background (the key's last use is recorded then),
      // answering from the cache meanwhile. A failure shows on a later call.
      if (now >= entry.refreshAt && !exchanging.has(key)) exchange(key, call).catch(() => {});
      return entry.principal;
    }
    const no = refused.get(key);
    if (no && no.until > now) throw no.err;
    if (no) refused.delete(key);
    return exchange(key, call);
  }

  return {
    async verify(token, call = {}) {
      const principal = apiKeyShape.test(token) ? await verifyApiKey(token, call) : await verifySignature(token);
      let revoked: boolean;
      try {
        revoked = await opts.revocations.isSessionRevoked(principal.sessionId);
      } catch (err) {
        // Fail closed: without the revocation list a logged-out token could pass.
        if (err instanceof AppError) throw err;
        const why = dependencyError(err)?.message ?? "the revocation list is unreachable; try again shortly";
        throw new AppError("unavailable", `cannot check whether this session was revoked, so the token is refused for now: ${why}`);
      }
      if (revoked) {
        if (principal.apiKey) throw new AppError("session_ended", `API key ${principal.apiKey.name} was revoked`);
        throw new AppError("session_ended", "this session has ended (logged out or revoked): log in again");
      }
      return principal;
    },
  };
}

/** Set by the auth interceptor for every non-public call. */
export const principalKey = createContextKey<Principal | undefined>(undefined, { description: "verified caller" });

/** Set by the server for calls from another service of ours (mTLS certificate or in-process). */
export const peerServiceKey = createContextKey<string | undefined>(undefined, { description: "calling service" });

export function principalOf(ctx: HandlerContext): Principal {
  const p = ctx.values.get(principalKey);
  if (!p) throw new AppError("unauthenticated", "this call needs an access token: send Authorization: Bearer <token> or the access_token cookie");
  return p;
}

export function requireRole(ctx: HandlerContext, ...allowed: Role[]): Principal {
  const p = principalOf(ctx);
  if (!allowed.includes(p.role)) throw new AppError("permission_denied", `this call needs role ${allowed.join(" or ")}; you are ${p.role}`);
  return p;
}

/** The client's IP address (for throttling and session records). */
export const clientIpKey = createContextKey<string>("", { description: "client ip" });

/**
 * The service of ours calling as itself, if any: a peer identity (an allowed mTLS certificate name,
 * service-identities.ts, or the in-process identity) other than the gateway, which only passes
 * users' calls on. Every service decides "is this one of our services acting for no user" here.
 */
export function callingService(values: { get: HandlerContext["values"]["get"] }): string | undefined {
  const peer = values.get(peerServiceKey);
  return peer && peer !== "gateway" ? peer : undefined;
}

/** For internal RPCs that run before a tenant is known: only the named services may call them. */
export function requirePeer(ctx: HandlerContext, ...services: string[]): string {
  const peer = ctx.values.get(peerServiceKey);
  if (!peer || !services.includes(peer)) throw new AppError("permission_denied", `this internal call is only for the ${services.join("/")} service`);
  return peer;
}

/** The access token of a request: `Authorization: Bearer …` first, then the access_token cookie. */
export function tokenFromHeaders(h: Headers): string | undefined {
  const auth = h.get("authorization");
  if (auth) {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(auth);
    return m?.[1];
  }
  return cookie(h, "access_token");
}

export function cookie(h: Headers, name: string): string | undefined {
  const raw = h.get("cookie");
  if (!raw) return undefined;
  for (const part of raw.split(";")) {
    const i = part.indexOf("=");
    if (i > 0 && part.slice(0, i).trim() === name) return decodeURIComponent(part.slice(i + 1).trim());
  }
  return undefined;
}

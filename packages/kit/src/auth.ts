/**
 * Access-token verification (RS256 JWT, jose) and the caller's identity inside handlers.
 * Every service verifies the token again (defense in depth; all-in-one has no gateway), and
 * consults the revocation list so Logout takes effect at once, not at token expiry.
 */
import { createContextKey, type HandlerContext } from "@connectrpc/connect";
import { createLocalJWKSet, decodeProtectedHeader, errors as joseErrors, jwtVerify, type JSONWebKeySet } from "jose";
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
  /** The raw access token, forwarded on peer calls. */
  token: string;
}

export interface TokenVerifier {
  verify(token: string): Promise<Principal>;
}

export interface VerifierOptions {
  /** The public keys; a function is asked on every check (a JWKS reloaded from its file, reload.ts). */
  jwks: JSONWebKeySet | (() => JSONWebKeySet);
  issuer: string;
  audience: string;
  revocations: Revocations;
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
    const { sub, cid, role, sid, exp, iat } = payload as Record<string, unknown>;
    const now = Math.floor(Date.now() / 1000);
    if (typeof exp !== "number" || exp <= now) throw expired;
    if (typeof iat !== "number" || iat > now + CLOCK_SKEW_SECONDS) throw invalid;
    if (typeof sub !== "string" || !uuid.test(sub) || typeof cid !== "string" || !uuid.test(cid) || typeof sid !== "string" || !uuid.test(sid) || !roles.includes(role as Role)) {
      throw invalid;
    }
    const principal: Principal = { userId: sub, companyId: cid, role: role as Role, sessionId: sid, expiresAt: exp as number, token };
    if (verified.size >= CACHE_MAX) verified.delete(verified.keys().next().value!);
    verified.set(token, principal);
    return principal;
  }

  return {
    async verify(token) {
      const principal = await verifySignature(token);
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

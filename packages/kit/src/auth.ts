/**
 * Access-token verification (RS256 JWT, jose) and the caller's identity inside handlers.
 * Every service verifies the token again (defense in depth; all-in-one has no gateway), and
 * consults the revocation list so Logout takes effect at once, not at token expiry.
 */
import { createContextKey, type HandlerContext } from "@connectrpc/connect";
import { createLocalJWKSet, errors as joseErrors, jwtVerify, type JSONWebKeySet } from "jose";
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
  jwks: JSONWebKeySet;
  issuer: string;
  audience: string;
  revocations: Revocations;
}

const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const CACHE_MAX = 10_000;

export function createTokenVerifier(opts: VerifierOptions): TokenVerifier {
  const keys = createLocalJWKSet(opts.jwks);
  // Signature checks cost ~0.1 ms; a verified token's claims are cached until it expires.
  // Revocation is still consulted on every call.
  const verified = new Map<string, Principal>();

  async function verifySignature(token: string): Promise<Principal> {
    const hit = verified.get(token);
    if (hit && hit.expiresAt * 1000 > Date.now()) return hit;
    let payload;
    try {
      ({ payload } = await jwtVerify(token, keys, {
        algorithms: ["RS256"],
        issuer: opts.issuer,
        audience: opts.audience,
        typ: "at+jwt",
        requiredClaims: ["sub", "cid", "role", "sid", "iat", "exp"],
        clockTolerance: 5,
      }));
    } catch (err) {
      const why = err instanceof joseErrors.JWTExpired ? "access token expired: call /crm.auth.v1.AuthService/Refresh (or /auth/refresh) for a new one" : "access token is invalid: log in again";
      throw new AppError("token_invalid", why);
    }
    const { sub, cid, role, sid, exp } = payload as Record<string, unknown>;
    if (typeof sub !== "string" || !uuid.test(sub) || typeof cid !== "string" || !uuid.test(cid) || typeof sid !== "string" || !uuid.test(sid) || !roles.includes(role as Role)) {
      throw new AppError("token_invalid", "access token is invalid: log in again");
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

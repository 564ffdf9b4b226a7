/**
 * Server interceptors, outermost first: call context (request id, forwarded credentials),
 * errors (registry mapping + recovery + access log), auth (verify the token, set the principal).
 */
import { randomUUID } from "node:crypto";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { peerServiceKey, principalKey, tokenFromHeaders, type TokenVerifier } from "./auth.js";
import { callContext, iterateIn, type CallContext } from "./context.js";
import { AppError, toConnectError } from "./errors.js";
import type { Logger } from "./logger.js";

export const methodPath = (req: { service: { typeName: string }; method: { name: string } }) => `/${req.service.typeName}/${req.method.name}`;

export function contextInterceptor(): Interceptor {
  return (next) => async (req) => {
    const incoming = req.header.get("x-request-id");
    const store: CallContext = {
      requestId: incoming && /^[\w.-]{1,64}$/.test(incoming) ? incoming : randomUUID(),
      authorization: req.header.get("authorization") ?? bearerFromCookie(req.header),
      traceparent: req.header.get("traceparent") ?? undefined,
    };
    const res = await callContext.run(store, () => next(req));
    if (res.stream) return { ...res, message: iterateIn(store, res.message) };
    return res;
  };
}

function bearerFromCookie(h: Headers): string | undefined {
  const t = tokenFromHeaders(h);
  return t ? `Bearer ${t}` : undefined;
}

/** Turns AppErrors into Connect errors, and any other throw (a bug) into `internal` with a request id. */
export function errorInterceptor(log: Logger): Interceptor {
  const convert = (err: unknown, path: string): ConnectError => {
    if (err instanceof AppError) return toConnectError(err);
    if (err instanceof ConnectError) return err;
    const requestId = callContext.getStore()?.requestId ?? "-";
    log.error({ err, rpc: path }, "unhandled error");
    return new ConnectError(`internal error (request id ${requestId}); it was logged`, Code.Internal);
  };
  return (next) => async (req) => {
    const path = methodPath(req);
    const started = performance.now();
    try {
      const res = await next(req);
      if (!res.stream) {
        if (log.isLevelEnabled("debug")) log.debug({ rpc: path, ms: +(performance.now() - started).toFixed(2) }, "rpc");
        return res;
      }
      const source = res.message;
      async function* guarded() {
        try {
          yield* source;
        } catch (err) {
          throw convert(err, path);
        }
      }
      return { ...res, message: guarded() };
    } catch (err) {
      const e = convert(err, path);
      log.debug({ rpc: path, code: Code[e.code], ms: +(performance.now() - started).toFixed(2) }, "rpc failed");
      throw e;
    }
  };
}

/**
 * Verifies the access token of every call that is not public and puts the principal in the context.
 * A principal already in the context values was put there by the in-process peer transport: the
 * same token, verified by this process for the calling request moments ago (peers.ts).
 */
export function authInterceptor(verifier: TokenVerifier, publicMethods: ReadonlySet<string>): Interceptor {
  return (next) => async (req) => {
    if (publicMethods.has(methodPath(req))) return next(req);
    let principal = req.contextValues.get(principalKey);
    if (!principal) {
      const token = tokenFromHeaders(req.header);
      if (!token) {
        // A service of ours calling as itself (no user, e.g. error reports): no principal is set, so
        // handlers that need a user still refuse; service-facing handlers check requirePeer.
        const peer = req.contextValues.get(peerServiceKey);
        if (peer && peer !== "gateway") return next(req);
        throw new AppError("unauthenticated", "this call needs an access token: send Authorization: Bearer <token> or the access_token cookie (get one from /crm.auth.v1.AuthService/Login)");
      }
      principal = await verifier.verify(token);
      req.contextValues.set(principalKey, principal);
    }
    const call = callContext.getStore();
    if (call) {
      call.companyId = principal.companyId;
      call.userId = principal.userId;
      call.principal = principal;
    }
    return next(req);
  };
}

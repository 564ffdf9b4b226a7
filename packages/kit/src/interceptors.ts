/**
 * Server interceptors, outermost first: call context (request id, forwarded credentials),
 * errors (registry mapping + recovery + access log), auth (verify the token, set the principal).
 */
import { randomUUID } from "node:crypto";
import { Code, ConnectError, type Interceptor, type StreamRequest, type StreamResponse, type UnaryRequest, type UnaryResponse } from "@connectrpc/connect";
import { MethodOptions_IdempotencyLevel } from "@bufbuild/protobuf/wkt";
import { scopeNeeded } from "@crm/contracts/scopes";
import { callingService, clientIpKey, principalKey, tokenFromHeaders, type Principal, type TokenVerifier } from "./auth.js";
import { callContext, iterateIn, type CallContext } from "./context.js";
import { dependencyError } from "./dependencies.js";
import { AppError, toConnectError } from "./errors.js";
import type { Logger } from "./logger.js";
import { memoryCounter } from "./ratelimit.js";

const paths = new WeakMap<object, string>();
/** "/package.Service/Method", made once per method (interceptors ask on every call). */
export const methodPath = (req: { service: { typeName: string }; method: { name: string } }): string => {
  let path = paths.get(req.method);
  if (path === undefined) paths.set(req.method, (path = `/${req.service.typeName}/${req.method.name}`));
  return path;
};

/** `next(req)` as a promise even when it throws synchronously (interceptors that are not async functions). */
export function callNext<R>(next: (req: R) => Promise<UnaryResponse | StreamResponse>, req: R): Promise<UnaryResponse | StreamResponse> {
  try {
    return next(req);
  } catch (err) {
    return Promise.reject(err);
  }
}

export function contextInterceptor(): Interceptor {
  return (next) => (req) => {
    const incoming = req.header.get("x-request-id");
    const store = new CallStore(incoming && /^[\w.-]{1,64}$/.test(incoming) ? incoming : undefined, req.header.get("authorization") ?? bearerFromCookie(req.header), req.header.get("traceparent") ?? undefined);
    if (!req.stream) return callContext.run(store, next, req);
    return callContext.run(store, next, req).then((res) => (res.stream ? { ...res, message: iterateIn(store, res.message) } : res));
  };
}

/** A call context whose request id, when the caller sent none, is made on first use (most calls never log or forward one). */
class CallStore implements CallContext {
  #requestId: string | undefined;
  companyId?: string;
  userId?: string;
  principal?: Principal;
  constructor(
    requestId: string | undefined,
    public authorization: string | undefined,
    readonly traceparent: string | undefined,
  ) {
    this.#requestId = requestId;
  }
  get requestId() {
    return (this.#requestId ??= randomUUID());
  }
}

function bearerFromCookie(h: Headers): string | undefined {
  const t = tokenFromHeaders(h);
  return t ? `Bearer ${t}` : undefined;
}

/**
 * An error whose message quotes a lone surrogate (e.g. a JSON decode error quoting the client's
 * "\ud800") cannot travel in grpc-message (percent-encoding throws): U+FFFD instead.
 */
function wellFormedMessage(err: ConnectError): ConnectError {
  const message = err.rawMessage;
  if ((message as unknown as { isWellFormed(): boolean }).isWellFormed()) return err;
  const fixed = new ConnectError((message as unknown as { toWellFormed(): string }).toWellFormed(), err.code, err.metadata, undefined, err.cause);
  fixed.details = err.details;
  return fixed;
}

/** Turns AppErrors into Connect errors, and any other throw (a bug) into `internal` with a request id. */
export function errorInterceptor(log: Logger): Interceptor {
  const convert = (err: unknown, path: string): ConnectError => {
    if (err instanceof AppError) return toConnectError(err);
    if (err instanceof ConnectError) return wellFormedMessage(err);
    // A backing server that failed or missed its deadline: unavailable, naming it (dependencies.ts).
    const dependency = dependencyError(err);
    if (dependency) return toConnectError(dependency);
    const requestId = callContext.getStore()?.requestId ?? "-";
    log.error({ err, rpc: path }, "unhandled error");
    return new ConnectError(`internal error (request id ${requestId}); it was logged`, Code.Internal);
  };
  return (next) => (req) => {
    const started = performance.now();
    const failed = (err: unknown) => {
      const path = methodPath(req);
      const e = convert(err, path);
      log.debug({ rpc: path, code: Code[e.code], ms: +(performance.now() - started).toFixed(2) }, "rpc failed");
      return Promise.reject(e);
    };
    return callNext(next, req).then((res) => {
      if (!res.stream) {
        if (log.isLevelEnabled("debug")) log.debug({ rpc: methodPath(req), ms: +(performance.now() - started).toFixed(2) }, "rpc");
        return res;
      }
      const path = methodPath(req);
      const source = res.message;
      async function* guarded() {
        try {
          yield* source;
        } catch (err) {
          throw convert(err, path);
        }
      }
      return { ...res, message: guarded() };
    }, failed);
  };
}

/** An RPC that changes nothing: its proto says NO_SIDE_EFFECTS, or it is a server stream (a subscription). */
const readOnly = (req: UnaryRequest | StreamRequest) => req.method.idempotency === MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS || req.method.methodKind === "server_streaming";

/**
 * What an API key may do, checked where its call enters (not again on the calls our services make
 * for it): the scope its RPC needs (@crm/contracts/scopes), and its calls per minute, counted in
 * this process's memory so that a key's call costs what a session's does.
 */
function apiKeyGuard() {
  const counter = memoryCounter();
  return async (req: UnaryRequest | StreamRequest, p: Principal) => {
    const key = p.apiKey!;
    const need = scopeNeeded(req.service.typeName, req.method.name, readOnly(req));
    if (need === undefined) throw new AppError("permission_denied", `API keys cannot call ${methodPath(req)}: it needs a user's session`);
    if (need !== null && !key.scopes.has(need)) throw new AppError("permission_denied", `API key ${key.name} lacks the scope ${need} that ${methodPath(req)} needs; create a key with it`);
    const used = await counter.hit(key.id, 60);
    if (used > key.requestsPerMinute) {
      throw new AppError("rate_limited", `API key ${key.name} made more than ${key.requestsPerMinute} calls this minute; slow down`, [], await counter.ttl(key.id));
    }
  };
}

/**
 * Verifies the access token (or API key) of every call that is not public and puts the principal
 * in the context. A principal already in the context values was put there by the in-process peer
 * transport: the same token, verified by this process for the calling request moments ago
 * (peers.ts). An API key's calls go on to peers with the access token it was exchanged for.
 */
export function authInterceptor(verifier: TokenVerifier, publicMethods: ReadonlySet<string>): Interceptor {
  const guardKey = apiKeyGuard();
  const verified = async (next: Parameters<Interceptor>[0], req: UnaryRequest | StreamRequest) => {
    let principal = req.contextValues.get(principalKey);
    const call = callContext.getStore();
    if (!principal) {
      const token = tokenFromHeaders(req.header);
      if (!token) {
        // A service of ours calling as itself (no user, e.g. error reports): no principal is set, so
        // handlers that need a user still refuse; service-facing handlers check requirePeer.
        if (callingService(req.contextValues)) return next(req);
        throw new AppError("unauthenticated", "this call needs an access token: send Authorization: Bearer <token> or the access_token cookie (get one from /crm.auth.v1.AuthService/Login)");
      }
      principal = await verifier.verify(token, { ip: req.contextValues.get(clientIpKey) });
      req.contextValues.set(principalKey, principal);
      // An API key: peers get the access token it was exchanged for, never the key.
      if (call && principal.token !== token) call.authorization = `Bearer ${principal.token}`;
    }
    if (principal.apiKey && !callingService(req.contextValues)) await guardKey(req, principal);
    if (call) {
      call.companyId = principal.companyId;
      call.userId = principal.userId;
      call.principal = principal;
    }
    return next(req);
  };
  return (next) => (req) => (publicMethods.has(methodPath(req)) ? next(req) : verified(next, req));
}

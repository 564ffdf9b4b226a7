/**
 * Transports to other services. Every outgoing call carries the caller's credentials and request
 * id from the call context, so a handler never passes them by hand.
 * - cluster: gRPC over HTTP/2 with TLS, presenting this service's certificate (mTLS);
 * - all-in-one: the peer's router in the same process (no network), proving itself with a
 *   per-process secret.
 * With the fast path off (RPC_FAST_PATH=off), both are plain connect: connect-node's gRPC transport,
 * and connect's router transport for every in-process call.
 */
import { randomBytes } from "node:crypto";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createContextValues, createRouterTransport, type Interceptor, type Transport } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { peerServiceKey, principalKey } from "./auth.js";
import { currentCall } from "./context.js";
import { authInterceptor, contextInterceptor, errorInterceptor, methodPath } from "./interceptors.js";
import type { Logger } from "./logger.js";
import type { TokenVerifier } from "./auth.js";
import type { ServiceModule } from "./server.js";
import { metricsInterceptor } from "./metrics.js";
import { tracingClientInterceptor, tracingServerInterceptor } from "./tracing-interceptor.js";
import { textInterceptor } from "./text-rules.js";
import { fastPathEnabled } from "./config.js";
import { CallContext, ClientUnaryRequest, createGrpcClientTransport, UnaryMethods, unaryResponse, withInterceptors, type AnyFn } from "@crm/fastpath";

export const INTERNAL_HEADER = "x-crm-internal";

/** Identity of in-process calls: a secret minted at boot plus the calling service's name. */
export interface InternalIdentity {
  secret: string;
}

export function newInternalIdentity(): InternalIdentity {
  return { secret: randomBytes(24).toString("base64url") };
}

/** Client side: forward credentials, request id and trace context; name ourselves to in-process peers. */
export function forwardInterceptor(self: string, internal?: InternalIdentity): Interceptor {
  return (next) => async (req) => {
    const call = currentCall();
    if (call) {
      if (call.authorization && !req.header.has("authorization")) req.header.set("authorization", call.authorization);
      if (!req.header.has("x-request-id")) req.header.set("x-request-id", call.requestId);
      if (call.traceparent && !req.header.has("traceparent")) req.header.set("traceparent", call.traceparent);
    }
    if (internal) req.header.set(INTERNAL_HEADER, `${internal.secret} ${self}`);
    return next(req);
  };
}

/** Server side of the in-process identity: a matching secret names the calling service. */
export function internalPeerInterceptor(internal: InternalIdentity): Interceptor {
  return (next) => async (req) => {
    const value = req.header.get(INTERNAL_HEADER);
    if (value) {
      const [secret, service] = value.split(" ");
      if (secret === internal.secret && service) req.contextValues.set(peerServiceKey, service);
      req.header.delete(INTERNAL_HEADER);
    }
    return next(req);
  };
}

export interface PeerTls {
  cert: Buffer;
  key: Buffer;
  ca: Buffer;
}

export interface NetworkPeerOptions {
  /** false: every call on connect-node's gRPC transport. Default: RPC_FAST_PATH ("on" unless "off"). */
  fastPath?: boolean | undefined;
  /** Largest answer read, in bytes (READ_MAX_BYTES); default 4 MiB. */
  readMaxBytes?: number | undefined;
}

/**
 * gRPC to a peer service: unary calls on the fast path's client (@crm/fastpath), streams on
 * connect-node's; with the fast path off, every call on connect-node's. Answers are read up to
 * `readMaxBytes` on both.
 */
export function networkPeer(self: string, baseUrl: string, tls?: PeerTls, opts: NetworkPeerOptions = {}): Transport {
  const nodeOptions = tls ? { cert: tls.cert, key: tls.key, ca: tls.ca } : {};
  const interceptors = [tracingClientInterceptor(), forwardInterceptor(self)];
  const readMaxBytes = opts.readMaxBytes ?? 4 * 1024 * 1024;
  const streams = createGrpcTransport({ baseUrl, nodeOptions, pingIntervalMs: 5_000, pingTimeoutMs: 10_000, idleConnectionTimeoutMs: 5 * 60_000, interceptors, readMaxBytes });
  if (!(opts.fastPath ?? fastPathEnabled())) return streams;
  return createGrpcClientTransport({ baseUrl, nodeOptions, interceptors, streams, readMaxBytes, pingMs: 5_000, pingTimeoutMs: 10_000, idleMs: 5 * 60_000 });
}

export interface InProcessDeps {
  log: Logger;
  verifier: TokenVerifier;
  internal: InternalIdentity;
  /** false: every call through connect's router transport. Default: RPC_FAST_PATH ("on" unless "off"). */
  fastPath?: boolean | undefined;
}

/**
 * The peer module's handlers called in memory, through the same interceptors a server runs. Unary
 * calls go straight to the implementation (the messages still cross as bytes, so neither side can
 * change the other's objects); streams use connect's router transport.
 */
export function inProcessPeer(self: string, module: ServiceModule, deps: InProcessDeps): Transport {
  const publicMethods = new Set(module.publicMethods ?? []);
  const serverInterceptors = [
    tracingServerInterceptor(),
    metricsInterceptor(() => module.name),
    contextInterceptor(),
    errorInterceptor(deps.log),
    internalPeerInterceptor(deps.internal),
    authInterceptor(deps.verifier, publicMethods),
    textInterceptor(),
  ];
  const clientInterceptors = [tracingClientInterceptor(), forwardInterceptor(self, deps.internal)];
  const fastPath = deps.fastPath ?? fastPathEnabled();
  const unary = new UnaryMethods(serverInterceptors);
  const router = createRouterTransport((r) => module.routes(fastPath ? unary.recording(r) : r), {
    transport: { interceptors: clientInterceptors },
    router: { interceptors: serverInterceptors },
  });
  if (!fastPath) return router;
  return {
    async unary(method, signal, timeoutMs, header, input, contextValues) {
      const entry = unary.byPath.get(`/${method.parent.typeName}/${method.name}`);
      if (!entry) return router.unary(method, signal, timeoutMs, header, input, contextValues);
      const url = `in-process://${module.name}/${method.parent.typeName}/${method.name}`;
      const serve: AnyFn = async (req) => {
        if (req.stream) throw new ConnectError("internal error: a stream reached the in-process unary call", Code.Internal);
        const values = createContextValues();
        // The caller's token was verified by this process for the calling request: the peer's auth
        // interceptor takes that principal instead of verifying (and asking Redis) again.
        const caller = currentCall()?.principal;
        if (caller && req.header.get("authorization") === `Bearer ${caller.token}`) values.set(principalKey, caller);
        const ctx = new CallContext(entry.method, "connect", url, new Headers(req.header), values, timeoutMs, [req.signal]);
        try {
          // The messages cross as bytes, so neither side can change the other's objects.
          const res = await unary.invoke(entry, ctx, fromBinary(entry.method.input, toBinary(entry.method.input, req.message)));
          const message = fromBinary(entry.method.output, toBinary(entry.method.output, res.message));
          return { stream: false, service: res.service, method: res.method, header: res.header, trailer: res.trailer, message };
        } finally {
          ctx.done();
        }
      };
      const call = withInterceptors(clientInterceptors, serve);
      return unaryResponse(await call(new ClientUnaryRequest(method, url, signal, header, create(method.input, input), contextValues)), method);
    },
    stream: (...args) => router.stream(...args),
  };
}

export { methodPath };

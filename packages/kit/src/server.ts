/**
 * The RPC server every service (and the all-in-one process) runs: Connect, gRPC and gRPC-Web on
 * one port, /healthz, /readyz, grpc.health.v1 and server reflection, bounded reads, HTTP/2
 * keepalive and connection ageing, and a graceful drain on shutdown.
 *
 * - TLS (cluster): HTTP/2 with TLS and HTTP/1.1 fallback (ALPN), optional/required client certs;
 *   a verified client certificate's CN names the calling service.
 * - Cleartext (all-in-one, ops port): ONE port for HTTP/1.1 and h2c, chosen per connection by the
 *   HTTP/2 connection preface (Node's cleartext http2 server does not fall back by itself).
 * - Unary calls and HTTP/2 server streams take the fast path (@crm/fastpath), on the raw HTTP/2
 *   stream where possible; connect-node's router serves everything else (gRPC-Web, compression,
 *   Connect GET, client and bidi streams), with the same interceptors.
 * - `fastPath: false` (or RPC_FAST_PATH=off) switches the fast path off: connect-node's router then
 *   serves every call, with the same interceptors and the same answers to malformed requests.
 */
import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import { TLSSocket } from "node:tls";
import type { DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, createConnectRouter, createContextValues, type ConnectRouter, type ContextValues, type Interceptor } from "@connectrpc/connect";
import { compressionBrotli, compressionGzip, universalRequestFromNodeRequest, universalResponseToNodeResponse } from "@connectrpc/connect-node";
import type { JsonValue } from "@bufbuild/protobuf";
import { peerServiceKey, type TokenVerifier } from "./auth.js";
import { Health } from "@crm/gen/grpc/health/v1/health_pb";
import { clientIpKey } from "./auth.js";
import { registerHealth } from "./health.js";
import { authInterceptor, contextInterceptor, errorInterceptor } from "./interceptors.js";
import { metricsInterceptor, serveMetrics } from "./metrics.js";
import { tracingServerInterceptor } from "./tracing-interceptor.js";
import type { Logger } from "./logger.js";
import { createReflection } from "./reflection.js";
import type { Revocations } from "./revocations.js";
import { createStreamRegistry, guardStreams } from "./streams.js";
import { createAliasMatcher, queryFields } from "./rest.js";
import { textInterceptor } from "./text-rules.js";
import { fastPathEnabled } from "./config.js";
import { bodyFormat, markUndecodable, screenGetRequest, screenRequest, type Screened } from "./undecodable.js";
import { createFastPath, strictUtf8, takeStreams, UnaryMethods } from "@crm/fastpath";

type NodeReq = http.IncomingMessage | http2.Http2ServerRequest;
type NodeRes = http.ServerResponse | http2.Http2ServerResponse;

/** What a service contributes to a server. The all-in-one server mounts several. */
export interface ServiceModule {
  name: string;
  services: DescService[];
  routes(router: ConnectRouter): void;
  /** Full method paths ("/crm.auth.v1.AuthService/Login") callable without a token. */
  publicMethods?: string[];
  /** Plain HTTP routes (e.g. GET /.well-known/jwks.json); return true when handled. */
  http?(req: NodeReq, res: NodeRes): boolean;
  /** Throws when a dependency does not answer. */
  ready?(): Promise<void>;
  /** Releases pools and connections after the server has drained. */
  close?(): Promise<void>;
}

export interface TlsOptions {
  cert: Buffer;
  key: Buffer;
  ca?: Buffer | undefined;
  clientAuth: "require" | "optional" | "off";
  /**
   * Certificate names (CN) taken as the identity of a calling service (service-identities.ts).
   * A CA-signed certificate with any other name is an ordinary TLS client: no service identity.
   */
  serviceIdentities: ReadonlySet<string>;
}

export interface ServerOptions {
  modules: ServiceModule[];
  port: number;
  host: string;
  log: Logger;
  verifier: TokenVerifier;
  /** The revocation list the verifier checks: open streams of a revoked session end at once (streams.ts). */
  revocations?: Revocations | undefined;
  tls?: TlsOptions | undefined;
  /** Plaintext port for probes and metrics only (health, /healthz, /readyz, /metrics) when the main port is TLS. */
  opsPort?: number | undefined;
  readMaxBytes: number;
  shutdownTimeoutMs: number;
  /** More services server reflection describes besides the server's own (auth: the whole public API, public-api.ts). */
  reflect?: readonly DescService[] | undefined;
  /** Path prefixes refused on this server (e.g. internal crm.db.v1 on the all-in-one public port). */
  hiddenPrefixes?: string[];
  interceptors?: Interceptor[];
  keepalive?: Partial<KeepaliveOptions>;
  /**
   * true: unary calls and HTTP/2 server streams take the kit's fast path; false: plain connect-node
   * serves every call. Default: RPC_FAST_PATH of the process's environment ("on" unless set "off").
   */
  fastPath?: boolean | undefined;
}

export interface KeepaliveOptions {
  idleMs: number;
  maxAgeMs: number;
  graceMs: number;
  pingMs: number;
}

/** The original design's gRPC keepalive: idle 5 min, max age 15 min (±10% jitter), grace 5 min, ping 5 s. */
const defaultKeepalive: KeepaliveOptions = { idleMs: 5 * 60_000, maxAgeMs: 15 * 60_000, graceMs: 5 * 60_000, pingMs: 5_000 };

export interface RunningServer {
  port: number;
  opsPort?: number | undefined;
  /** A renewed certificate, key and CA for the TLS port: new connections use them, open ones go on. */
  setTls(tls: Pick<TlsOptions, "cert" | "key" | "ca">): void;
  close(): Promise<void>;
}

/** The caller's address: the gateway's X-Real-IP when the gateway (an allowed mTLS identity) calls, else the socket's. */
function clientIp(headers: http.IncomingHttpHeaders, socket: net.Socket | undefined, peer: string | undefined): string {
  const forwarded = headers["x-real-ip"];
  if (peer === "gateway" && typeof forwarded === "string" && forwarded) return forwarded;
  return socket?.remoteAddress ?? "";
}

/** Certificate name per TLS connection: getPeerCertificate() builds a fresh object each call (≈ 0.08 ms). */
const certNames = new WeakMap<object, string | undefined>();

/**
 * The calling service: a verified client certificate's CN when it is on the allow-list
 * (TLS with client certificates only). Any other certificate names no service.
 */
function peerOf(socket: net.Socket | undefined, identities: ReadonlySet<string>): string | undefined {
  const tls = socket;
  if (!(tls instanceof TLSSocket) || !tls.authorized) return undefined;
  let name = certNames.get(tls);
  if (name === undefined && !certNames.has(tls)) {
    const cn = tls.getPeerCertificate()?.subject?.CN;
    name = typeof cn === "string" ? cn : undefined;
    certNames.set(tls, name); // fixed for the connection: renegotiation is disabled (startServer)
  }
  return name !== undefined && identities.has(name) ? name : undefined;
}

const noIdentities: ReadonlySet<string> = new Set();

/** What handlers learn about the caller from the connection: the peer service and the client address. */
function connectionValues(headers: http.IncomingHttpHeaders, socket: net.Socket | undefined, identities: ReadonlySet<string>): ContextValues {
  const values = createContextValues();
  const peer = peerOf(socket, identities);
  if (peer) values.set(peerServiceKey, peer);
  values.set(clientIpKey, clientIp(headers, socket, peer));
  return values;
}

/**
 * Reads a request body, keeping at most `max` + 1 bytes (more is read and dropped): a body over
 * the limit stays over it, for connect-node to refuse as it always does.
 */
function readAtMost(req: NodeReq, max: number, done: (body: Uint8Array) => void) {
  const chunks: Buffer[] = [];
  let kept = 0;
  req.on("data", (chunk: Buffer) => {
    if (kept > max) return;
    chunks.push(chunk);
    kept += chunk.length;
  });
  req.once("end", () => done(Buffer.concat(chunks, kept)));
}

/**
 * Ends a request whose answer could not be sent: `internal` in the request's protocol (gRPC and
 * gRPC-Web: a trailers-only answer; else the JSON error) if nothing was sent yet, else a reset.
 */
function answerUnsendable(req: NodeReq, res: NodeRes, path: string) {
  try {
    if (res.headersSent) return res.destroy();
    const message = `internal error: the answer of ${path} could not be sent; it was logged`;
    const type = String(req.headers["content-type"] ?? "");
    if (type.startsWith("application/grpc")) {
      const grpcType = type.startsWith("application/grpc-web-text") ? "application/grpc-web-text+proto" : type.startsWith("application/grpc-web") ? "application/grpc-web+proto" : "application/grpc";
      writeHead(res, 200, { "content-type": grpcType, "grpc-status": String(Code.Internal), "grpc-message": encodeURIComponent(message) });
      res.end();
      return;
    }
    json(res, 500, { code: "internal", message });
  } catch {
    res.destroy();
  }
}

/** writeHead on either kind of response (their signatures differ). */
function writeHead(res: NodeRes, status: number, headers: http.OutgoingHttpHeaders) {
  if (res instanceof http2.Http2ServerResponse) res.writeHead(status, headers);
  else res.writeHead(status, headers);
}

const json = (res: NodeRes, status: number, body: unknown, headers: Record<string, string> = {}) => {
  const text = JSON.stringify(body);
  writeHead(res, status, { ...headers, "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
};

/** The JSON error every error answer is. */
const jsonError = (res: NodeRes, status: number, code: string, message: string) => json(res, status, { code, message });

/**
 * 405 for an RPC or REST alias path called with another HTTP method. The gateway answers the same
 * (services/gateway): code `unimplemented` (the path exists, not for this method), `Allow` header.
 */
function methodNotAllowed(res: NodeRes, method: string, path: string, allowed: string[]) {
  json(res, 405, { code: "unimplemented", message: `HTTP method ${method} is not allowed on ${path}; use ${allowed.join(" or ")}` }, { allow: allowed.join(", ") });
}

/** 415 for an RPC called with a content type no protocol of ours speaks (same answer at the gateway). */
function unsupportedMediaType(res: NodeRes, type: string | undefined, path: string) {
  const sent = type ? `content-type ${JSON.stringify(type.slice(0, 100))}` : "a request without content-type";
  json(res, 415, {
    code: "unimplemented",
    message: `${sent} is not supported on ${path}; send application/json or application/proto (Connect), application/grpc (gRPC) or application/grpc-web (gRPC-Web)`,
  });
}

export async function startServer(opts: ServerOptions): Promise<RunningServer> {
  const { log, modules } = opts;
  const identities = opts.tls?.serviceIdentities ?? noIdentities;
  const keep = { ...defaultKeepalive, ...opts.keepalive };
  const services = modules.flatMap((m) => m.services);
  const publicMethods = new Set(modules.flatMap((m) => m.publicMethods ?? []));

  let draining = false;
  const checks = modules.flatMap((m) => (m.ready ? [() => m.ready!()] : []));
  const yes = Promise.resolve(true);
  const ready = (): Promise<boolean> => (checks.length === 0 && !draining ? yes : checkAll());
  const checkAll = async (): Promise<boolean> => {
    if (draining) return false;
    try {
      await Promise.all(checks.map((check) => check()));
      return true;
    } catch (err) {
      log.warn({ err: String(err) }, "not ready");
      return false;
    }
  };

  const shutdown = new AbortController();
  const healthAndReflection = (router: ConnectRouter) => {
    registerHealth(router, services, ready);
    createReflection([...new Set([...services, ...(opts.reflect ?? []), Health])])(router);
  };
  for (const name of ["grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"]) {
    for (const m of ["Check", "List", "Watch", "ServerReflectionInfo"]) publicMethods.add(`/${name}/${m}`);
  }

  const owners = new Map(modules.flatMap((m) => m.services.map((d) => [d.typeName, m.name] as const)));
  const serviceOf = (typeName: string) => owners.get(typeName) ?? (typeName.startsWith("grpc.") ? typeName.split(".")[1]! : typeName);
  const interceptors = [
    tracingServerInterceptor(),
    metricsInterceptor(serviceOf),
    contextInterceptor(),
    errorInterceptor(log),
    ...(opts.interceptors ?? []),
    authInterceptor(opts.verifier, publicMethods),
    textInterceptor(), // every string of every request: UTF-8, no control characters (text-rules.ts)
  ];
  const connectRouter = createConnectRouter({
    interceptors,
    readMaxBytes: opts.readMaxBytes,
    shutdownSignal: shutdown.signal,
    acceptCompression: [compressionGzip, compressionBrotli],
    jsonOptions: { ignoreUnknownFields: false },
  });
  // Unary calls take the fast path (@crm/fastpath) when it is on; streams and unusual requests,
  // and every call when it is off, go to connect-node.
  const unary = (opts.fastPath ?? fastPathEnabled()) ? new UnaryMethods(interceptors) : undefined;
  // Server streams end on their session's revocation and on drain, with an error (streams.ts).
  const streams = createStreamRegistry({ revocations: opts.revocations, shutdownSignal: shutdown.signal, log });
  const router = guardStreams(unary ? unary.recording(connectRouter) : connectRouter, streams);
  for (const m of modules) m.routes(router);
  healthAndReflection(router);
  const handlers = new Map(connectRouter.handlers.map((h) => [h.requestPath, h]));
  const fast = unary
    ? createFastPath(unary, {
        readMaxBytes: opts.readMaxBytes,
        shutdownSignal: shutdown.signal,
        jsonOptions: { ignoreUnknownFields: false },
        onError: (err, path) => log.error({ err, rpc: path }, "handler failed"),
        // A message that cannot be decoded: invalid_argument from the text interceptor, as on connect-node's path.
        onUndecodable: markUndecodable,
      })
    : undefined;
  const aliases = createAliasMatcher();

  /** Runs the Connect handler for `path`; `json` is a pre-parsed body (REST aliases). */
  const dispatch = (req: NodeReq, res: NodeRes, path: string, json?: JsonValue): boolean => {
    const handler = handlers.get(path);
    if (!handler) return false;
    const values = connectionValues(req.headers, req.socket, identities);
    if (fast?.serve(req, res, path, values, json)) return true;
    // connect-node answers these two with an empty body; every error here is the JSON {code, message}.
    const method = req.method ?? "";
    if (json === undefined && !handler.allowedMethods.includes(method)) {
      methodNotAllowed(res, method, path, handler.allowedMethods);
      return true;
    }
    const type = req.headers["content-type"];
    if (json === undefined && method === "POST" && !handler.supportedContentType(type ?? null)) {
      unsupportedMediaType(res, type, path);
      return true;
    }
    const run = (body?: Screened, encodingHeader?: string) => {
      if (body?.problem) markUndecodable(values, body.problem);
      const uReq = universalRequestFromNodeRequest(req, res, json, values);
      if (body) {
        const bytes = body.body;
        uReq.body = (async function* () {
          if (bytes.length) yield bytes;
        })();
        if (body.problem) {
          uReq.header.delete("content-length"); // the stand-in is shorter
          if (encodingHeader === "content-encoding") uReq.header.delete(encodingHeader); // and not compressed
        }
      }
      handler(uReq)
        .then((uRes) => universalResponseToNodeResponse(uRes, res))
        .catch((reason) => {
          if (ConnectError.from(reason).code !== Code.Aborted) log.error({ err: reason, rpc: path }, "handler failed");
          answerUnsendable(req, res, path); // e.g. a header that is not valid HTTP: this call ends, the process does not
        });
    };
    // One request message: decoded here first, so an undecodable one is invalid_argument (undecodable.ts).
    if (json === undefined && method === "GET") {
      screenGetRequest(handler.method.input, req.url ?? "", opts.readMaxBytes).then(
        (refusal) => (refusal ? jsonError(res, refusal.status, refusal.code, refusal.message) : run()),
        () => run(),
      );
      return true;
    }
    const format = json === undefined && method === "POST" ? bodyFormat(type) : undefined;
    const kind = handler.method.methodKind;
    if (!format || (kind !== "unary" && kind !== "server_streaming")) {
      run();
      return true;
    }
    const encodingValue = req.headers[format.encodingHeader];
    const encoding = typeof encodingValue === "string" ? encodingValue : undefined;
    readAtMost(req, opts.readMaxBytes, (body) => {
      screenRequest(handler.method.input, body, format, encoding, opts.readMaxBytes).then(
        (screened) => run(screened, format.encodingHeader),
        () => run({ body, problem: undefined }),
      );
    });
    return true;
  };

  /** A REST alias: body (or query) + path parameters → the RPC's JSON request. */
  const restAlias = (req: NodeReq, res: NodeRes): boolean => {
    const match = aliases(req.method ?? "", req.url ?? "/");
    if (!match || !handlers.has(match.rpc)) return false;
    const finish = (body: Record<string, unknown>) => {
      req.url = match.rpc;
      (req as { method: string }).method = "POST";
      req.headers["content-type"] = "application/json";
      dispatch(req, res, match.rpc, { ...body, ...match.fields } as JsonValue);
    };
    if (req.method === "GET") {
      finish(queryFields(req.url ?? ""));
      return true;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (c: Buffer) => {
      size += c.length;
      if (size > opts.readMaxBytes) {
        json(res, 413, { code: "resource_exhausted", message: `request body is over ${opts.readMaxBytes} bytes` });
        req.destroy();
      } else chunks.push(c);
    });
    req.on("end", () => {
      if (size > opts.readMaxBytes) return;
      let text: string;
      try {
        text = strictUtf8.decode(Buffer.concat(chunks)).trim();
      } catch {
        return json(res, 400, { code: "invalid_argument", message: "the request body is not valid UTF-8: send JSON encoded as UTF-8" });
      }
      let body: unknown = {};
      try {
        body = text ? JSON.parse(text) : {};
      } catch {
        return json(res, 400, { code: "invalid_argument", message: "the request body is not valid JSON" });
      }
      if (typeof body !== "object" || body === null || Array.isArray(body)) return json(res, 400, { code: "invalid_argument", message: "the request body must be a JSON object" });
      finish(body as Record<string, unknown>);
    });
    return true;
  };

  const hidden = opts.hiddenPrefixes ?? [];
  const isHidden = (path: string) => {
    for (const prefix of hidden) if (path.startsWith(prefix)) return true;
    return false;
  };
  // HTTP/1.1 sockets with a request in flight; idle ones are closed at once when draining
  // (the TLS server's HTTP/1.1 fallback has no closeIdleConnections of its own).
  const busy = new Map<net.Socket, number>();
  const h2Sockets = new WeakSet<net.Socket>();
  const idleH1 = (socket: net.Socket) => !h2Sockets.has(socket) && !busy.has(socket);
  /** Every request: a throw while answering ends that request (internal), never the process. */
  const handle = (req: NodeReq, res: NodeRes) => {
    try {
      route(req, res);
    } catch (err) {
      log.error({ err, url: req.url }, "request failed");
      answerUnsendable(req, res, (req.url ?? "/").split("?", 1)[0]!);
    }
  };
  const route = (req: NodeReq, res: NodeRes) => {
    if (req.httpVersionMajor === 1) {
      const socket = req.socket;
      busy.set(socket, (busy.get(socket) ?? 0) + 1);
      res.once("close", () => {
        const n = (busy.get(socket) ?? 1) - 1;
        if (n > 0) busy.set(socket, n);
        else busy.delete(socket);
        if (draining && n <= 0) socket.destroySoon();
      });
    }
    const url = req.url ?? "/";
    if (url === "/healthz") return json(res, 200, { status: "ok" });
    if (url === "/metrics" && !opts.tls) return serveMetrics(res);
    if (url === "/readyz") {
      void ready().then((ok) => json(res, ok ? 200 : 503, { status: ok ? "ready" : "not ready" }));
      return;
    }
    if (isHidden(url)) return json(res, 404, { code: "not_found", message: `no route for ${url.split("?")[0]}` });
    for (const m of modules) if (m.http?.(req, res)) return;
    if (dispatch(req, res, url.split("?", 1)[0]!)) return;
    if (restAlias(req, res)) return;
    const allowed = [...new Set(aliases.aliasesOf(url).filter((a) => handlers.has(a.rpc)).map((a) => a.method))].sort();
    if (allowed.length && !allowed.includes(req.method ?? "")) return methodNotAllowed(res, req.method ?? "", url.split("?", 1)[0]!, allowed);
    json(res, 404, { code: "not_found", message: `no route for ${req.method} ${url.split("?")[0]}` });
  };

  /**
   * HTTP/2 streams: unary RPCs and server streams go straight to the fast path on the raw stream
   * (no compat request/response objects); Node's compat layer makes them for the rest (takeStreams).
   * A throw ends that stream, never the process.
   */
  const takeStream = (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): boolean => {
    if (!fast) return false;
    try {
      const path = headers[":path"] ?? "/";
      return !isHidden(path) && fast.serveStream(stream, headers, () => connectionValues(headers, stream.session?.socket, identities));
    } catch (err) {
      log.error({ err, url: headers[":path"] }, "request failed");
      if (!stream.destroyed) stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
      return true;
    }
  };

  const h2Settings: http2.ServerOptions = {
    settings: { maxConcurrentStreams: 1000, maxHeaderListSize: 16 * 1024 },
    maxSessionMemory: 32,
    maxSendHeaderBlockLength: 16 * 1024,
  };

  const sockets = new Set<net.Socket>();
  const sessions = new Set<http2.ServerHttp2Session>();
  /** Every open connection (TLS: once the handshake is done), and which of them speak HTTP/2. */
  const track = (s: net.Server | http2.Http2SecureServer) => {
    const add = (socket: net.Socket) => {
      if (socket instanceof TLSSocket && socket.alpnProtocol === "h2") h2Sockets.add(socket);
      sockets.add(socket);
      socket.once("close", () => sockets.delete(socket));
    };
    if (s instanceof net.Server && !("setSecureContext" in s)) s.on("connection", add);
    else s.on("secureConnection", add);
  };
  const manageSession = (session: http2.ServerHttp2Session) => {
    sessions.add(session);
    let open = 0;
    let idle: NodeJS.Timeout | undefined;
    const armIdle = () => (idle = setTimeout(() => session.close(), keep.idleMs).unref());
    armIdle();
    session.on("stream", (stream) => {
      open++;
      clearTimeout(idle);
      stream.once("close", () => --open === 0 && !session.closed && armIdle());
    });
    const age = keep.maxAgeMs * (0.9 + Math.random() * 0.2);
    const ageTimer = setTimeout(() => {
      session.close(); // GOAWAY: running streams finish, new ones go to a new connection
      setTimeout(() => session.destroy(), keep.graceMs).unref();
    }, age).unref();
    // Ping only while streams are open: idle connections are closed by the idle timer, and a ping
    // on an idle one makes nginx drop it from its upstream keepalive cache.
    const ping = setInterval(() => {
      if (session.closed || session.destroyed || open === 0) return;
      session.ping((err) => err && !session.destroyed && session.destroy());
    }, keep.pingMs).unref();
    session.once("close", () => {
      sessions.delete(session);
      clearTimeout(idle);
      clearTimeout(ageTimer);
      clearInterval(ping);
    });
    session.on("error", (err) => log.debug({ err: String(err) }, "http2 session error"));
  };

  const listen = (server: net.Server, port: number, host: string) =>
    new Promise<number>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, host, () => {
        server.off("error", reject);
        const address = server.address();
        resolve(address !== null && typeof address === "object" ? address.port : port);
      });
    });

  function cleartext(handler: (req: NodeReq, res: NodeRes) => void, fastStreams: boolean) {
    const h1 = http.createServer({ maxHeaderSize: 16 * 1024, headersTimeout: 20_000, requestTimeout: 0, keepAliveTimeout: 65_000 }, handler);
    // h1 never listens (the front hands it sockets), and Node starts tracking connections on
    // "listening": without this, headersTimeout is not enforced and closeIdleConnections() is a
    // no-op, so an idle keep-alive client held every shutdown for SHUTDOWN_TIMEOUT_MS (bench/README.md).
    h1.emit("listening");
    const h2 = http2.createServer(h2Settings, handler);
    if (fastStreams && fast) takeStreams(h2, takeStream);
    h2.on("session", manageSession);
    const preface = Buffer.from("PRI * HTTP/2.0");
    // noDelay: sockets handed over by emit("connection") skip http/http2's own TCP_NODELAY, and
    // Nagle + delayed ACK then hold a gRPC response's trailers ~40 ms (bench/README.md, rpc).
    const front = net.createServer({ noDelay: true }, (socket) => {
      socket.once("readable", () => {
        const head: Buffer | null = socket.read(Math.min(preface.length, socket.readableLength)) ?? socket.read();
        if (!head) return socket.destroy();
        socket.unshift(head);
        const isH2 = head.length > 0 && preface.subarray(0, head.length).equals(head.subarray(0, preface.length));
        if (isH2) h2Sockets.add(socket);
        (isH2 ? h2 : h1).emit("connection", socket);
      });
    });
    track(front);
    return { front, h1 };
  }

  const servers: net.Server[] = [];
  const h1Servers: http.Server[] = [];
  let port: number;
  let secure: http2.Http2SecureServer | undefined;
  if (opts.tls) {
    const t = opts.tls;
    const server = (secure = http2.createSecureServer(
      {
        ...h2Settings,
        cert: t.cert,
        key: t.key,
        ...(t.ca ? { ca: t.ca } : {}),
        requestCert: t.clientAuth !== "off",
        rejectUnauthorized: t.clientAuth === "require",
        allowHTTP1: true,
        minVersion: "TLSv1.2",
      },
      handle,
    ));
    if (fast) takeStreams(server, takeStream);
    // HTTP/1.1 keep-alive (nginx's proxy_pass): without this Node never closes an idle one; 65 s
    // outlives the gateway's 60 s, so the gateway closes first and never reuses a closing socket.
    (server as unknown as http.Server).keepAliveTimeout = 65_000;
    server.on("session", manageSession);
    // A connection's client certificate is then fixed for its life (peerOf caches it per socket).
    server.on("secureConnection", (socket: TLSSocket) => socket.disableRenegotiation());
    track(server);
    servers.push(server);
    port = await listen(server, opts.port, opts.host);
  } else {
    const { front, h1 } = cleartext(handle, true);
    servers.push(front);
    h1Servers.push(h1);
    port = await listen(front, opts.port, opts.host);
  }

  let opsPort: number | undefined;
  if (opts.opsPort !== undefined) {
    const opsRouter = createConnectRouter({ interceptors: [errorInterceptor(log), textInterceptor()] });
    healthAndReflection(opsRouter);
    const opsHandlers = new Map(opsRouter.handlers.map((h) => [h.requestPath, h]));
    const { front, h1 } = cleartext((req, res) => {
      if (req.url === "/healthz" || req.url === "/readyz") return handle(req, res);
      if (req.url === "/metrics") return serveMetrics(res);
      // Errors as the JSON {code, message} here too (connect-node answers these with empty bodies).
      const path = (req.url ?? "/").split("?", 1)[0]!;
      const method = req.method ?? "";
      const handler = opsHandlers.get(path);
      if (!handler) return json(res, 404, { code: "not_found", message: `no route for ${method} ${path} on the ops port (health, reflection, /healthz, /readyz, /metrics)` });
      if (!handler.allowedMethods.includes(method)) return methodNotAllowed(res, method, path, handler.allowedMethods);
      if (method === "POST" && !handler.supportedContentType(req.headers["content-type"] ?? null)) return unsupportedMediaType(res, req.headers["content-type"], path);
      handler(universalRequestFromNodeRequest(req, res, undefined, undefined))
        .then((uRes) => universalResponseToNodeResponse(uRes, res))
        .catch((reason) => {
          if (ConnectError.from(reason).code !== Code.Aborted) log.error({ err: reason, rpc: path }, "handler failed");
          answerUnsendable(req, res, path);
        });
    }, false);
    servers.push(front);
    h1Servers.push(h1);
    opsPort = await listen(front, opts.opsPort, opts.host);
  }

  return {
    port,
    opsPort,
    setTls(t) {
      secure?.setSecureContext({ cert: t.cert, key: t.key, ...(t.ca ? { ca: t.ca } : {}), minVersion: "TLSv1.2" });
    },
    async close() {
      draining = true;
      shutdown.abort(); // handlers' signals abort: server streams end with unavailable, clients reconnect elsewhere
      for (const s of servers) s.close();
      for (const s of sessions) s.close();
      for (const s of h1Servers) s.closeIdleConnections();
      const deadline = Date.now() + opts.shutdownTimeoutMs;
      while ((sessions.size > 0 || sockets.size > 0) && Date.now() < deadline) {
        for (const s of h1Servers) s.closeIdleConnections();
        for (const s of sockets) if (idleH1(s) && s.readableLength === 0) s.destroySoon();
        await new Promise((r) => setTimeout(r, 50));
      }
      for (const s of sessions) s.destroy();
      for (const s of sockets) s.destroy();
      streams.close();
      for (const m of modules) await m.close?.();
    },
  };
}

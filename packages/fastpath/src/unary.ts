/**
 * The kit's unary fast path. connect-node runs every call, unary included, through a chain of
 * async iterables, abort signals and web Headers: ~0.29 ms of CPU per gRPC call on this machine,
 * 7× grpc-js (bench/README.md, rpc). Unary calls are nearly all our traffic, so the kit serves them
 * itself: one body read, one decode, the same Connect interceptors and implementations, one write.
 * Server streams (Subscribe, health Watch) over HTTP/2 get the same treatment (end of file).
 * Anything unusual (compression, gRPC-Web, Connect GET, JSON over gRPC, an unknown protocol
 * version, client or bidi streams) still goes to connect-node, the reference for the protocols.
 *
 * `UnaryMethods` records each unary and server-streaming implementation a module registers on its
 * router and calls it through the interceptors; the server (below) and the in-process peer
 * transport (peers.ts) use it.
 */
import http from "node:http";
import http2 from "node:http2";
import type { Readable } from "node:stream";
import { create, fromBinary, fromJson, toBinary, toJsonString, type DescMessage, type DescService, type DescMethod, type DescMethodServerStreaming, type DescMethodUnary, type JsonValue, type MessageShape } from "@bufbuild/protobuf";
import { Code, ConnectError, type ConnectRouter, type ContextValues, type HandlerContext, type Interceptor, type StreamRequest, type StreamResponse, type UnaryRequest, type UnaryResponse } from "@connectrpc/connect";
import { errorToJson } from "@connectrpc/connect/protocol-connect";
import { setTrailerStatus } from "@connectrpc/connect/protocol-grpc";

type NodeReq = http.IncomingMessage | http2.Http2ServerRequest;
type NodeRes = http.ServerResponse | http2.Http2ServerResponse;
type AnyUnary = DescMethodUnary<DescMessage, DescMessage>;
type Impl = (req: unknown, ctx: HandlerContext) => unknown;
type Next = (req: UnaryRequest) => Promise<UnaryResponse>;

const CTX = Symbol("crm.handlerContext");
type Carried = UnaryRequest & { [CTX]?: Context };
type CarriedStream = StreamRequest & { [CTX]?: Context };

/** A unary method with its implementation behind the interceptors. */
export interface UnaryEntry {
  method: AnyUnary;
  call: Next;
}

type AnyServerStreaming = DescMethodServerStreaming<DescMessage, DescMessage>;
type NextStream = (req: StreamRequest) => Promise<StreamResponse>;

/** A server-streaming method with its implementation behind the interceptors. */
export interface StreamEntry {
  method: AnyServerStreaming;
  call: NextStream;
}

/** Request headers read straight from Node's header object (no copy unless changed). */
class NodeHeaders {
  #h: Record<string, string | string[] | undefined>;
  #copied = false;
  constructor(h: Record<string, string | string[] | undefined>) {
    this.#h = h;
  }
  #own() {
    if (!this.#copied) (this.#h = { ...this.#h }), (this.#copied = true);
    return this.#h;
  }
  get(name: string): string | null {
    const v = this.#h[name.toLowerCase()];
    return v === undefined ? null : Array.isArray(v) ? v.join(", ") : v;
  }
  has(name: string) {
    return this.#h[name.toLowerCase()] !== undefined;
  }
  set(name: string, value: string) {
    this.#own()[name.toLowerCase()] = String(value);
  }
  append(name: string, value: string) {
    const prev = this.get(name);
    this.set(name, prev === null ? value : `${prev}, ${value}`);
  }
  delete(name: string) {
    delete this.#own()[name.toLowerCase()];
  }
  getSetCookie(): string[] {
    const v = this.#h["set-cookie"];
    return v === undefined ? [] : Array.isArray(v) ? v : [v];
  }
  *entries(): IterableIterator<[string, string]> {
    for (const k of Object.keys(this.#h).sort()) {
      const v = this.get(k);
      if (!k.startsWith(":") && v !== null) yield [k, v];
    }
  }
  *keys(): IterableIterator<string> {
    for (const [k] of this.entries()) yield k;
  }
  *values(): IterableIterator<string> {
    for (const [, v] of this.entries()) yield v;
  }
  forEach(fn: (value: string, key: string, parent: NodeHeaders) => void, thisArg?: unknown) {
    for (const [k, v] of this.entries()) fn.call(thisArg, v, k, this);
  }
  [Symbol.iterator]() {
    return this.entries();
  }
}

/** HandlerContext with the costly parts (abort signal, response headers) made on first use. */
class Context implements HandlerContext {
  readonly requestMethod = "POST";
  #controller: AbortController | undefined;
  #header: Headers | undefined;
  #trailer: Headers | undefined;
  #deadline: number | undefined;
  #links: (AbortSignal | undefined)[];
  constructor(
    readonly method: DescMethod,
    readonly protocolName: string,
    readonly url: string,
    readonly requestHeader: Headers,
    readonly values: ContextValues,
    timeoutMs: number | undefined,
    links: (AbortSignal | undefined)[],
  ) {
    this.#deadline = timeoutMs === undefined ? undefined : Date.now() + timeoutMs;
    this.#links = links;
  }
  get service() {
    return this.method.parent;
  }
  get responseHeader() {
    return (this.#header ??= new Headers());
  }
  set responseHeader(h: Headers) {
    this.#header = h;
  }
  get responseTrailer() {
    return (this.#trailer ??= new Headers());
  }
  set responseTrailer(h: Headers) {
    this.#trailer = h;
  }
  get headerIfAny() {
    return this.#header;
  }
  get trailerIfAny() {
    return this.#trailer;
  }
  timeoutMs(): number | undefined {
    return this.#deadline === undefined ? undefined : this.#deadline - Date.now();
  }
  get signal(): AbortSignal {
    if (!this.#controller) {
      const c = (this.#controller = new AbortController());
      for (const s of this.#links) {
        if (!s) continue;
        if (s.aborted) c.abort(s.reason);
        else s.addEventListener("abort", () => c.abort(s.reason), { once: true, signal: c.signal });
      }
      const left = this.timeoutMs();
      if (left !== undefined) {
        const t = setTimeout(() => c.abort(new ConnectError("the operation timed out", Code.DeadlineExceeded)), Math.max(0, left));
        c.signal.addEventListener("abort", () => clearTimeout(t), { once: true });
      }
    }
    return this.#controller.signal;
  }
  /** Ends the call: a signal handed out aborts, as connect-node's does when a call completes. */
  done(reason?: unknown) {
    if (this.#controller && !this.#controller.signal.aborted) this.#controller.abort(reason ?? new ConnectError("the call completed", Code.Canceled));
  }
}

/** Records the unary and server-streaming implementations registered on a router and calls them through `interceptors`. */
export class UnaryMethods {
  readonly byPath = new Map<string, UnaryEntry>();
  readonly streamsByPath = new Map<string, StreamEntry>();
  constructor(private readonly interceptors: Interceptor[]) {}

  /** A router that registers on `router` as usual and also records every unary implementation here. */
  recording(router: ConnectRouter): ConnectRouter {
    return {
      get handlers() {
        return router.handlers;
      },
      service: (service, impl, options) => {
        for (const method of service.methods) {
          const fn = (impl as Record<string, unknown>)[method.localName];
          if (typeof fn !== "function") continue;
          if (method.methodKind === "unary") this.add(method as DescMethodUnary, (fn as Impl).bind(impl));
          if (method.methodKind === "server_streaming") this.addServerStream(method as AnyServerStreaming, (fn as Impl).bind(impl));
        }
        return router.service(service, impl, options);
      },
      rpc: (method: DescMethod, impl: unknown, options?: unknown) => {
        if (method.methodKind === "unary") this.add(method as DescMethodUnary, impl as Impl);
        if (method.methodKind === "server_streaming") this.addServerStream(method as AnyServerStreaming, impl as Impl);
        return (router.rpc as (m: DescMethod, i: unknown, o?: unknown) => ConnectRouter)(method, impl, options);
      },
    } as ConnectRouter;
  }

  private add(method: DescMethodUnary, impl: Impl) {
    const m = method as AnyUnary;
    const base: Next = async (req) => {
      const ctx = (req as Carried)[CTX]!;
      const out = await impl(req.message, ctx);
      return new Answer(m, ctx, isMessage(out, m.output) ? out : create(m.output, out as never));
    };
    const call = withInterceptors(this.interceptors, base);
    this.byPath.set(`/${m.parent.typeName}/${m.name}`, { method: m, call });
  }

  private addServerStream(m: AnyServerStreaming, impl: Impl) {
    const base: NextStream = async (req) => {
      const ctx = (req as CarriedStream)[CTX]!;
      let input: unknown;
      for await (const one of req.message) input = one;
      const out = impl(input, ctx) as AsyncIterable<unknown>;
      async function* normalized() {
        for await (const o of out) yield isMessage(o, m.output) ? o : create(m.output, o as never);
      }
      return { stream: true, service: m.parent, method: m, header: ctx.responseHeader, trailer: ctx.responseTrailer, message: normalized() };
    };
    const call = withInterceptors(this.interceptors, base);
    this.streamsByPath.set(`/${m.parent.typeName}/${m.name}`, { method: m, call });
  }

  /** Calls a server-streaming `entry` with its one decoded request message. */
  invokeStream(entry: StreamEntry, ctx: Context, message: MessageShape<DescMessage>): Promise<StreamResponse> {
    const one = (async function* () {
      yield message;
    })();
    return entry.call(serverRequest(entry.method, ctx, true, one) as StreamRequest);
  }

  /** Calls `entry` with a decoded message; the response's headers are the context's (merged when an interceptor replaced them). */
  invoke(entry: UnaryEntry, ctx: Context, message: MessageShape<DescMessage>): Promise<UnaryResponse> {
    return entry.call(serverRequest(entry.method, ctx, false, message) as UnaryRequest);
  }
}

/**
 * A unary implementation's response. Its headers and trailers are the context's, made on first use:
 * most calls set none, and a web Headers object costs more than the rest of the call. They are
 * accessors on the prototype, so a copy must name them: `{ ...res }` would drop them (peers.ts).
 */
class Answer implements UnaryResponse {
  readonly stream = false;
  readonly service: DescService;
  constructor(
    readonly method: AnyUnary,
    readonly ctx: Context,
    public message: MessageShape<DescMessage>,
  ) {
    this.service = method.parent;
  }
  get header() {
    return this.ctx.responseHeader;
  }
  set header(h: Headers) {
    this.ctx.responseHeader = h;
  }
  get trailer() {
    return this.ctx.responseTrailer;
  }
  set trailer(h: Headers) {
    this.ctx.responseTrailer = h;
  }
}

/** A response's headers or trailers, or undefined when nothing made them (none to send). */
function headersOf(res: UnaryResponse, which: "header" | "trailer"): Headers | undefined {
  if (!(res instanceof Answer)) return res[which];
  return which === "header" ? res.ctx.headerIfAny : res.ctx.trailerIfAny;
}

/**
 * The request the interceptors see on the server side, carrying the handler context for the
 * implementation. `signal` is an accessor on the prototype (an AbortController is made only when
 * something asks), so a copy must name it.
 */
class ServerRequest {
  readonly requestMethod = "POST";
  readonly service: DescService;
  readonly url: string;
  readonly header: Headers;
  readonly contextValues: ContextValues;
  [CTX]: Context;
  constructor(
    readonly method: DescMethod,
    ctx: Context,
    readonly stream: boolean,
    readonly message: unknown,
  ) {
    this.service = method.parent;
    this.url = ctx.url;
    this.header = ctx.requestHeader;
    this.contextValues = ctx.values;
    this[CTX] = ctx;
  }
  get signal() {
    return this[CTX].signal;
  }
}

function serverRequest(method: DescMethod, ctx: Context, stream: boolean, message: unknown): Carried | CarriedStream {
  return new ServerRequest(method, ctx, stream, message) as unknown as Carried | CarriedStream;
}

/** Wraps `base` in `interceptors`, the first outermost (Connect's order). */
export function withInterceptors<T>(interceptors: Interceptor[], base: T): T {
  return interceptors.reduceRight<T>((next, i) => i(next as never) as T, base);
}

export const newContext = (...args: ConstructorParameters<typeof Context>) => new Context(...args);
export type { Context as UnaryContext };

function isMessage(m: unknown, schema: DescMessage): m is MessageShape<DescMessage> {
  return typeof m === "object" && m !== null && (m as { $typeName?: string }).$typeName === schema.typeName;
}

// ---------------------------------------------------------------------------------------------
// The HTTP side: gRPC (application/grpc[+proto]) and Connect unary (application/proto, application/json).

type Protocol = "grpc" | "connect-proto" | "connect-json";
type Headers_ = http2.IncomingHttpHeaders;

/** Which protocol the fast path serves this request with, or undefined to leave it to connect-node. */
function protocolOf(method: string | undefined, h: Headers_, http2: boolean): Protocol | undefined {
  if (method !== "POST") return undefined;
  const type = h["content-type"];
  if (type === "application/grpc" || type === "application/grpc+proto") {
    const enc = h["grpc-encoding"];
    return http2 && (enc === undefined || enc === "identity") ? "grpc" : undefined;
  }
  if (h["content-encoding"] !== undefined && h["content-encoding"] !== "identity") return undefined;
  const version = h["connect-protocol-version"];
  if (version !== undefined && version !== "1") return undefined;
  if (type === "application/proto") return "connect-proto";
  if (type === "application/json" || type === "application/json; charset=utf-8" || type === "application/json;charset=utf-8") return "connect-json";
  return undefined;
}

/** grpc-timeout ("5S", "100m"…) or connect-timeout-ms, in milliseconds. */
function timeoutOf(h: Headers_, protocol: Protocol): number | undefined {
  if (protocol === "grpc") {
    const t = h["grpc-timeout"];
    if (typeof t !== "string") return undefined;
    const m = /^(\d{1,8})([HMSmun])$/.exec(t);
    if (!m) return undefined;
    const unit = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 0.001, n: 0.000001 }[m[2] as "H"];
    return Number(m[1]) * unit;
  }
  const t = h["connect-timeout-ms"];
  return typeof t === "string" && /^\d{1,10}$/.test(t) ? Number(t) : undefined;
}

/** Connect's HTTP status for each code (connect protocol spec). */
const httpStatus: Partial<Record<Code, number>> = {
  [Code.Canceled]: 499,
  [Code.Unknown]: 500,
  [Code.InvalidArgument]: 400,
  [Code.DeadlineExceeded]: 504,
  [Code.NotFound]: 404,
  [Code.AlreadyExists]: 409,
  [Code.PermissionDenied]: 403,
  [Code.ResourceExhausted]: 429,
  [Code.FailedPrecondition]: 400,
  [Code.Aborted]: 409,
  [Code.OutOfRange]: 400,
  [Code.Unimplemented]: 501,
  [Code.Internal]: 500,
  [Code.Unavailable]: 503,
  [Code.DataLoss]: 500,
  [Code.Unauthenticated]: 401,
};

type OutHeaders = Record<string, string | string[]>;

/** JSON bodies must be UTF-8: invalid bytes are refused, not silently turned into U+FFFD. */
export const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/** Throws (as Node would when sending) if a header name or value is not valid HTTP. */
function validateHeaders(h: OutHeaders) {
  for (const k in h) {
    http.validateHeaderName(k);
    const v = h[k]!;
    if (Array.isArray(v)) for (const one of v) http.validateHeaderValue(k, one);
    else http.validateHeaderValue(k, v);
  }
}

/** Trailers already validated; if sending still fails, the stream is reset instead of the process ending. */
function sendTrailersSafely(stream: http2.ServerHttp2Stream, trailers: OutHeaders) {
  try {
    stream.sendTrailers(trailers);
  } catch {
    stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
  }
}

/**
 * An error's gRPC trailers, as connect-node writes them: grpc-status, grpc-message and, when the
 * error has details (e.g. google.rpc.BadRequest), grpc-status-details-bin.
 */
function grpcErrorTrailers(err: ConnectError, extra?: Headers): OutHeaders {
  const out: OutHeaders = {};
  putHeaders(out, extra);
  putHeaders(out, setTrailerStatus(new Headers(), err));
  return out;
}

/** A Connect error body as connect-node writes it: {code, message, details: [{type, value, debug}]}. */
const connectErrorJson = (err: ConnectError) => errorToJson(err, undefined);

/** The answer when a call's own answer cannot be sent (e.g. a handler set a header that is not valid HTTP). */
const unsendable = (path: string) => new ConnectError(`internal error: the answer of ${path} could not be sent; it was logged`, Code.Internal);

function putHeaders(out: OutHeaders, h: Headers | undefined, prefix = "") {
  if (!h) return;
  h.forEach((value, key) => {
    if (key === "set-cookie") return;
    out[prefix + key] = value;
  });
  const cookies = h.getSetCookie();
  if (cookies.length) out[`${prefix}set-cookie`] = cookies;
}

export interface FastPathOptions {
  readMaxBytes: number;
  shutdownSignal: AbortSignal;
  jsonOptions?: { ignoreUnknownFields?: boolean };
  /** Called for a failure after the response started (logged by the server). */
  onError(err: unknown, path: string): void;
}

/** One HTTP exchange as the fast path sees it: a compat request/response pair or a raw HTTP/2 stream. */
interface Exchange {
  headers: Headers_;
  url: string;
  /** Reads the whole body; `undefined` when it is over `max` bytes (the rest is discarded). */
  readBody(max: number, done: (body: Buffer | undefined, size: number) => void): void;
  onClose(fn: () => void): void;
  headersSent(): boolean;
  respond(status: number, headers: OutHeaders, body: Uint8Array | undefined, trailers?: OutHeaders): void;
  destroy(): void;
}

function readInto(source: Readable, max: number, done: (body: Buffer | undefined, size: number) => void) {
  const chunks: Buffer[] = [];
  let size = 0;
  source.on("data", (chunk: Buffer) => {
    size += chunk.length;
    if (size <= max) chunks.push(chunk);
  });
  source.once("end", () => done(size > max ? undefined : chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size), size));
}

/** A compat request/response pair as an Exchange. */
class CompatExchange implements Exchange {
  readonly headers: Headers_;
  readonly url: string;
  constructor(
    private readonly req: NodeReq,
    private readonly res: NodeRes,
  ) {
    this.headers = req.headers as Headers_;
    this.url = req.url ?? "/";
  }
  readBody(max: number, done: (body: Buffer | undefined, size: number) => void) {
    readInto(this.req, max, done);
  }
  onClose(fn: () => void) {
    this.res.once("close", fn);
  }
  headersSent() {
    return this.res.headersSent;
  }
  respond(status: number, headers: OutHeaders, body: Uint8Array | undefined, trailers?: OutHeaders) {
    const res = this.res as http2.Http2ServerResponse;
    if (trailers) res.addTrailers(trailers as http2.OutgoingHttpHeaders); // validated here, before anything is sent
    res.writeHead(status, headers as http2.OutgoingHttpHeaders);
    if (body) res.end(body);
    else res.end();
  }
  destroy() {
    this.res.destroy();
  }
}

/** A raw HTTP/2 stream as an Exchange (a class: one object per call instead of seven closures). */
class StreamExchange implements Exchange {
  readonly url: string;
  constructor(
    private readonly stream: http2.ServerHttp2Stream,
    readonly headers: Headers_,
  ) {
    this.url = headers[":path"] ?? "/";
  }
  readBody(max: number, done: (body: Buffer | undefined, size: number) => void) {
    readInto(this.stream, max, done);
  }
  onClose(fn: () => void) {
    this.stream.once("close", fn);
  }
  headersSent() {
    return this.stream.headersSent;
  }
  respond(status: number, out: OutHeaders, body: Uint8Array | undefined, trailers?: OutHeaders) {
    const stream = this.stream;
    if (stream.destroyed || stream.closed) return; // the client went away
    out[":status"] = String(status);
    if (trailers) validateHeaders(trailers); // sendTrailers runs in an event listener: a throw there would end the process
    stream.respond(out, trailers ? { waitForTrailers: true } : undefined);
    if (trailers) stream.once("wantTrailers", () => sendTrailersSafely(stream, trailers));
    stream.end(body);
  }
  destroy() {
    this.stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
  }
}

/**
 * The fast path's two entries: `serve` for a compat request/response (HTTP/1.1 and the fallback
 * route), `serveStream` for a raw HTTP/2 stream before Node builds compat objects for it. Each
 * returns false, having read nothing, when connect-node must take the request.
 */
export function createFastPath(methods: UnaryMethods, opts: FastPathOptions) {
  const jsonRead = { ignoreUnknownFields: opts.jsonOptions?.ignoreUnknownFields ?? false };
  const links = [opts.shutdownSignal]; // what aborts every call's signal (read only)

  function run(entry: UnaryEntry, protocol: Protocol, ex: Exchange, values: ContextValues, json?: JsonValue) {
    const ctx = newContext(entry.method, protocol === "grpc" ? "grpc" : "connect", ex.url, new NodeHeaders(ex.headers) as unknown as Headers, values, timeoutOf(ex.headers, protocol), links);
    let finished = false;
    // A client that goes away before the answer aborts the handler's signal.
    ex.onClose(() => {
      if (!finished) ctx.done(new ConnectError("the client closed the call", Code.Canceled));
    });
    const grpcType = ex.headers["content-type"] as string;

    const path = `/${entry.method.parent.typeName}/${entry.method.name}`;
    /** Sends `e` with the handler's headers (`withHandlerHeaders`) or only what the kit made. */
    const sendError = (e: ConnectError, withHandlerHeaders: boolean) => {
      const handlerHeader = withHandlerHeaders ? ctx.headerIfAny : undefined;
      if (protocol === "grpc") {
        const head: OutHeaders = { "content-type": grpcType };
        putHeaders(head, handlerHeader);
        return ex.respond(200, head, undefined, grpcErrorTrailers(e));
      }
      const body = Buffer.from(JSON.stringify(connectErrorJson(e)));
      const head: OutHeaders = { "content-type": "application/json" };
      putHeaders(head, handlerHeader);
      putHeaders(head, e.metadata);
      if (withHandlerHeaders) putHeaders(head, ctx.trailerIfAny, "trailer-");
      head["content-length"] = String(body.length);
      ex.respond(httpStatus[e.code] ?? 500, head, body);
    };
    /** A throw while answering ends this call (internal, or a reset if the answer had started), never the process. */
    const lastResort = (err: unknown) => {
      opts.onError(err, path);
      if (ex.headersSent()) return ex.destroy();
      try {
        sendError(unsendable(path), false);
      } catch {
        ex.destroy();
      }
    };
    const fail = (err: unknown) => {
      finished = true;
      ctx.done();
      const e = ConnectError.from(err);
      if (ex.headersSent()) {
        opts.onError(e, path);
        ex.destroy();
        return;
      }
      try {
        sendError(e, true);
      } catch (sendErr) {
        lastResort(sendErr);
      }
    };

    const call = (input: MessageShape<DescMessage>) => {
      methods.invoke(entry, ctx, input).then((out) => {
        try {
          answer(out);
        } catch (err) {
          lastResort(err);
        }
      }, fail);
    };
    const answer = (out: UnaryResponse) => {
      finished = true;
      ctx.done();
      const head: OutHeaders = {};
      putHeaders(head, headersOf(out, "header"));
      if (protocol === "grpc") {
        const frame = envelope(0, toBinary(entry.method.output, out.message));
        head["content-type"] = grpcType;
        const trailers: OutHeaders = {};
        putHeaders(trailers, headersOf(out, "trailer"));
        trailers["grpc-status"] = "0";
        return ex.respond(200, head, frame, trailers);
      }
      const body = protocol === "connect-proto" ? toBinary(entry.method.output, out.message) : Buffer.from(toJsonString(entry.method.output, out.message));
      head["content-type"] = protocol === "connect-proto" ? "application/proto" : "application/json";
      putHeaders(head, headersOf(out, "trailer"), "trailer-");
      head["content-length"] = String(body.length);
      ex.respond(200, head, body);
    };

    const decode = (body: Buffer | undefined, size: number) => {
      if (body === undefined) return fail(new ConnectError(`message size ${size} is larger than configured readMaxBytes ${opts.readMaxBytes}`, Code.ResourceExhausted));
      try {
        if (protocol === "connect-json") {
          let parsed: JsonValue;
          let text: string;
          try {
            text = strictUtf8.decode(body);
          } catch {
            throw new ConnectError("cannot decode the request: the JSON is not valid UTF-8: send it encoded as UTF-8", Code.InvalidArgument); // as undecodable.ts says on connect-node's path
          }
          try {
            parsed = body.length ? (JSON.parse(text) as JsonValue) : {};
          } catch (err) {
            throw new ConnectError(`cannot decode the request as JSON: ${(err as Error).message}`, Code.InvalidArgument);
          }
          return call(fromJson(entry.method.input, parsed, jsonRead));
        }
        if (protocol === "connect-proto") return call(fromBinary(entry.method.input, body));
        // gRPC: exactly one uncompressed length-prefixed message.
        if (body.length < 5 || body[0] !== 0 || 5 + body.readUInt32BE(1) !== body.length) {
          throw new ConnectError(body.length >= 5 && body[0]! & 1 ? "compressed message without grpc-encoding" : "a unary call needs exactly one message", Code.InvalidArgument);
        }
        return call(fromBinary(entry.method.input, body.subarray(5)));
      } catch (err) {
        fail(err instanceof ConnectError ? err : new ConnectError(`cannot decode the request: ${(err as Error).message}`, Code.InvalidArgument));
      }
    };

    if (json === undefined) return ex.readBody(opts.readMaxBytes, decode);
    try {
      call(fromJson(entry.method.input, json, jsonRead));
    } catch (err) {
      fail(new ConnectError(`invalid request: ${(err as Error).message}`, Code.InvalidArgument));
    }
  }

  return {
    /** A compat request (HTTP/1.1, or HTTP/2 that came through Node's compat layer); `json` is a pre-parsed body (REST aliases). */
    serve(req: NodeReq, res: NodeRes, path: string, values: ContextValues, json?: JsonValue): boolean {
      const entry = methods.byPath.get(path);
      if (!entry) return false;
      const protocol = json !== undefined ? "connect-json" : protocolOf(req.method, req.headers as Headers_, req.httpVersionMajor === 2);
      if (!protocol) return false;
      run(entry, protocol, new CompatExchange(req, res), values, json);
      return true;
    },
    /** A raw HTTP/2 stream; `values(stream)` makes the context values (peer identity, client address) only when the path is taken. */
    serveStream(stream: http2.ServerHttp2Stream, headers: Headers_, values: () => ContextValues): boolean {
      const path = headers[":path"];
      const streaming = path === undefined ? undefined : methods.streamsByPath.get(path);
      if (streaming) {
        const protocol = streamProtocolOf(headers);
        if (!protocol) return false;
        serverStream(methods, streaming, protocol, stream, headers, values(), opts, jsonRead);
        return true;
      }
      const entry = path === undefined ? undefined : methods.byPath.get(path);
      if (!entry) return false;
      const protocol = protocolOf(headers[":method"], headers, true);
      if (!protocol) return false;
      run(entry, protocol, new StreamExchange(stream, headers), values());
      return true;
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Server streams (e.g. ChatService/Subscribe) on raw HTTP/2 streams: gRPC and Connect streaming.
// connect-node runs each through a dozen async-generator stages per message; here a message is
// encoded and written, waiting for "drain" when the client reads slowly.
//
// One message object yielded to many streams (a chat message fanned out to its subscribers) is
// encoded once per wire format: the frames are kept by object identity while the object lives
// (a yielded message must not be changed afterwards; none of ours is).
const binaryFrames = new WeakMap<object, Buffer>();
const jsonFrames = new WeakMap<object, Buffer>();

function frameOf(schema: DescMessage, message: MessageShape<DescMessage>, json: boolean): Buffer {
  const cache = json ? jsonFrames : binaryFrames;
  let frame = cache.get(message);
  if (!frame) {
    frame = envelope(0, json ? Buffer.from(toJsonString(schema, message)) : toBinary(schema, message));
    cache.set(message, frame);
  }
  return frame;
}

type StreamProtocol = "grpc" | "connect-proto" | "connect-json";

function streamProtocolOf(h: Headers_): StreamProtocol | undefined {
  if (h[":method"] !== "POST") return undefined;
  const type = h["content-type"];
  if (type === "application/grpc" || type === "application/grpc+proto") {
    const enc = h["grpc-encoding"];
    return enc === undefined || enc === "identity" ? "grpc" : undefined;
  }
  const enc = h["connect-content-encoding"];
  if (enc !== undefined && enc !== "identity") return undefined;
  const version = h["connect-protocol-version"];
  if (version !== undefined && version !== "1") return undefined;
  if (type === "application/connect+proto") return "connect-proto";
  if (type === "application/connect+json") return "connect-json";
  return undefined;
}

/** A gRPC / Connect-streaming length-prefixed message: flags byte, 4-byte length, bytes. */
export const envelope = (flags: number, bytes: Uint8Array) => {
  const frame = Buffer.allocUnsafe(5 + bytes.length);
  frame[0] = flags;
  frame.writeUInt32BE(bytes.length, 1);
  frame.set(bytes, 5);
  return frame;
};

/** Connect's end-of-stream message: trailers as metadata, and the error if the stream failed. */
function endStream(trailer: Headers | undefined, err: ConnectError | undefined): Buffer {
  const metadata: Record<string, string[]> = {};
  const add = (h: Headers | undefined) => h?.forEach((v, k) => (metadata[k] ??= []).push(v));
  add(trailer);
  add(err?.metadata);
  const body: Record<string, unknown> = {};
  if (err) body.error = connectErrorJson(err);
  if (Object.keys(metadata).length) body.metadata = metadata;
  return envelope(0b10, Buffer.from(JSON.stringify(body)));
}

function serverStream(methods: UnaryMethods, entry: StreamEntry, protocol: StreamProtocol, stream: http2.ServerHttp2Stream, headers: Headers_, values: ContextValues, opts: FastPathOptions, jsonRead: { ignoreUnknownFields: boolean }) {
  const ctx = newContext(entry.method, protocol === "grpc" ? "grpc" : "connect", headers[":path"] ?? "/", new NodeHeaders(headers) as unknown as Headers, values, timeoutOf(headers, protocol === "grpc" ? "grpc" : "connect-json"), [opts.shutdownSignal]);
  const contentType = headers["content-type"] as string;
  let closed = false;
  stream.once("close", () => {
    closed = true;
    ctx.done(new ConnectError("the client closed the call", Code.Canceled));
  });
  let started = false;
  const path = headers[":path"] ?? "/";
  const start = (header: Headers | undefined) => {
    if (started || closed || stream.destroyed) return;
    const head: OutHeaders = {};
    putHeaders(head, header);
    head["content-type"] = contentType;
    stream.respond({ ...head, ":status": 200 }, protocol === "grpc" ? { waitForTrailers: true } : undefined); // throws before sending on a bad header
    started = true;
  };
  /** Ends the stream; a throw while doing so (a header that is not valid HTTP) ends this stream, never the process. */
  const finish = (trailer: Headers | undefined, err: ConnectError | undefined) => {
    ctx.done();
    if (closed || stream.destroyed) return;
    try {
      try {
        start(ctx.headerIfAny);
      } catch (e) {
        opts.onError(e, path);
        start(undefined);
      }
      if (protocol === "grpc") {
        let trailers: OutHeaders;
        try {
          if (err) trailers = grpcErrorTrailers(err, trailer);
          else putHeaders((trailers = {}), trailer), (trailers["grpc-status"] = "0");
          validateHeaders(trailers);
        } catch (e) {
          opts.onError(e, path);
          trailers = grpcErrorTrailers(unsendable(path));
        }
        stream.once("wantTrailers", () => sendTrailersSafely(stream, trailers));
        stream.end();
        return;
      }
      stream.end(endStream(trailer, err));
    } catch (e) {
      opts.onError(e, path);
      stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
    }
  };
  const writable = () =>
    new Promise<void>((resolve) => {
      const go = () => (stream.off("drain", go), stream.off("close", go), resolve());
      stream.once("drain", go);
      stream.once("close", go);
    });

  readInto(stream, opts.readMaxBytes, (body, size) => {
    void (async () => {
      let it: AsyncIterator<MessageShape<DescMessage>> | undefined;
      try {
        if (body === undefined) throw new ConnectError(`message size ${size} is larger than configured readMaxBytes ${opts.readMaxBytes}`, Code.ResourceExhausted);
        if (body.length < 5 || body[0] !== 0 || 5 + body.readUInt32BE(1) !== body.length) throw new ConnectError("a server-streaming call needs exactly one uncompressed request message", Code.InvalidArgument);
        const bytes = body.subarray(5);
        let input: MessageShape<DescMessage>;
        try {
          input = protocol === "connect-json" ? fromJson(entry.method.input, JSON.parse(bytes.toString("utf8")) as JsonValue, jsonRead) : fromBinary(entry.method.input, bytes);
        } catch (err) {
          throw new ConnectError(`cannot decode the request: ${(err as Error).message}`, Code.InvalidArgument);
        }
        const res = await methods.invokeStream(entry, ctx, input);
        it = res.message[Symbol.asyncIterator]() as AsyncIterator<MessageShape<DescMessage>>;
        for (;;) {
          const r = await it.next();
          if (r.done || closed) break;
          start(res.header);
          if (!stream.write(frameOf(entry.method.output, r.value, protocol === "connect-json"))) await writable();
        }
        finish(res.trailer, undefined);
      } catch (err) {
        finish(ctx.trailerIfAny, ConnectError.from(err));
      } finally {
        if (closed) await it?.return?.().catch(() => {});
      }
    })();
  });
}

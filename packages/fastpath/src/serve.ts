/**
 * The fast path's server side. connect-node runs every call, unary included, through a chain of
 * async iterables, abort signals and web Headers: ~0.29 ms of CPU per gRPC call on this machine,
 * 7× grpc-js (bench/README.md, rpc). Unary calls are nearly all our traffic, so they are served
 * here: one body read, one decode, the same Connect interceptors and implementations, one write.
 * Server streams over HTTP/2 get the same treatment (streams.ts). Anything unusual (compression,
 * gRPC-Web, Connect GET, JSON over gRPC, an unknown protocol version, client or bidi streams)
 * still goes to connect-node, the reference for the protocols: each entry returns false, having
 * read nothing, and the caller hands the request to connect-node.
 */
import type http from "node:http";
import http2 from "node:http2";
import { create, fromBinary, fromJson, toBinary, toJsonString, type DescMessage, type JsonValue, type MessageShape } from "@bufbuild/protobuf";
import { Code, ConnectError, type ContextValues, type UnaryResponse } from "@connectrpc/connect";
import { CallContext, headersOf, type UnaryEntry, type UnaryMethods } from "./methods.js";
import { serverStream, streamProtocolOf } from "./streams.js";
import {
  connectErrorJson,
  decodeProblem,
  envelopeError,
  envelopeOf,
  grpcErrorTrailers,
  httpStatus,
  NodeHeaders,
  putHeaders,
  readInto,
  sendTrailersSafely,
  timeoutOf,
  tooLarge,
  unsendable,
  validateHeaders,
  type FastPathOptions,
  type OutHeaders,
  type Protocol,
} from "./wire.js";

export type { FastPathOptions } from "./wire.js";

type NodeReq = http.IncomingMessage | http2.Http2ServerRequest;
type NodeRes = http.ServerResponse | http2.Http2ServerResponse;

/** Which protocol the fast path serves this request with, or undefined to leave it to connect-node. */
function protocolOf(method: string | undefined, h: http.IncomingHttpHeaders, http2: boolean): Protocol | undefined {
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

/** One HTTP exchange as the fast path sees it: a compat request/response pair or a raw HTTP/2 stream. */
interface Exchange {
  readonly headers: http.IncomingHttpHeaders;
  readonly url: string;
  /** Reads the whole body; `undefined` when it is over `max` bytes (the rest is discarded); `size` is what arrived. */
  readBody(max: number, done: (body: Buffer | undefined, size: number) => void): void;
  onClose(fn: () => void): void;
  headersSent(): boolean;
  respond(status: number, headers: OutHeaders, body: Uint8Array | undefined, trailers?: OutHeaders): void;
  destroy(): void;
}

/** A compat request/response pair as an Exchange. */
class CompatExchange implements Exchange {
  readonly headers: http.IncomingHttpHeaders;
  readonly url: string;
  constructor(
    private readonly req: NodeReq,
    private readonly res: NodeRes,
  ) {
    this.headers = req.headers;
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
    const res = this.res;
    // Trailers first: they are validated here, before anything is sent.
    if (res instanceof http2.Http2ServerResponse) {
      if (trailers) res.addTrailers(trailers);
      res.writeHead(status, headers);
    } else {
      if (trailers) res.addTrailers(trailers);
      res.writeHead(status, headers);
    }
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
    readonly headers: http2.IncomingHttpHeaders,
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
 * A stream the client resets (any code but CANCEL) emits "error"; the fast path learns of it from
 * "close" (the call's signal aborts), and an "error" without a listener would end the process.
 */
const ignore = () => {};

/** The fast path's two entries: `serve` for a compat request/response, `serveStream` for a raw HTTP/2 stream. */
export interface FastPath {
  /** A compat request (HTTP/1.1, or HTTP/2 that came through Node's compat layer); `json` is a pre-parsed body (REST aliases). */
  serve(req: NodeReq, res: NodeRes, path: string, values: ContextValues, json?: JsonValue): boolean;
  /** A raw HTTP/2 stream; `values()` makes the context values (peer identity, client address) only when the path is taken. */
  serveStream(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, values: () => ContextValues): boolean;
}

/**
 * The fast path over `methods`: `serve` for a compat request/response (HTTP/1.1 and the fallback
 * route), `serveStream` for a raw HTTP/2 stream before Node builds compat objects for it. Each
 * returns false, having read nothing, when connect-node must take the request.
 */
export function createFastPath(methods: UnaryMethods, opts: FastPathOptions): FastPath {
  const jsonRead = { ignoreUnknownFields: opts.jsonOptions?.ignoreUnknownFields ?? false };
  const links = [opts.shutdownSignal]; // what aborts every call's signal (read only)

  function run(entry: UnaryEntry, protocol: Protocol, ex: Exchange, values: ContextValues, json?: JsonValue) {
    const timeout = timeoutOf(ex.headers, protocol);
    const ctx = new CallContext(entry.method, protocol === "grpc" ? "grpc" : "connect", ex.url, new NodeHeaders(ex.headers), values, timeout.timeoutMs, links);
    let finished = false;
    // A client that goes away before the answer aborts the handler's signal.
    ex.onClose(() => {
      if (!finished) ctx.done(new ConnectError("the client closed the call", Code.Canceled));
    });
    const grpcType = ex.headers["content-type"] ?? "application/grpc";

    const path = `/${entry.method.parent.typeName}/${entry.method.name}`;
    /** Sends `e` with the handler's headers and trailers (`withHandlerHeaders`) or only what the kit made. */
    const sendError = (e: ConnectError, withHandlerHeaders: boolean) => {
      const handlerHeader = withHandlerHeaders ? ctx.headerIfAny : undefined;
      const handlerTrailer = withHandlerHeaders ? ctx.trailerIfAny : undefined;
      if (protocol === "grpc") {
        const head: OutHeaders = { "content-type": grpcType };
        putHeaders(head, handlerHeader);
        return ex.respond(200, head, undefined, grpcErrorTrailers(e, handlerTrailer));
      }
      const body = Buffer.from(JSON.stringify(connectErrorJson(e)));
      const head: OutHeaders = { "content-type": "application/json" };
      putHeaders(head, handlerHeader);
      putHeaders(head, e.metadata);
      putHeaders(head, handlerTrailer, "trailer-");
      head["content-length"] = String(body.length);
      ex.respond(httpStatus(e.code), head, body);
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

    const answer = (out: UnaryResponse) => {
      finished = true;
      ctx.done();
      const head: OutHeaders = {};
      putHeaders(head, headersOf(out, "header"));
      if (protocol === "grpc") {
        const frame = envelopeOf(toBinary(entry.method.output, out.message));
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
    const call = (input: MessageShape<DescMessage>) => {
      methods.invoke(entry, ctx, input).then((out) => {
        try {
          answer(out);
        } catch (err) {
          lastResort(err);
        }
      }, fail);
    };
    /** A message that cannot be decoded goes through the interceptors marked (onUndecodable), or fails here. */
    const undecodable = (problem: string) => {
      if (!opts.onUndecodable) return fail(new ConnectError(`cannot decode the request: ${problem}`, Code.InvalidArgument));
      opts.onUndecodable(values, problem);
      call(create(entry.method.input));
    };

    const decode = (body: Buffer | undefined, size: number) => {
      if (body === undefined) return fail(tooLarge(size, opts.readMaxBytes));
      if (timeout.error) return fail(timeout.error);
      let bytes: Uint8Array = body;
      if (protocol === "grpc") {
        // Exactly one uncompressed length-prefixed message, as connect-node requires.
        const refused = envelopeError(body, "unary");
        if (refused) return fail(refused);
        bytes = body.subarray(5);
      }
      const problem = decodeProblem(entry.method.input, bytes, protocol === "connect-json", jsonRead);
      if (typeof problem === "string") return undecodable(problem);
      call(problem.message);
    };

    if (json === undefined) return ex.readBody(opts.readMaxBytes, decode);
    if (timeout.error) return fail(timeout.error);
    let input: MessageShape<DescMessage>;
    try {
      input = fromJson(entry.method.input, json, jsonRead);
    } catch (err) {
      return fail(new ConnectError(`invalid request: ${err instanceof Error ? err.message : String(err)}`, Code.InvalidArgument));
    }
    call(input);
  }

  return {
    serve(req, res, path, values, json) {
      const entry = methods.byPath.get(path);
      if (!entry) return false;
      const protocol = json !== undefined ? "connect-json" : protocolOf(req.method, req.headers, req.httpVersionMajor === 2);
      if (!protocol) return false;
      run(entry, protocol, new CompatExchange(req, res), values, json);
      return true;
    },
    serveStream(stream, headers, values) {
      const path = headers[":path"];
      if (path === undefined) return false;
      const streaming = methods.streamsByPath.get(path);
      if (streaming) {
        const protocol = streamProtocolOf(headers);
        if (!protocol) return false;
        stream.on("error", ignore);
        serverStream(methods, streaming, protocol, stream, headers, values(), opts, jsonRead);
        return true;
      }
      const entry = methods.byPath.get(path);
      if (!entry) return false;
      const protocol = protocolOf(headers[":method"], headers, true);
      if (!protocol) return false;
      stream.on("error", ignore);
      run(entry, protocol, new StreamExchange(stream, headers), values());
      return true;
    },
  };
}

// Node's compat layer, for the streams the fast path declines.
type StreamListener = (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, flags: number, rawHeaders: string[]) => void;

/**
 * Gives `take` each HTTP/2 stream of `server` before Node's compatibility layer sees it; a stream
 * `take` declines (returns false) goes on to Node's layer, which emits "request" as usual.
 *
 * `server` must have been made with a request listener: Node then listens for "stream" with its
 * compat layer, and that listener is the one called here (with the server as `this`, as Node's
 * event emitter calls it). Returns false, changing nothing, when the server does not have exactly
 * that one "stream" listener (a Node that wires its compat layer otherwise): every request then
 * comes through "request", where the fast path's `serve` takes it.
 */
export function takeStreams(server: http2.Http2Server | http2.Http2SecureServer, take: (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => boolean): boolean {
  const own = server.listeners("stream");
  const compat = own[0];
  if (own.length !== 1 || compat === undefined || server.listenerCount("request") === 0) return false;
  server.removeAllListeners("stream"); // that one listener
  const onStream: StreamListener = (stream, headers, flags, rawHeaders) => {
    if (!take(stream, headers)) Reflect.apply(compat, server, [stream, headers, flags, rawHeaders]);
  };
  server.on("stream", onStream);
  return true;
}

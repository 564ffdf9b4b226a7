/**
 * What the fast path writes and reads on the wire, in the words connect-node uses: headers,
 * envelopes, timeouts, error encodings and the messages of protocol errors. Where connect
 * exports the piece (error JSON, gRPC trailer status, timeouts), it is connect's own code.
 */
import http from "node:http";
import http2 from "node:http2";
import type { Readable } from "node:stream";
import { fromBinary, fromJson, type DescMessage, type JsonObject, type JsonValue, type MessageShape } from "@bufbuild/protobuf";
import { Code, ConnectError, type ContextValues } from "@connectrpc/connect";
import { endStreamToJson, errorToJson, parseTimeout as parseConnectTimeout } from "@connectrpc/connect/protocol-connect";
import { parseTimeout as parseGrpcTimeout, setTrailerStatus } from "@connectrpc/connect/protocol-grpc";

/** The protocols the fast path speaks for unary calls. */
export type Protocol = "grpc" | "connect-proto" | "connect-json";

export interface FastPathOptions {
  readMaxBytes: number;
  shutdownSignal: AbortSignal;
  jsonOptions?: { ignoreUnknownFields?: boolean };
  /** Called for a failure after the response started, and for an answer that could not be sent (the server logs it). */
  onError(err: unknown, path: string): void;
  /**
   * A request message that cannot be decoded: `problem` says why. The hook marks `values`, and
   * the call then runs with an empty message, so the interceptors answer invalid_argument as they
   * do on connect-node's path (the kit's text interceptor). Without it the fast path answers
   * invalid_argument itself.
   */
  onUndecodable?(values: ContextValues, problem: string): void;
}

/** Headers as Node sends them. */
export type OutHeaders = Record<string, string | string[]>;

/** Request headers read straight from Node's header object (no copy unless changed): a web Headers to the handlers. */
export class NodeHeaders implements Headers {
  #h: http.IncomingHttpHeaders;
  #copied = false;
  constructor(h: http.IncomingHttpHeaders) {
    this.#h = h;
  }
  #own() {
    if (!this.#copied) {
      this.#h = { ...this.#h };
      this.#copied = true;
    }
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
  *entries(): Generator<[string, string], undefined, undefined> {
    for (const k of Object.keys(this.#h).sort()) {
      const v = this.get(k);
      if (!k.startsWith(":") && v !== null) yield [k, v];
    }
  }
  *keys(): Generator<string, undefined, undefined> {
    for (const [k] of this.entries()) yield k;
  }
  *values(): Generator<string, undefined, undefined> {
    for (const [, v] of this.entries()) yield v;
  }
  forEach(fn: (value: string, key: string, parent: Headers) => void, thisArg?: unknown) {
    for (const [k, v] of this.entries()) fn.call(thisArg, v, k, this);
  }
  [Symbol.iterator]() {
    return this.entries();
  }
}

/** JSON bodies must be UTF-8: invalid bytes are refused, not silently turned into U+FFFD. */
export const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/** A length-prefixed message (gRPC, Connect streaming): flags, 4-byte length, bytes. Flags 0: uncompressed. */
export function envelopeOf(bytes: Uint8Array, flags = 0): Buffer {
  const frame = Buffer.allocUnsafe(5 + bytes.length);
  frame[0] = flags;
  frame.writeUInt32BE(bytes.length, 1);
  frame.set(bytes, 5);
  return frame;
}

/**
 * Why `body` is not exactly one uncompressed envelope, as connect-node words it (undefined: it is).
 * `kind` names the method kind in the message ("unary", "server-streaming").
 */
export function envelopeError(body: Buffer, kind: string): ConnectError | undefined {
  if (body.length === 0) return new ConnectError(`protocol error: missing input message for ${kind} method`, Code.Unimplemented);
  if (body.length < 5 || 5 + body.readUInt32BE(1) > body.length) return new ConnectError("protocol error: incomplete envelope", Code.InvalidArgument);
  if (body[0]! & 0b1) return new ConnectError("received compressed envelope, but do not know how to decompress", Code.Internal);
  const rest = body.length - 5 - body.readUInt32BE(1);
  if (rest === 0) return undefined;
  const next = body.subarray(body.length - rest);
  if (next.length < 5 || 5 + next.readUInt32BE(1) > next.length) return new ConnectError("protocol error: incomplete envelope", Code.InvalidArgument);
  return new ConnectError(`protocol error: received extra input message for ${kind} method`, Code.Unimplemented);
}

/** Lone surrogates in a message quoting what the client sent become U+FFFD (gRPC cannot carry them in grpc-message). */
const wellFormed = (s: string) => s.replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, "\uFFFD");

/**
 * The request message in `bytes`, or why it cannot be decoded: the same words as the kit's
 * screening of connect-node's requests, so a client hears the same on both paths.
 */
export function decodeProblem<Desc extends DescMessage>(schema: Desc, bytes: Uint8Array, json: boolean, jsonRead: { ignoreUnknownFields: boolean }): { message: MessageShape<Desc> } | string {
  if (!json) {
    try {
      return { message: fromBinary(schema, bytes) };
    } catch (err) {
      return err instanceof Error ? err.message : String(err);
    }
  }
  let text: string;
  try {
    text = strictUtf8.decode(bytes);
  } catch {
    return "the JSON is not valid UTF-8: send it encoded as UTF-8";
  }
  try {
    const parsed: JsonValue = text.trim() ? JSON.parse(text) : {};
    return { message: fromJson(schema, parsed, jsonRead) };
  } catch (err) {
    return wellFormed(err instanceof Error ? err.message : String(err));
  }
}

/** The request's deadline in ms (grpc-timeout "5S", "100m"…; connect-timeout-ms), or the error connect-node answers for a malformed one. */
export function timeoutOf(h: http.IncomingHttpHeaders, protocol: Protocol): { timeoutMs?: number; error?: ConnectError } {
  const header = h[protocol === "grpc" ? "grpc-timeout" : "connect-timeout-ms"];
  if (header === undefined) return {};
  const value = Array.isArray(header) ? header.join(", ") : header;
  return protocol === "grpc" ? parseGrpcTimeout(value, Number.MAX_SAFE_INTEGER) : parseConnectTimeout(value, Number.MAX_SAFE_INTEGER);
}

/** Connect's HTTP status for each code (connect protocol spec). */
export function httpStatus(code: Code): number {
  switch (code) {
    case Code.Canceled:
      return 499;
    case Code.InvalidArgument:
    case Code.FailedPrecondition:
    case Code.OutOfRange:
      return 400;
    case Code.DeadlineExceeded:
      return 504;
    case Code.NotFound:
      return 404;
    case Code.AlreadyExists:
    case Code.Aborted:
      return 409;
    case Code.PermissionDenied:
      return 403;
    case Code.ResourceExhausted:
      return 429;
    case Code.Unimplemented:
      return 501;
    case Code.Unavailable:
      return 503;
    case Code.Unauthenticated:
      return 401;
    default:
      return 500;
  }
}

/** Throws (as Node would when sending) if a header name or value is not valid HTTP. */
export function validateHeaders(h: OutHeaders) {
  for (const k in h) {
    http.validateHeaderName(k);
    const v = h[k]!;
    if (Array.isArray(v)) for (const one of v) http.validateHeaderValue(k, one);
    else http.validateHeaderValue(k, v);
  }
}

/** Trailers already validated; if sending still fails, the stream is reset instead of the process ending. */
export function sendTrailersSafely(stream: http2.ServerHttp2Stream, trailers: OutHeaders) {
  try {
    stream.sendTrailers(trailers);
  } catch {
    stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
  }
}

/** Copies `h` into `out` (names prefixed with `prefix`); set-cookie stays a list. */
export function putHeaders(out: OutHeaders, h: Headers | undefined, prefix = "") {
  if (!h) return;
  h.forEach((value, key) => {
    if (key === "set-cookie") return;
    out[prefix + key] = value;
  });
  const cookies = h.getSetCookie();
  if (cookies.length) out[`${prefix}set-cookie`] = cookies;
}

/**
 * An error's gRPC trailers as connect-node writes them: the handler's trailers (`extra`), the
 * error's metadata, grpc-status, grpc-message and, when the error has details (e.g.
 * google.rpc.BadRequest), grpc-status-details-bin.
 */
export function grpcErrorTrailers(err: ConnectError, extra?: Headers): OutHeaders {
  const out: OutHeaders = {};
  putHeaders(out, setTrailerStatus(new Headers(extra), err));
  return out;
}

/** A Connect error body as connect-node writes it: {code, message, details: [{type, value, debug}]}. */
export const connectErrorJson = (err: ConnectError): JsonObject => errorToJson(err, undefined);

/** Connect's end-of-stream message: the trailers and the error's metadata, and the error if the stream failed. */
export function endStreamJson(trailer: Headers | undefined, err: ConnectError | undefined): string {
  return JSON.stringify(endStreamToJson(new Headers(trailer), err, undefined));
}

/** The answer when a call's own answer cannot be sent (e.g. a handler set a header that is not valid HTTP). */
export const unsendable = (path: string) => new ConnectError(`internal error: the answer of ${path} could not be sent; it was logged`, Code.Internal);

/** A body over the limit, in connect-node's words. */
export const tooLarge = (size: number, max: number) => new ConnectError(`message size ${size} is larger than configured readMaxBytes ${max}`, Code.ResourceExhausted);

/** Reads `source` to its end; `done(undefined, size)` when it is over `max` bytes (the rest is read and dropped). */
export function readInto(source: Readable, max: number, done: (body: Buffer | undefined, size: number) => void) {
  const chunks: Buffer[] = [];
  let size = 0;
  source.on("data", (chunk: Buffer) => {
    size += chunk.length;
    if (size <= max) chunks.push(chunk);
  });
  source.once("end", () => done(size > max ? undefined : chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size), size));
}

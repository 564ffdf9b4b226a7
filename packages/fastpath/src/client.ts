/**
 * A unary gRPC client transport on plain node:http2, for calls between our services. connect-node's
 * gRPC transport costs ~0.29 ms of client CPU per unary call here (async iterables, abort signals,
 * web Headers per call); this one writes one HEADERS + DATA frame and reads the answer, ~10× less
 * (bench/README.md). Streaming calls still go to connect-node's transport (`streams`).
 *
 * Answers are read up to `readMaxBytes` (as connect-node's transports do): a bigger one ends the
 * call with resource_exhausted as soon as its length prefix or its bytes say so.
 *
 * Connections: HTTP/2 sessions to one origin, opened on demand, each carrying at most
 * `maxStreamsPerSession` calls at once (more in flight open another session, so a burst never
 * queues behind the server's stream limit); a session that gets GOAWAY, errors or closes is
 * replaced; idle sessions close after `idleMs`; while calls are in flight a ping every `pingMs`
 * detects a dead peer (the call fails with unavailable instead of hanging).
 */
import http2 from "node:http2";
import type { SecureClientSessionOptions } from "node:http2";
import { create, fromBinary, toBinary, type DescMessage, type DescMethodUnary, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";
import { Code, ConnectError, createContextValues, type ContextValues, type Interceptor, type Transport, type UnaryRequest, type UnaryResponse } from "@connectrpc/connect";
import { findTrailerError } from "@connectrpc/connect/protocol-grpc";
import { unaryResponse, withInterceptors, type AnyFn } from "./methods.js";
import { envelopeOf, tooLarge } from "./wire.js";

export interface GrpcClientOptions {
  baseUrl: string;
  /** TLS options (cert/key/ca for mTLS) when baseUrl is https. */
  nodeOptions?: SecureClientSessionOptions;
  interceptors?: Interceptor[];
  /** The transport streaming calls use (connect-node's). */
  streams: Transport;
  /** Largest answer read (bytes of the message); default 4 MiB, the servers' READ_MAX_BYTES default. */
  readMaxBytes?: number;
  maxStreamsPerSession?: number;
  idleMs?: number;
  pingMs?: number;
  pingTimeoutMs?: number;
}

/** gRPC status for an HTTP status without grpc-status (the gRPC HTTP mapping). */
function codeFromHttp(status: number): Code {
  switch (status) {
    case 400:
      return Code.Internal;
    case 401:
      return Code.Unauthenticated;
    case 403:
      return Code.PermissionDenied;
    case 404:
      return Code.Unimplemented;
    case 429:
    case 502:
    case 503:
    case 504:
      return Code.Unavailable;
    default:
      return Code.Unknown;
  }
}

const codes: readonly Code[] = [
  Code.Canceled,
  Code.Unknown,
  Code.InvalidArgument,
  Code.DeadlineExceeded,
  Code.NotFound,
  Code.AlreadyExists,
  Code.PermissionDenied,
  Code.ResourceExhausted,
  Code.FailedPrecondition,
  Code.Aborted,
  Code.OutOfRange,
  Code.Unimplemented,
  Code.Internal,
  Code.Unavailable,
  Code.DataLoss,
  Code.Unauthenticated,
];

/** A grpc-status value as a Code; an unknown number is Unknown (as connect-node reads it). */
function codeOf(status: number): Code {
  return codes.find((c) => c === status) ?? Code.Unknown;
}

/** Headers and trailers other than the protocol's own, as error metadata. */
function metadataOf(...sets: (http2.IncomingHttpHeaders | undefined)[]): Headers {
  const h = new Headers();
  for (const set of sets) {
    if (!set) continue;
    for (const [k, v] of Object.entries(set)) {
      if (k.startsWith(":") || v === undefined || k === "grpc-status" || k === "grpc-message" || k === "content-type") continue;
      for (const one of Array.isArray(v) ? v : [v]) h.append(k, one);
    }
  }
  return h;
}

/** The error details (e.g. google.rpc.BadRequest) of grpc-status-details-bin, decoded as connect-node does; the header leaves the metadata. */
function withDetails(err: ConnectError): ConnectError {
  const bin = err.metadata.get("grpc-status-details-bin");
  if (bin === null) return err;
  err.metadata.delete("grpc-status-details-bin");
  try {
    err.details = findTrailerError(new Headers({ "grpc-status-details-bin": bin }))?.details ?? [];
  } catch {
    // undecodable details: the code and message still stand
  }
  return err;
}

function decodeMessage(text: string | string[] | undefined): string {
  const s = Array.isArray(text) ? text.join(",") : (text ?? "");
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

const never = new AbortController().signal;

/** A unary request as the client interceptors see it (connect's shape). */
export class ClientUnaryRequest implements UnaryRequest {
  readonly stream = false;
  readonly requestMethod = "POST";
  readonly service;
  readonly header: Headers;
  readonly signal: AbortSignal;
  readonly contextValues: ContextValues;
  constructor(
    readonly method: DescMethodUnary,
    readonly url: string,
    signal: AbortSignal | undefined,
    header: ConstructorParameters<typeof Headers>[0] | undefined,
    readonly message: MessageShape<DescMessage>,
    contextValues: ContextValues | undefined,
  ) {
    this.service = method.parent;
    this.signal = signal ?? never;
    this.header = new Headers(header);
    this.contextValues = contextValues ?? createContextValues();
  }
}

/** A signal that aborts with `signal`, or with deadline_exceeded after `timeoutMs` (as connect's transports make theirs). */
function deadlineSignal(signal: AbortSignal | undefined, timeoutMs: number | undefined): { signal: AbortSignal | undefined; cleanup(): void } {
  if (timeoutMs === undefined) return { signal, cleanup() {} };
  const c = new AbortController();
  const timer = setTimeout(() => c.abort(new ConnectError("the operation timed out", Code.DeadlineExceeded)), timeoutMs);
  const onAbort = () => c.abort(signal?.reason);
  if (signal?.aborted) c.abort(signal.reason);
  else signal?.addEventListener("abort", onAbort, { once: true });
  return {
    signal: c.signal,
    cleanup() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
    },
  };
}

interface Session {
  s: http2.ClientHttp2Session;
  inFlight: number;
  usable: boolean;
}

export type GrpcClientTransport = Transport & { close(): void; stats(): { sessions: number; inFlight: number } };

export function createGrpcClientTransport(opts: GrpcClientOptions): GrpcClientTransport {
  const url = new URL(opts.baseUrl);
  const origin = `${url.protocol}//${url.host}`;
  const prefix = url.pathname.replace(/\/$/, "");
  const readMaxBytes = opts.readMaxBytes ?? 4 * 1024 * 1024;
  const maxStreams = opts.maxStreamsPerSession ?? 256;
  const idleMs = opts.idleMs ?? 5 * 60_000;
  const pingMs = opts.pingMs ?? 5_000;
  const pingTimeoutMs = opts.pingTimeoutMs ?? 10_000;
  const sessions: Session[] = [];

  const open = (): Session => {
    const s = http2.connect(origin, { ...opts.nodeOptions, settings: { enablePush: false } });
    const entry: Session = { s, inFlight: 0, usable: true };
    const drop = () => {
      entry.usable = false;
      const i = sessions.indexOf(entry);
      if (i >= 0) sessions.splice(i, 1);
    };
    s.on("goaway", drop);
    s.on("close", drop);
    s.on("error", drop); // each call on it fails with its own stream error
    s.setTimeout(idleMs, () => entry.inFlight === 0 && s.close());
    const ping = setInterval(() => {
      if (entry.inFlight === 0 || s.destroyed) return;
      const timer = setTimeout(() => s.destroy(new Error(`no ping answer from ${origin} within ${pingTimeoutMs} ms`)), pingTimeoutMs).unref();
      s.ping((err) => {
        clearTimeout(timer);
        if (err) s.destroy(err);
      });
    }, pingMs).unref();
    s.once("close", () => clearInterval(ping));
    s.unref();
    sessions.push(entry);
    return entry;
  };
  const pick = (): Session => {
    for (const e of sessions) if (e.usable && !e.s.destroyed && e.inFlight < maxStreams) return e;
    return open();
  };

  const call = (req: UnaryRequest) =>
    new Promise<UnaryResponse>((resolve, reject) => {
      const method = req.method;
      if (req.signal.aborted) return reject(ConnectError.from(req.signal.reason, Code.Canceled));
      const frame = envelopeOf(toBinary(method.input, req.message));
      const headers: http2.OutgoingHttpHeaders = {
        ":method": "POST",
        ":path": `${prefix}/${method.parent.typeName}/${method.name}`,
        "content-type": "application/grpc+proto",
        te: "trailers",
      };
      req.header.forEach((v, k) => (headers[k] = v));

      const session = pick();
      session.inFlight++;
      if (session.inFlight === 1) session.s.ref();
      let stream: http2.ClientHttp2Stream;
      try {
        stream = session.s.request(headers, { endStream: false });
      } catch (err) {
        release();
        return reject(new ConnectError(`cannot call ${origin}: ${err instanceof Error ? err.message : String(err)}`, Code.Unavailable));
      }
      let response: http2.IncomingHttpHeaders | undefined;
      let trailers: http2.IncomingHttpHeaders | undefined;
      const chunks: Buffer[] = [];
      let size = 0;
      let settled = false;
      function release() {
        if (--session.inFlight === 0) session.s.unref();
      }
      const onAbort = () => stream.close(http2.constants.NGHTTP2_CANCEL);
      req.signal.addEventListener("abort", onAbort, { once: true });
      const finish = (err?: ConnectError, res?: UnaryResponse) => {
        if (settled) return;
        settled = true;
        release();
        req.signal.removeEventListener("abort", onAbort);
        if (err) reject(err);
        else if (res) resolve(res);
      };
      /** Refuses an answer over readMaxBytes: the call ends at once, the rest is not read. */
      const refuse = (bytes: number) => {
        finish(tooLarge(bytes, readMaxBytes));
        stream.close(http2.constants.NGHTTP2_CANCEL);
      };
      stream.on("response", (h) => (response = h));
      stream.on("trailers", (t) => (trailers = t));
      stream.on("data", (c: Buffer) => {
        if (settled) return;
        size += c.length;
        if (size > readMaxBytes + 5) return refuse(size - 5);
        chunks.push(c);
        // The length prefix says how big the message is: no need to read it to refuse it.
        if (chunks.length === 1 && c.length >= 5 && c.readUInt32BE(1) > readMaxBytes) refuse(c.readUInt32BE(1));
      });
      stream.on("error", () => {}); // reported through "close" with the stream's rstCode
      stream.on("close", () => {
        if (settled) return;
        if (!response) {
          if (req.signal.aborted) return finish(ConnectError.from(req.signal.reason, Code.Canceled));
          return finish(new ConnectError(`${origin} closed the call without an answer (HTTP/2 code ${stream.rstCode})`, Code.Unavailable));
        }
        const status = Number(response[":status"]);
        const grpcStatus = trailers?.["grpc-status"] ?? response["grpc-status"];
        if (grpcStatus === undefined) {
          if (req.signal.aborted) return finish(ConnectError.from(req.signal.reason, Code.Canceled));
          return finish(new ConnectError(`${origin} answered HTTP ${status} without a gRPC status`, status === 200 ? Code.Unavailable : codeFromHttp(status), metadataOf(response)));
        }
        const code = Number(grpcStatus);
        if (code !== 0) {
          const message = decodeMessage(trailers?.["grpc-message"] ?? response["grpc-message"]);
          return finish(withDetails(new ConnectError(message, codeOf(code), metadataOf(response, trailers))));
        }
        const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
        if (body.length < 5 || body[0] !== 0 || body.readUInt32BE(1) + 5 !== body.length) {
          return finish(new ConnectError(`${origin} sent a malformed or compressed unary answer`, Code.Internal));
        }
        let message;
        try {
          message = fromBinary(method.output, body.subarray(5));
        } catch (err) {
          return finish(new ConnectError(`cannot decode the answer of ${method.name}: ${err instanceof Error ? err.message : String(err)}`, Code.Internal));
        }
        finish(undefined, { stream: false, service: method.parent, method, header: metadataOf(response), trailer: metadataOf(trailers), message });
      });
      stream.end(frame);
    });

  // Only unary calls come this way: `stream` below hands streams to connect-node's transport.
  const send: AnyFn = (req) => (req.stream ? Promise.reject(new ConnectError("internal error: a stream reached the unary gRPC client", Code.Internal)) : call(req));
  const chain = withInterceptors(opts.interceptors ?? [], send);

  return {
    async unary<I extends DescMessage, O extends DescMessage>(method: DescMethodUnary<I, O>, signal: AbortSignal | undefined, timeoutMs: number | undefined, header: ConstructorParameters<typeof Headers>[0] | undefined, input: MessageInitShape<I>, contextValues?: ContextValues) {
      const deadline = deadlineSignal(signal, timeoutMs);
      const req = new ClientUnaryRequest(method, `${opts.baseUrl.replace(/\/$/, "")}/${method.parent.typeName}/${method.name}`, deadline.signal, header, create(method.input, input), contextValues);
      // The deadline travels as grpc-timeout, set before the interceptors (as connect's transports do).
      if (timeoutMs !== undefined) req.header.set("grpc-timeout", `${Math.max(1, Math.ceil(timeoutMs))}m`);
      try {
        return unaryResponse(await chain(req), method);
      } finally {
        deadline.cleanup();
      }
    },
    stream: (...args) => opts.streams.stream(...args),
    close() {
      for (const e of [...sessions]) e.s.close();
    },
    stats: () => ({ sessions: sessions.length, inFlight: sessions.reduce((n, e) => n + e.inFlight, 0) }),
  };
}

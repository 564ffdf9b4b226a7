/**
 * A unary gRPC client transport on plain node:http2, for calls between our services. connect-node's
 * gRPC transport costs ~0.29 ms of client CPU per unary call here (async iterables, abort signals,
 * web Headers per call); this one writes one HEADERS + DATA frame and reads the answer, ~10× less
 * (bench/README.md). Streaming calls still go to connect-node's transport (`streams`).
 *
 * Connections: HTTP/2 sessions to one origin, opened on demand, each carrying at most
 * `maxStreamsPerSession` calls at once (more in flight open another session, so a burst never
 * queues behind the server's stream limit); a session that gets GOAWAY, errors or closes is
 * replaced; idle sessions close after `idleMs`; while calls are in flight a ping every `pingMs`
 * detects a dead peer (the call fails with unavailable instead of hanging).
 */
import http2 from "node:http2";
import type { SecureClientSessionOptions } from "node:http2";
import { create, fromBinary, toBinary, type DescMessage, type DescMethodUnary, type MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError, createContextValues, type ContextValues, type Interceptor, type Transport, type UnaryRequest, type UnaryResponse } from "@connectrpc/connect";
import { findTrailerError } from "@connectrpc/connect/protocol-grpc";
import { envelope, withInterceptors } from "./unary.js";

type Next = (req: UnaryRequest) => Promise<UnaryResponse>;

export interface GrpcClientOptions {
  baseUrl: string;
  /** TLS options (cert/key/ca for mTLS) when baseUrl is https. */
  nodeOptions?: SecureClientSessionOptions;
  interceptors?: Interceptor[];
  /** The transport streaming calls use (connect-node's). */
  streams: Transport;
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

const timeoutHeader = (ms: number) => `${Math.max(1, Math.ceil(ms))}m`;

interface Session {
  s: http2.ClientHttp2Session;
  inFlight: number;
  usable: boolean;
}

const never = new AbortController().signal;

/** A unary request as the client interceptors see it (connect's shape), plus the call's timeout for the transport. */
export function clientRequest(method: DescMethodUnary, url: string, signal: AbortSignal | undefined, timeoutMs: number | undefined, header: ConstructorParameters<typeof Headers>[0] | undefined, input: MessageInitShape<DescMessage>, contextValues: ContextValues | undefined): UnaryRequest {
  return {
    stream: false,
    service: method.parent,
    method,
    requestMethod: "POST",
    url,
    init: {},
    signal: signal ?? never,
    header: new Headers(header),
    contextValues: contextValues ?? createContextValues(),
    message: create(method.input, input),
    timeoutMs,
  } as unknown as UnaryRequest;
}

export function createGrpcClientTransport(opts: GrpcClientOptions): Transport & { close(): void; stats(): { sessions: number; inFlight: number } } {
  const url = new URL(opts.baseUrl);
  const origin = `${url.protocol}//${url.host}`;
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
      s.ping((err) => (clearTimeout(timer), err && s.destroy(err)));
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

  const send: Next = (req) =>
    new Promise<UnaryResponse>((resolve, reject) => {
      const method = req.method as DescMethodUnary<DescMessage, DescMessage>;
      if (req.signal.aborted) return reject(ConnectError.from(req.signal.reason, Code.Canceled));
      const frame = envelope(0, toBinary(method.input, req.message));
      const headers: http2.OutgoingHttpHeaders = {
        ":method": "POST",
        ":path": `${url.pathname.replace(/\/$/, "")}/${method.parent.typeName}/${method.name}`,
        "content-type": "application/grpc+proto",
        te: "trailers",
      };
      req.header.forEach((v, k) => (headers[k] = v));
      const timeout = (req as { timeoutMs?: number }).timeoutMs;
      if (timeout !== undefined) headers["grpc-timeout"] = timeoutHeader(timeout);

      const session = pick();
      session.inFlight++;
      if (session.inFlight === 1) session.s.ref();
      let stream: http2.ClientHttp2Stream;
      try {
        stream = session.s.request(headers, { endStream: false });
      } catch (err) {
        release();
        return reject(new ConnectError(`cannot call ${origin}: ${(err as Error).message}`, Code.Unavailable));
      }
      let response: http2.IncomingHttpHeaders | undefined;
      let trailers: http2.IncomingHttpHeaders | undefined;
      const chunks: Buffer[] = [];
      let settled = false;
      function release() {
        if (--session.inFlight === 0) session.s.unref();
      }
      const onAbort = () => stream.close(http2.constants.NGHTTP2_CANCEL);
      req.signal.addEventListener("abort", onAbort, { once: true });
      const timer = timeout !== undefined ? setTimeout(() => stream.close(http2.constants.NGHTTP2_CANCEL), timeout) : undefined;
      const finish = (err?: ConnectError, res?: UnaryResponse) => {
        if (settled) return;
        settled = true;
        release();
        clearTimeout(timer);
        req.signal.removeEventListener("abort", onAbort);
        if (err) reject(err);
        else resolve(res!);
      };
      stream.on("response", (h) => (response = h));
      stream.on("trailers", (t) => (trailers = t));
      stream.on("data", (c: Buffer) => chunks.push(c));
      stream.on("error", () => {}); // reported through "close" with the stream's rstCode
      stream.on("close", () => {
        if (settled) return;
        if (!response) {
          if (req.signal.aborted) return finish(ConnectError.from(req.signal.reason, Code.Canceled));
          if (timeout !== undefined && stream.rstCode === http2.constants.NGHTTP2_CANCEL) return finish(new ConnectError("the call timed out", Code.DeadlineExceeded));
          return finish(new ConnectError(`${origin} closed the call without an answer (HTTP/2 code ${stream.rstCode})`, Code.Unavailable));
        }
        const status = Number(response[":status"]);
        const grpcStatus = trailers?.["grpc-status"] ?? response["grpc-status"];
        if (grpcStatus === undefined) {
          if (req.signal.aborted) return finish(ConnectError.from(req.signal.reason, Code.Canceled));
          const code = status === 200 ? (stream.rstCode === http2.constants.NGHTTP2_CANCEL && timeout !== undefined ? Code.DeadlineExceeded : Code.Unavailable) : codeFromHttp(status);
          return finish(new ConnectError(`${origin} answered HTTP ${status} without a gRPC status`, code, metadataOf(response)));
        }
        const code = Number(grpcStatus);
        if (code !== 0) {
          const message = decodeMessage(trailers?.["grpc-message"] ?? response["grpc-message"]);
          return finish(withDetails(new ConnectError(message, code in Code ? (code as Code) : Code.Unknown, metadataOf(response, trailers))));
        }
        const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
        if (body.length < 5 || body[0] !== 0 || body.readUInt32BE(1) + 5 !== body.length) {
          return finish(new ConnectError(`${origin} sent a malformed or compressed unary answer`, Code.Internal));
        }
        let message;
        try {
          message = fromBinary(method.output, body.subarray(5));
        } catch (err) {
          return finish(new ConnectError(`cannot decode the answer of ${method.name}: ${(err as Error).message}`, Code.Internal));
        }
        finish(undefined, { stream: false, service: method.parent, method, header: metadataOf(response), trailer: metadataOf(trailers), message });
      });
      stream.end(frame);
    });

  const chain = withInterceptors(opts.interceptors ?? [], send);

  return {
    unary<I extends DescMessage, O extends DescMessage>(method: DescMethodUnary<I, O>, signal: AbortSignal | undefined, timeoutMs: number | undefined, header: ConstructorParameters<typeof Headers>[0] | undefined, input: MessageInitShape<I>, contextValues?: ContextValues) {
      const req = clientRequest(method, `${opts.baseUrl.replace(/\/$/, "")}/${method.parent.typeName}/${method.name}`, signal, timeoutMs, header, input, contextValues);
      return chain(req) as unknown as Promise<UnaryResponse<I, O>>;
    },
    stream: (...args) => opts.streams.stream(...args),
    close() {
      for (const e of [...sessions]) e.s.close();
    },
    stats: () => ({ sessions: sessions.length, inFlight: sessions.reduce((n, e) => n + e.inFlight, 0) }),
  };
}

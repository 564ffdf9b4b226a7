/**
 * Server streams (e.g. ChatService/Subscribe) on raw HTTP/2 streams: gRPC and Connect streaming.
 * connect-node runs each through a dozen async-generator stages per message; here a message is
 * encoded and written, waiting for "drain" when the client reads slowly.
 *
 * One message object yielded to many streams (a chat message fanned out to its subscribers) is
 * encoded once per wire format: the frames are kept by object identity while the object lives
 * (a yielded message must not be changed afterwards; none of ours is).
 */
import http2 from "node:http2";
import { create, toBinary, toJsonString, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { Code, ConnectError, type ContextValues } from "@connectrpc/connect";
import { CallContext, type StreamEntry, type UnaryMethods } from "./methods.js";
import { decodeProblem, endStreamJson, envelopeError, envelopeOf, grpcErrorTrailers, NodeHeaders, putHeaders, readInto, sendTrailersSafely, timeoutOf, tooLarge, unsendable, validateHeaders, type FastPathOptions, type OutHeaders } from "./wire.js";

const binaryFrames = new WeakMap<object, Buffer>();
const jsonFrames = new WeakMap<object, Buffer>();

function frameOf(schema: DescMessage, message: MessageShape<DescMessage>, json: boolean): Buffer {
  const cache = json ? jsonFrames : binaryFrames;
  let frame = cache.get(message);
  if (!frame) {
    frame = envelopeOf(json ? Buffer.from(toJsonString(schema, message)) : toBinary(schema, message));
    cache.set(message, frame);
  }
  return frame;
}

export type StreamProtocol = "grpc" | "connect-proto" | "connect-json";

/** Which protocol the fast path serves this server stream with, or undefined to leave it to connect-node. */
export function streamProtocolOf(h: http2.IncomingHttpHeaders): StreamProtocol | undefined {
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

/** Serves one server-streaming call on `stream`. */
export function serverStream(
  methods: UnaryMethods,
  entry: StreamEntry,
  protocol: StreamProtocol,
  stream: http2.ServerHttp2Stream,
  headers: http2.IncomingHttpHeaders,
  values: ContextValues,
  opts: FastPathOptions,
  jsonRead: { ignoreUnknownFields: boolean },
) {
  const path = headers[":path"] ?? "/";
  const timeout = timeoutOf(headers, protocol === "grpc" ? "grpc" : "connect-json");
  const ctx = new CallContext(entry.method, protocol === "grpc" ? "grpc" : "connect", path, new NodeHeaders(headers), values, timeout.timeoutMs, [opts.shutdownSignal]);
  const contentType = headers["content-type"] ?? "application/grpc";
  let closed = false;
  stream.once("close", () => {
    closed = true;
    ctx.done(new ConnectError("the client closed the call", Code.Canceled));
  });
  let started = false;
  const start = (header: Headers | undefined) => {
    if (started || closed || stream.destroyed) return;
    const head: OutHeaders = {};
    putHeaders(head, header);
    head["content-type"] = contentType;
    head[":status"] = "200";
    stream.respond(head, protocol === "grpc" ? { waitForTrailers: true } : undefined); // throws before sending on a bad header
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
        let trailers: OutHeaders = {};
        try {
          if (err) trailers = grpcErrorTrailers(err, trailer);
          else {
            putHeaders(trailers, trailer);
            trailers["grpc-status"] = "0";
          }
          validateHeaders(trailers);
        } catch (e) {
          opts.onError(e, path);
          trailers = grpcErrorTrailers(unsendable(path));
        }
        const ready = trailers;
        stream.once("wantTrailers", () => sendTrailersSafely(stream, ready));
        stream.end();
        return;
      }
      stream.end(envelopeOf(Buffer.from(endStreamJson(trailer, err)), 0b10));
    } catch (e) {
      opts.onError(e, path);
      stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
    }
  };
  const writable = () =>
    new Promise<void>((resolve) => {
      const go = () => {
        stream.off("drain", go);
        stream.off("close", go);
        resolve();
      };
      stream.once("drain", go);
      stream.once("close", go);
    });

  /** The one request message; one that cannot be decoded is marked (onUndecodable) and replaced by an empty one, or refused. */
  const input = (body: Buffer | undefined, size: number): MessageShape<DescMessage> => {
    if (body === undefined) throw tooLarge(size, opts.readMaxBytes);
    if (timeout.error) throw timeout.error;
    const refused = envelopeError(body, "server-streaming");
    if (refused) throw refused;
    const decoded = decodeProblem(entry.method.input, body.subarray(5), protocol === "connect-json", jsonRead);
    if (typeof decoded !== "string") return decoded.message;
    if (!opts.onUndecodable) throw new ConnectError(`cannot decode the request: ${decoded}`, Code.InvalidArgument);
    opts.onUndecodable(values, decoded);
    return create(entry.method.input);
  };

  readInto(stream, opts.readMaxBytes, (body, size) => {
    void (async () => {
      let it: AsyncIterator<MessageShape<DescMessage>> | undefined;
      try {
        const res = await methods.invokeStream(entry, ctx, input(body, size));
        it = res.message[Symbol.asyncIterator]();
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

/**
 * The Node clients of the suite, each playing a UnaryCall / StreamCall against a Target and
 * reporting an Outcome: connect-node's Connect (JSON and binary, HTTP/1.1 and HTTP/2), gRPC and
 * gRPC-Web transports, the fast path's own gRPC client (unary), and @grpc/grpc-js (generic calls
 * on raw bytes), in cleartext and over TLS.
 */
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { createClient, type Transport } from "@connectrpc/connect";
import type { Compression } from "@connectrpc/connect/protocol";
import { compressionGzip, createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import {
  ConformanceService,
  LookupRequestSchema,
  LookupResponseSchema,
  ServerStreamRequestSchema,
  ServerStreamResponseSchema,
  UnaryRequestSchema,
  UnaryResponseSchema,
} from "@crm/gen/crm/conformance/v1/conformance_pb";
import { createGrpcClientTransport } from "@crm/fastpath";
import type { StreamCall, UnaryCall } from "./cases.js";
import {
  codeName,
  confHeaders,
  detailsFromStatusBin,
  errorOutcome,
  newCallId,
  resultView,
  noteAbort,
  stalledBefore,
  type Capability,
  type ClientInfo,
  type Outcome,
  type Target,
  type Tls,
} from "./harness.js";
import { payload } from "./service.js";

export interface NodeClient extends ClientInfo {
  unary(target: Target, call: UnaryCall): Promise<Outcome>;
  stream?(target: Target, call: StreamCall): Promise<Outcome>;
  /** Closes the client's connections (clients that hold them open). */
  close?(): void;
}

/** An encoding no server of ours accepts: the request must be refused with unimplemented. */
const snappy: Compression = { name: "snappy", compress: async (b) => new Uint8Array(b), decompress: async (b) => new Uint8Array(b) };

/** The request message of a call, with the unknown field 999 when asked. */
export function requestMessage(call: UnaryCall, callId: string) {
  const schema = call.method === "lookup" ? LookupRequestSchema : UnaryRequestSchema;
  const message = create(schema as typeof UnaryRequestSchema, { answer: call.answer, payload: call.payload ?? new Uint8Array(0), callId });
  if (call.unknownField) message.$unknown = [{ no: 999, wireType: 0, data: new Uint8Array([1]) }];
  return message;
}

export function streamRequestMessage(call: StreamCall, callId: string) {
  return create(ServerStreamRequestSchema, { ...call.request, callId });
}

export const unknownCount = (m: { $unknown?: unknown[] | undefined }) => m.$unknown?.length ?? 0;

const caps = (...c: Capability[]) => new Set(c);

/** Runs a unary call as a connect-node client would (onHeader/onTrailer, abort, errors) for a transport. */
async function connectUnary(transport: Transport, target: Target, call: UnaryCall): Promise<Outcome> {
  const client = createClient(ConformanceService, transport);
  const callId = newCallId("unary");
  const controller = new AbortController();
  let headers: Headers | undefined;
  let trailers: Headers | undefined;
  if (call.cancel) void target.watch(callId).started.then(() => controller.abort());
  const options = { headers: call.headers, timeoutMs: call.timeoutMs, signal: controller.signal, onHeader: (h: Headers) => (headers = h), onTrailer: (t: Headers) => (trailers = t) };
  let outcome: Outcome;
  try {
    const request = requestMessage(call, callId);
    const res = call.method === "lookup" ? await client.lookup(request as never, options) : await client.unary(request, options);
    outcome = { code: "OK", headers: confHeaders(headers), trailers: confHeaders(trailers), result: resultView(res.result), responseUnknownFields: unknownCount(res) };
  } catch (err) {
    outcome = errorOutcome(err);
  }
  if (call.watchAbort) await noteAbort(outcome, target, callId);
  return outcome;
}

async function connectStream(transport: Transport, target: Target, call: StreamCall): Promise<Outcome> {
  const client = createClient(ConformanceService, transport);
  const callId = newCallId("stream");
  const controller = new AbortController();
  let headers: Headers | undefined;
  let trailers: Headers | undefined;
  let messages = 0;
  let intact = true;
  let stalled: boolean | undefined;
  let note: string | undefined;
  let outcome: Outcome;
  try {
    const it = client.serverStream(streamRequestMessage(call, callId), {
      headers: call.headers,
      timeoutMs: call.timeoutMs,
      signal: controller.signal,
      onHeader: (h) => (headers = h),
      onTrailer: (t) => (trailers = t),
    });
    for await (const m of it) {
      if (m.index !== messages || !Buffer.from(m.payload).equals(Buffer.from(payload(m.payload.length, m.index)))) intact = false;
      messages++;
      if (messages === 1 && call.pauseAfterFirst) {
        const s = await stalledBefore(target.watch(callId), call.request.count ?? 0);
        stalled = s.stalled;
        note = `${s.produced} produced while paused`;
      }
      if (messages === 1 && call.cancelAfterFirst) controller.abort();
    }
    outcome = { code: "OK", headers: confHeaders(headers), trailers: confHeaders(trailers) };
  } catch (err) {
    outcome = errorOutcome(err);
  }
  outcome.messages = messages;
  if (messages) outcome.messagesIntact = intact;
  if (stalled !== undefined) outcome.stalled = stalled;
  if (note) outcome.note = note;
  if (call.watchAbort) await noteAbort(outcome, target, callId);
  return outcome;
}

interface ConnectNodeSpec {
  name: string;
  protocol: "connect" | "grpc" | "grpc-web";
  binary: boolean;
  http: "1.1" | "2";
  tls: boolean;
}

/** A connect-node transport client; transports are made per target and option set, and reused. */
function connectNode(spec: ConnectNodeSpec, tls: Tls | undefined): NodeClient {
  const cache = new Map<string, Transport>();
  const transport = (target: Target, o: { gzip?: boolean | undefined; bad?: boolean | undefined; readMaxBytes?: number | undefined; get?: boolean | undefined }) => {
    const key = `${spec.tls ? target.tls : target.h2c}|${JSON.stringify(o)}`;
    let t = cache.get(key);
    if (t) return t;
    const baseUrl = spec.tls ? target.tls! : target.h2c;
    const common = {
      baseUrl,
      httpVersion: spec.http,
      useBinaryFormat: spec.binary,
      ...(spec.tls ? { nodeOptions: { ca: tls!.ca } } : {}),
      ...(o.gzip ? { sendCompression: compressionGzip, compressMinBytes: 0 } : o.bad ? { sendCompression: snappy, compressMinBytes: 0 } : {}),
      ...(o.readMaxBytes ? { readMaxBytes: o.readMaxBytes } : {}),
    };
    if (spec.protocol === "connect") t = createConnectTransport({ ...common, useHttpGet: o.get ?? false });
    else if (spec.protocol === "grpc") t = createGrpcTransport(common as Parameters<typeof createGrpcTransport>[0]);
    else t = createGrpcWebTransport(common);
    cache.set(key, t!);
    return t!;
  };
  const can = caps("gzip", "badEncoding", "readLimit", "deadline", "cancel", "headers", "streams", "unaryTrailers", ...(spec.binary ? (["unknownField"] as const) : []), ...(spec.protocol === "connect" ? (["get"] as const) : []), ...(spec.http === "2" ? (["pause"] as const) : []));
  return {
    ...spec,
    can,
    unary: (target, call) => connectUnary(transport(target, { gzip: call.sendGzip, bad: call.badEncoding, readMaxBytes: call.readMaxBytes, get: call.get }), target, call),
    stream: (target, call) => connectStream(transport(target, { gzip: call.sendGzip, readMaxBytes: call.readMaxBytes }), target, call),
  };
}

/** The fast path's own gRPC client (unary only: it hands streams to connect-node's transport). */
function kitClient(spec: { name: string; tls: boolean }, tls: Tls | undefined): NodeClient {
  const cache = new Map<string, ReturnType<typeof createGrpcClientTransport>>();
  const transport = (target: Target, readMaxBytes: number | undefined) => {
    const baseUrl = spec.tls ? target.tls! : target.h2c;
    const key = `${baseUrl}|${readMaxBytes ?? ""}`;
    let t = cache.get(key);
    if (!t) {
      const nodeOptions = spec.tls ? { nodeOptions: { ca: tls!.ca } } : {};
      t = createGrpcClientTransport({ baseUrl, ...nodeOptions, ...(readMaxBytes ? { readMaxBytes } : {}), streams: createGrpcTransport({ baseUrl, ...nodeOptions }) });
      cache.set(key, t);
    }
    return t;
  };
  return {
    name: spec.name,
    protocol: "grpc",
    binary: true,
    http: "2",
    tls: spec.tls,
    can: caps("deadline", "cancel", "headers", "unknownField", "unaryTrailers", "readLimit"),
    unary: (target, call) => connectUnary(transport(target, call.readMaxBytes), target, call),
    close: () => cache.forEach((t) => t.close()),
  };
}

// ---------------------------------------------------------------------------------------------
// @grpc/grpc-js: generic calls on raw bytes (no codegen), metadata and status as grpc-js reports them.

const identity = (b: Buffer) => b;

/** An Outcome from grpc-js's status (or error) and the metadata it saw. */
function grpcJsError(status: { code: number; details: string; metadata: grpc.Metadata }, headers: grpc.Metadata | undefined): Outcome {
  const bin = status.metadata.get("grpc-status-details-bin")[0] as Buffer | undefined;
  const o: Outcome = { code: codeName(status.code), message: status.details, metadata: confHeaders(Object.entries(headers?.toJSON() ?? {}), Object.entries(status.metadata.toJSON())) };
  const details = detailsFromStatusBin(bin);
  if (details?.length) o.details = details;
  return o;
}

function grpcJsClient(spec: { name: string; tls: boolean }, tls: Tls | undefined): NodeClient {
  const cache = new Map<string, grpc.Client>();
  const clientFor = (target: Target, o: { gzip?: boolean | undefined; bad?: boolean | undefined; readMaxBytes?: number | undefined }) => {
    const key = `${spec.tls ? target.tls : target.h2c}|${JSON.stringify(o)}`;
    let c = cache.get(key);
    if (c) return c;
    const url = new URL(spec.tls ? target.tls! : target.h2c);
    const options: grpc.ChannelOptions = {};
    // grpc-js's compression algorithms: 1 deflate (not accepted by our servers), 2 gzip
    if (o.gzip) options["grpc.default_compression_algorithm"] = 2;
    if (o.bad) options["grpc.default_compression_algorithm"] = 1;
    if (o.readMaxBytes) options["grpc.max_receive_message_length"] = o.readMaxBytes;
    c = new grpc.Client(url.host, spec.tls ? grpc.credentials.createSsl(tls!.ca) : grpc.credentials.createInsecure(), options);
    cache.set(key, c);
    return c;
  };
  const metadataOf = (headers: Record<string, string> | undefined) => {
    const md = new grpc.Metadata();
    for (const [k, v] of Object.entries(headers ?? {})) md.set(k, v);
    return md;
  };
  const deadlineOf = (ms: number | undefined) => (ms === undefined ? {} : { deadline: Date.now() + ms });
  return {
    name: spec.name,
    protocol: "grpc",
    binary: true,
    http: "2",
    tls: spec.tls,
    grpcMessage: "decodeURI",
    can: caps("gzip", "badEncoding", "readLimit", "deadline", "cancel", "headers", "unknownField", "streams", "pause", "unaryTrailers"),
    close: () => cache.forEach((c) => c.close()),
    async unary(target, call) {
      const client = clientFor(target, { gzip: call.sendGzip, bad: call.badEncoding, readMaxBytes: call.readMaxBytes });
      const callId = newCallId("grpc-js");
      const request = Buffer.from(toBinary(call.method === "lookup" ? (LookupRequestSchema as unknown as typeof UnaryRequestSchema) : UnaryRequestSchema, requestMessage(call, callId)));
      const path = `/${ConformanceService.typeName}/${call.method === "lookup" ? "Lookup" : "Unary"}`;
      let headers: grpc.Metadata | undefined;
      const outcome = await new Promise<Outcome>((resolve) => {
        let value: Buffer | undefined;
        const c = client.makeUnaryRequest(path, identity, identity, request, metadataOf(call.headers), deadlineOf(call.timeoutMs), (err, v) => {
          if (!err) value = v;
        });
        c.on("metadata", (md) => (headers = md));
        c.on("status", (status) => {
          if (status.code !== grpc.status.OK) return resolve(grpcJsError(status, headers));
          const res = fromBinary(call.method === "lookup" ? (LookupResponseSchema as unknown as typeof UnaryResponseSchema) : UnaryResponseSchema, value!);
          resolve({ code: "OK", headers: confHeaders(Object.entries(headers?.toJSON() ?? {})), trailers: confHeaders(Object.entries(status.metadata.toJSON())), result: resultView(res.result), responseUnknownFields: unknownCount(res) });
        });
        if (call.cancel) void target.watch(callId).started.then(() => c.cancel());
      });
      if (call.watchAbort) await noteAbort(outcome, target, callId);
      return outcome;
    },
    async stream(target, call) {
      const client = clientFor(target, { gzip: call.sendGzip, readMaxBytes: call.readMaxBytes });
      const callId = newCallId("grpc-js-stream");
      const request = Buffer.from(toBinary(ServerStreamRequestSchema, streamRequestMessage(call, callId)));
      let headers: grpc.Metadata | undefined;
      let messages = 0;
      let intact = true;
      let stalled: boolean | undefined;
      let note: string | undefined;
      const outcome = await new Promise<Outcome>((resolve) => {
        const s = client.makeServerStreamRequest(`/${ConformanceService.typeName}/ServerStream`, identity, identity, request, metadataOf(call.headers), deadlineOf(call.timeoutMs));
        s.on("metadata", (md) => (headers = md));
        s.on("data", (b: Buffer) => {
          const m = fromBinary(ServerStreamResponseSchema, b);
          if (m.index !== messages || !Buffer.from(m.payload).equals(Buffer.from(payload(m.payload.length, m.index)))) intact = false;
          messages++;
          if (messages === 1 && call.pauseAfterFirst) {
            s.pause();
            void stalledBefore(target.watch(callId), call.request.count ?? 0).then((r) => {
              stalled = r.stalled;
              note = `${r.produced} produced while paused`;
              s.resume();
            });
          }
          if (messages === 1 && call.cancelAfterFirst) s.cancel();
        });
        // The call is over when its status is in and every message was read ("end", or "error" for a failed call).
        let status: grpc.StatusObject | undefined;
        let drained = false;
        const settle = () => {
          if (!status || !drained) return;
          if (status.code !== grpc.status.OK) return resolve(grpcJsError(status, headers));
          resolve({ code: "OK", headers: confHeaders(Object.entries(headers?.toJSON() ?? {})), trailers: confHeaders(Object.entries(status.metadata.toJSON())) });
        };
        s.on("error", () => ((drained = true), settle()));
        s.on("end", () => ((drained = true), settle()));
        s.on("status", (st) => ((status = st), settle()));
      });
      outcome.messages = messages;
      if (messages) outcome.messagesIntact = intact;
      if (stalled !== undefined) outcome.stalled = stalled;
      if (note) outcome.note = note;
      if (call.watchAbort) await noteAbort(outcome, target, callId);
      return outcome;
    },
  };
}

/** Every Node client, cleartext and (when `tls`) over TLS. */
export function nodeClients(tls: Tls | undefined): NodeClient[] {
  const list: NodeClient[] = [
    connectNode({ name: "connect-node Connect JSON HTTP/1.1", protocol: "connect", binary: false, http: "1.1", tls: false }, tls),
    connectNode({ name: "connect-node Connect binary HTTP/1.1", protocol: "connect", binary: true, http: "1.1", tls: false }, tls),
    connectNode({ name: "connect-node Connect binary h2c", protocol: "connect", binary: true, http: "2", tls: false }, tls),
    connectNode({ name: "connect-node Connect JSON h2c", protocol: "connect", binary: false, http: "2", tls: false }, tls),
    connectNode({ name: "connect-node gRPC h2c", protocol: "grpc", binary: true, http: "2", tls: false }, tls),
    connectNode({ name: "connect-node gRPC JSON h2c", protocol: "grpc", binary: false, http: "2", tls: false }, tls),
    connectNode({ name: "connect-node gRPC-Web HTTP/1.1", protocol: "grpc-web", binary: true, http: "1.1", tls: false }, tls),
    connectNode({ name: "connect-node gRPC-Web h2c", protocol: "grpc-web", binary: true, http: "2", tls: false }, tls),
    kitClient({ name: "kit gRPC client h2c", tls: false }, tls),
    grpcJsClient({ name: "@grpc/grpc-js h2c", tls: false }, tls),
  ];
  if (tls) {
    list.push(
      connectNode({ name: "connect-node Connect JSON HTTP/1.1 TLS", protocol: "connect", binary: false, http: "1.1", tls: true }, tls),
      connectNode({ name: "connect-node Connect binary h2 TLS", protocol: "connect", binary: true, http: "2", tls: true }, tls),
      connectNode({ name: "connect-node gRPC h2 TLS", protocol: "grpc", binary: true, http: "2", tls: true }, tls),
      connectNode({ name: "connect-node gRPC-Web HTTP/1.1 TLS", protocol: "grpc-web", binary: true, http: "1.1", tls: true }, tls),
      kitClient({ name: "kit gRPC client h2 TLS", tls: true }, tls),
      grpcJsClient({ name: "@grpc/grpc-js h2 TLS", tls: true }, tls),
    );
  }
  return list;
}

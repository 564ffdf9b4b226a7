/**
 * Minimal OTLP trace receivers for tests, decoding what the kit's exporters send with the
 * protocol's own schema (the OTLP .proto files in ../proto, loaded by @grpc/proto-loader):
 *
 * - `startOtlpReceiver()`: OTLP/HTTP. POSTs of either encoding, told apart by Content-Type as the
 *   spec says: `application/x-protobuf` (http/protobuf, @opentelemetry/exporter-trace-otlp-proto)
 *   or `application/json` (http/json, @opentelemetry/exporter-trace-otlp-http); anything else gets
 *   415. Any path is accepted, so a test can check where the exporter sent them (`paths`:
 *   /v1/traces for OTEL_EXPORTER_OTLP_ENDPOINT, the URL as given for
 *   OTEL_EXPORTER_OTLP_TRACES_ENDPOINT). The answer is an empty ExportTraceServiceResponse in the
 *   request's encoding.
 * - `startOtlpGrpcReceiver()`: OTLP/gRPC, a @grpc/grpc-js server implementing
 *   opentelemetry.proto.collector.trace.v1.TraceService/Export (plaintext; `url` is
 *   http://127.0.0.1:PORT, `hostPort` the same without the scheme).
 *
 * Both collect spans with their resource's attributes, ids as lowercase hex whatever the encoding;
 * `waitFor` waits on a condition over them (bounded), never on time.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import { loadSync, type MethodDefinition, type PackageDefinition } from "@grpc/proto-loader";

export interface ReceivedSpan {
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  kind: number;
  service: string;
  scope: string;
  /** The attributes of the span's resource (service.name, OTEL_RESOURCE_ATTRIBUTES, ...). */
  resource: Record<string, unknown>;
  /** The request path the span was exported to (gRPC: the method's path). */
  path: string;
  attributes: Record<string, unknown>;
  status: { code?: number; message?: string };
}

interface OtlpValue {
  stringValue?: string;
  intValue?: string | number;
  boolValue?: boolean;
  doubleValue?: number;
}
interface OtlpKv {
  key: string;
  value?: OtlpValue;
}
/** Trace and span ids: hex strings in OTLP/JSON, bytes in protobuf. */
type Id = string | Uint8Array | undefined;
/** An ExportTraceServiceRequest as OTLP/JSON spells it, or as proto-loader decodes the protobuf (same camelCase names). */
interface ExportRequest {
  resourceSpans?: {
    resource?: { attributes?: OtlpKv[] };
    scopeSpans?: { scope?: { name?: string }; spans?: { traceId: Id; spanId: Id; parentSpanId?: Id; name: string; kind?: number; attributes?: OtlpKv[]; status?: { code?: number; message?: string } }[] }[];
  }[];
}

const valueOf = (v: OtlpValue = {}) => v.stringValue ?? (v.intValue !== undefined ? Number(v.intValue) : (v.boolValue ?? v.doubleValue));
const attrs = (kvs: OtlpKv[] = []) => Object.fromEntries(kvs.map((kv) => [kv.key, valueOf(kv.value)]));
const hex = (id: Id) => (id === undefined ? "" : typeof id === "string" ? id.toLowerCase() : Buffer.from(id).toString("hex"));

const TRACE_SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService";
let loaded: PackageDefinition | undefined;
/** The OTLP trace service's definition from the vendored protos (loaded once, on first use). */
function traceProtos(): PackageDefinition {
  loaded ??= loadSync("opentelemetry/proto/collector/trace/v1/trace_service.proto", {
    includeDirs: [fileURLToPath(new URL("../proto", import.meta.url))],
    longs: String, // int64 attribute values as strings, as OTLP/JSON has them
    enums: Number,
    defaults: false,
    oneofs: false,
  });
  return loaded;
}
const exportMethod = () => (traceProtos()[TRACE_SERVICE] as Record<string, MethodDefinition<ExportRequest, object>>).Export!;

/** An OTLP/HTTP export body decoded by its Content-Type; undefined for a type OTLP/HTTP does not define. */
export function decodeOtlpTraces(contentType: string | undefined, body: Buffer): ExportRequest | undefined {
  const type = (contentType ?? "").split(";")[0]!.trim().toLowerCase();
  if (type === "application/x-protobuf") return exportMethod().requestDeserialize(body);
  if (type === "application/json") return JSON.parse(body.toString("utf8")) as ExportRequest;
  return undefined;
}

/** The spans in one OTLP/HTTP export body (either encoding; 0 for a body that is neither). */
export function countOtlpSpans(contentType: string | undefined, body: Buffer): number {
  const request = decodeOtlpTraces(contentType, body);
  let n = 0;
  for (const rs of request?.resourceSpans ?? []) for (const ss of rs.scopeSpans ?? []) n += ss.spans?.length ?? 0;
  return n;
}

/** The success answer to an OTLP/HTTP export, in the request's encoding (an empty ExportTraceServiceResponse). */
export function otlpExportAnswer(contentType: string | undefined): { contentType: string; body: Buffer } {
  return /^application\/x-protobuf\b/i.test(contentType ?? "")
    ? { contentType: "application/x-protobuf", body: exportMethod().responseSerialize({}) }
    : { contentType: "application/json", body: Buffer.from("{}") };
}

export interface OtlpReceiver {
  /** http://127.0.0.1:PORT */
  url: string;
  /** 127.0.0.1:PORT (a gRPC endpoint without a scheme) */
  hostPort: string;
  spans: ReceivedSpan[];
  /** Export requests received. */
  requests: number;
  /** The path of each export request, in order. */
  paths: string[];
  /** The Content-Type of each export request, in order (gRPC: application/grpc). */
  contentTypes: string[];
  /** The headers (gRPC: metadata) of each export request, in order (OTEL_EXPORTER_OTLP_HEADERS). */
  headers: http.IncomingHttpHeaders[];
  waitFor(cond: (spans: ReceivedSpan[]) => boolean, timeoutMs?: number): Promise<ReceivedSpan[]>;
  close(): Promise<void>;
}

/** What both receivers keep: every request's path, type and headers, and the spans in it. */
function collector() {
  const spans: ReceivedSpan[] = [];
  const paths: string[] = [];
  const contentTypes: string[] = [];
  const headers: http.IncomingHttpHeaders[] = [];
  const listeners = new Set<() => void>();
  const record = (path: string, contentType: string, requestHeaders: http.IncomingHttpHeaders, body: ExportRequest) => {
    paths.push(path);
    contentTypes.push(contentType);
    headers.push(requestHeaders);
    for (const rs of body.resourceSpans ?? []) {
      const resource = attrs(rs.resource?.attributes);
      const service = String(resource["service.name"]);
      for (const ss of rs.scopeSpans ?? []) {
        for (const s of ss.spans ?? []) {
          spans.push({
            traceId: hex(s.traceId),
            spanId: hex(s.spanId),
            parentSpanId: hex(s.parentSpanId),
            name: s.name,
            kind: s.kind ?? 0,
            service,
            scope: ss.scope?.name ?? "",
            resource,
            path,
            attributes: attrs(s.attributes),
            status: s.status ?? {},
          });
        }
      }
    }
    for (const l of listeners) l();
  };
  const view = {
    spans,
    paths,
    contentTypes,
    headers,
    get requests() {
      return paths.length;
    },
    waitFor(cond: (spans: ReceivedSpan[]) => boolean, timeoutMs = 10_000) {
      return new Promise<ReceivedSpan[]>((resolve, reject) => {
        const check = () => {
          if (!cond(spans)) return;
          cleanup();
          resolve(spans);
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`OTLP receiver: condition not met within ${timeoutMs} ms; got ${spans.length} spans: ${spans.map((s) => s.name).join(", ")}`));
        }, timeoutMs);
        const cleanup = () => {
          clearTimeout(timer);
          listeners.delete(check);
        };
        listeners.add(check);
        check();
      });
    },
  };
  return { record, view };
}

export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const { record, view } = collector();
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const type = req.headers["content-type"];
      const body = req.method === "POST" ? decodeOtlpTraces(type, Buffer.concat(chunks)) : undefined;
      if (!body) {
        res.writeHead(415).end();
        return;
      }
      const answer = otlpExportAnswer(type);
      res.writeHead(200, { "content-type": answer.contentType }).end(answer.body);
      record(req.url ?? "", String(type), req.headers, body);
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const hostPort = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  return Object.assign(view, { url: `http://${hostPort}`, hostPort, close: () => new Promise<void>((r) => server.close(() => r())) });
}

export async function startOtlpGrpcReceiver(): Promise<OtlpReceiver> {
  const grpc = await import("@grpc/grpc-js");
  const { record, view } = collector();
  const service = traceProtos()[TRACE_SERVICE] as import("@grpc/grpc-js").ServiceDefinition;
  const server = new grpc.Server();
  server.addService(service, {
    Export(call: import("@grpc/grpc-js").ServerUnaryCall<ExportRequest, object>, callback: import("@grpc/grpc-js").sendUnaryData<object>) {
      const metadata = Object.fromEntries(Object.entries(call.metadata.getMap()).map(([k, v]) => [k, typeof v === "string" ? v : v.toString("utf8")]));
      callback(null, {});
      record(`/${TRACE_SERVICE}/Export`, "application/grpc", metadata, call.request);
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  const hostPort = `127.0.0.1:${port}`;
  return Object.assign(view, { url: `http://${hostPort}`, hostPort, close: async () => server.forceShutdown() });
}

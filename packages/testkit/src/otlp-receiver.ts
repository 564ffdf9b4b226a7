/**
 * A minimal OTLP/HTTP trace receiver for tests: POSTs of the JSON encoding (what
 * @opentelemetry/exporter-trace-otlp-http sends; anything else gets 415), on any path, so a test
 * can check where the exporter sent them (`paths`: /v1/traces for OTEL_EXPORTER_OTLP_ENDPOINT, the
 * URL as given for OTEL_EXPORTER_OTLP_TRACES_ENDPOINT). Collects spans with their resource's
 * attributes; `waitFor` waits on a condition over them (bounded), never on time.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";

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
  /** The request path the span was exported to. */
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
  value: OtlpValue;
}

const valueOf = (v: OtlpValue) => v.stringValue ?? (v.intValue !== undefined ? Number(v.intValue) : (v.boolValue ?? v.doubleValue));
const attrs = (kvs: OtlpKv[] = []) => Object.fromEntries(kvs.map((kv) => [kv.key, valueOf(kv.value)]));

export interface OtlpReceiver {
  url: string;
  spans: ReceivedSpan[];
  /** Export requests received. */
  requests: number;
  /** The path of each export request, in order. */
  paths: string[];
  /** The headers of each export request, in order (OTEL_EXPORTER_OTLP_HEADERS). */
  headers: http.IncomingHttpHeaders[];
  waitFor(cond: (spans: ReceivedSpan[]) => boolean, timeoutMs?: number): Promise<ReceivedSpan[]>;
  close(): Promise<void>;
}

export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const spans: ReceivedSpan[] = [];
  const listeners = new Set<() => void>();
  const paths: string[] = [];
  const headers: http.IncomingHttpHeaders[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      if (req.method !== "POST" || !String(req.headers["content-type"]).startsWith("application/json")) {
        res.writeHead(415).end();
        return;
      }
      const path = req.url ?? "";
      paths.push(path);
      headers.push(req.headers);
      const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as {
        resourceSpans: { resource: { attributes: OtlpKv[] }; scopeSpans: { scope: { name: string }; spans: (Omit<ReceivedSpan, "attributes" | "service" | "scope" | "resource" | "path"> & { attributes: OtlpKv[] })[] }[] }[];
      };
      for (const rs of body.resourceSpans ?? []) {
        const resource = attrs(rs.resource.attributes);
        const service = String(resource["service.name"]);
        for (const ss of rs.scopeSpans ?? []) {
          for (const s of ss.spans ?? []) {
            spans.push({ ...s, parentSpanId: s.parentSpanId ?? "", service, scope: ss.scope.name, resource, path, attributes: attrs(s.attributes), status: s.status ?? {} });
          }
        }
      }
      res.writeHead(200, { "content-type": "application/json" }).end("{}");
      for (const l of listeners) l();
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    spans,
    paths,
    headers,
    get requests() {
      return paths.length;
    },
    waitFor(cond, timeoutMs = 10_000) {
      return new Promise((resolve, reject) => {
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
    close: () => new Promise((r) => server.close(() => r())),
  };
}

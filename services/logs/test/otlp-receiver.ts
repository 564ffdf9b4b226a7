/**
 * A minimal OTLP/HTTP trace receiver for tests: POST /v1/traces with the JSON encoding
 * (what @opentelemetry/exporter-trace-otlp-http sends). Collects spans; `waitFor` waits on a
 * condition over them (bounded), never on time.
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
  requests: number;
  waitFor(cond: (spans: ReceivedSpan[]) => boolean, timeoutMs?: number): Promise<ReceivedSpan[]>;
  close(): Promise<void>;
}

export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const spans: ReceivedSpan[] = [];
  const listeners = new Set<() => void>();
  let requests = 0;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      if (req.method !== "POST" || req.url !== "/v1/traces" || !String(req.headers["content-type"]).startsWith("application/json")) {
        res.writeHead(415).end();
        return;
      }
      requests++;
      const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as {
        resourceSpans: { resource: { attributes: OtlpKv[] }; scopeSpans: { scope: { name: string }; spans: (Omit<ReceivedSpan, "attributes" | "service" | "scope"> & { attributes: OtlpKv[] })[] }[] }[];
      };
      for (const rs of body.resourceSpans ?? []) {
        const service = String(attrs(rs.resource.attributes)["service.name"]);
        for (const ss of rs.scopeSpans ?? []) {
          for (const s of ss.spans ?? []) {
            spans.push({ ...s, parentSpanId: s.parentSpanId ?? "", service, scope: ss.scope.name, attributes: attrs(s.attributes), status: s.status ?? {} });
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
    get requests() {
      return requests;
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

/**
 * A stand-in Loki for tests: POST /loki/api/v1/push, checking every push against Loki's documented
 * JSON payload format (https://grafana.com/docs/loki/latest/reference/loki-http-api/#ingest-logs):
 *   Content-Type: application/json
 *   {"streams":[{"stream":{"<label>":"<value>",…},"values":[["<unix epoch ns>","<line>"(,{"<k>":"<v>"})?],…]}]}
 * A push that breaks the format is recorded in `violations` and answered 400, as Loki would.
 * `mode` makes it fail (status), or hang until released, to test retry and drop behaviour.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";

export interface LokiEntry {
  labels: Record<string, string>;
  ts: string;
  line: string;
  parsed: Record<string, unknown>;
  metadata?: Record<string, string>;
}

export interface LokiReceiver {
  url: string;
  entries: LokiEntry[];
  pushes: { status: number; entries: number; headers: http.IncomingHttpHeaders }[];
  violations: string[];
  /** "ok": 204; a number: answer that status; "hang": hold requests until `release()`. */
  mode: "ok" | "hang" | number;
  /** Status codes to answer for the next pushes, before `mode` applies again. */
  script: number[];
  release(): void;
  waitFor(cond: (r: LokiReceiver) => boolean, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

const labelName = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const highCardinality = new Set(["trace_id", "user_id", "span_id", "request_id", "msg", "message"]);

/** The format checks; returns what is wrong (empty when the push is valid). */
export function checkPush(contentType: string | undefined, body: string): string[] {
  const problems: string[] = [];
  if (!contentType?.startsWith("application/json")) problems.push(`content-type is ${contentType}, expected application/json`);
  let doc: unknown;
  try {
    doc = JSON.parse(body);
  } catch {
    return [...problems, "body is not JSON"];
  }
  const streams = (doc as { streams?: unknown }).streams;
  if (!Array.isArray(streams) || streams.length === 0) return [...problems, "streams must be a non-empty array"];
  const seen = new Set<string>();
  streams.forEach((s: { stream?: unknown; values?: unknown }, i) => {
    if (typeof s.stream !== "object" || s.stream === null || Object.keys(s.stream).length === 0) problems.push(`streams[${i}].stream must be a non-empty object of labels`);
    for (const [k, v] of Object.entries((s.stream ?? {}) as Record<string, unknown>)) {
      if (!labelName.test(k)) problems.push(`streams[${i}] label name ${k} is not a valid Prometheus label name`);
      if (typeof v !== "string" || v === "") problems.push(`streams[${i}] label ${k} must be a non-empty string`);
      if (highCardinality.has(k)) problems.push(`streams[${i}] label ${k} is high-cardinality`);
    }
    const key = JSON.stringify(s.stream);
    if (seen.has(key)) problems.push(`streams[${i}] repeats a label set (entries of one stream belong together)`);
    seen.add(key);
    if (!Array.isArray(s.values) || s.values.length === 0) {
      problems.push(`streams[${i}].values must be a non-empty array`);
      return;
    }
    let last = 0n;
    s.values.forEach((v: unknown, j) => {
      if (!Array.isArray(v) || (v.length !== 2 && v.length !== 3)) return problems.push(`streams[${i}].values[${j}] must be [ts, line] or [ts, line, metadata]`);
      const [ts, line, meta] = v as [unknown, unknown, unknown];
      if (typeof ts !== "string" || !/^\d{1,19}$/.test(ts)) return problems.push(`streams[${i}].values[${j}][0] must be the unix epoch in nanoseconds as a string`);
      if (BigInt(ts) < 1_000_000_000_000_000_000n) problems.push(`streams[${i}].values[${j}][0] is not in nanoseconds`);
      if (BigInt(ts) < last) problems.push(`streams[${i}].values[${j}] is older than the entry before it`);
      last = BigInt(ts);
      if (typeof line !== "string") problems.push(`streams[${i}].values[${j}][1] must be a string`);
      if (meta !== undefined && (typeof meta !== "object" || meta === null || Object.values(meta).some((x) => typeof x !== "string"))) {
        problems.push(`streams[${i}].values[${j}][2] structured metadata must be an object of strings`);
      }
    });
  });
  return problems;
}

export async function startLokiReceiver(): Promise<LokiReceiver> {
  const listeners = new Set<() => void>();
  const held: (() => void)[] = [];
  const notify = () => {
    for (const l of listeners) l();
  };
  const r: LokiReceiver = {
    url: "",
    entries: [],
    pushes: [],
    violations: [],
    mode: "ok",
    script: [],
    release() {
      r.mode = "ok";
      for (const h of held.splice(0)) h();
    },
    waitFor(cond, timeoutMs = 10_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (!cond(r)) return;
          done();
          resolve();
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`Loki receiver: condition not met within ${timeoutMs} ms (${r.pushes.length} pushes, ${r.entries.length} entries, violations: ${r.violations.join("; ") || "none"})`));
        }, timeoutMs);
        const done = () => {
          clearTimeout(timer);
          listeners.delete(check);
        };
        listeners.add(check);
        check();
      });
    },
    close: () => new Promise((res) => {
      r.release();
      server.closeAllConnections();
      server.close(() => res());
    }),
  };
  const answer = (req: http.IncomingMessage, res: http.ServerResponse, body: string) => {
    if (req.method !== "POST" || req.url !== "/loki/api/v1/push") {
      res.writeHead(404).end("404 page not found\n");
      return;
    }
    const scripted = r.script.shift();
    const status = scripted ?? (typeof r.mode === "number" ? r.mode : 204);
    if (status >= 300) {
      r.pushes.push({ status, entries: 0, headers: req.headers });
      res.writeHead(status, { "content-type": "text/plain" }).end(status === 400 ? "entry too far behind\n" : "ingester unavailable\n");
      notify();
      return;
    }
    const problems = checkPush(req.headers["content-type"], body);
    if (problems.length) {
      r.violations.push(...problems);
      r.pushes.push({ status: 400, entries: 0, headers: req.headers });
      res.writeHead(400).end(problems.join("\n"));
      notify();
      return;
    }
    let n = 0;
    for (const s of (JSON.parse(body) as { streams: { stream: Record<string, string>; values: [string, string, Record<string, string>?][] }[] }).streams) {
      for (const [ts, line, metadata] of s.values) {
        n++;
        r.entries.push({ labels: s.stream, ts, line, parsed: JSON.parse(line) as Record<string, unknown>, ...(metadata ? { metadata } : {}) });
      }
    }
    r.pushes.push({ status: 204, entries: n, headers: req.headers });
    res.writeHead(204).end();
    notify();
  };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString("utf8");
      if (r.mode === "hang" && r.script.length === 0) held.push(() => answer(req, res, body));
      else answer(req, res, body);
    });
  });
  await new Promise<void>((res) => server.listen(0, "127.0.0.1", res));
  r.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return r;
}

/**
 * The webhooks scenario's receivers, in their own process: `RECEIVERS` healthy endpoints and one
 * slow one (answers after `SLOW_MS`), each an HTTP/1.1 server on its own port (as separate
 * receivers are: no connection pool is shared between them). Each healthy receiver verifies the
 * Standard Webhooks signature with the `standardwebhooks` package (`Webhook.verify`, the secret the
 * bench hands over), answers 204 (400 on a bad signature), and counts per endpoint: the event keys
 * seen (the "wh|<run>|<k>|<sent epoch ms>" stamp in the payload), the webhook-ids each key came
 * under (two ids for one key: an event sent as two events), repeats of the same id (at least once
 * after a crash), and arrival − send time.
 *
 * Control (JSON over HTTP on the port it prints: {"bench_ready":true,"port":N,"ports":[…],"slowPort":M}):
 *   POST /secrets {secrets: string[]}            the i-th healthy receiver's secret, then the slow one's
 *   POST /reset {run}                            forget everything; count only stamps of `run`
 *   POST /down {indices} · POST /up {indices}    take receivers down (connections reset) / bring them back on the same port
 *   POST /stats {expected: number[]}             lost (expected keys missing), two ids, repeats, bad signatures, latency
 */
import http from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { Webhook } from "standardwebhooks";

const count = Number(process.env.RECEIVERS ?? 50);
const slowMs = Number(process.env.SLOW_MS ?? 30_000);
const now = () => performance.timeOrigin + performance.now();
const stampRe = /wh\|([a-z0-9]+)\|(\d+)\|([\d.]+)/;

interface Endpoint {
  port: number;
  server: http.Server | undefined;
  sockets: Set<Socket>;
  verifier: Webhook | undefined;
  /** key → the webhook-ids it came under */
  ids: Map<number, string[]>;
  received: number;
  badSignatures: number;
  other: number;
  slow: boolean;
  latencies: number[];
}

let run = "";
/** The first and the last first arrival of this run's events (epoch ms). */
let firstAt = 0;
let lastAt = 0;

function handler(e: Endpoint) {
  return (req: http.IncomingMessage, res: http.ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const at = now();
      e.received++;
      if (e.slow) {
        // Takes SLOW_MS to answer (the service gives up after its own timeout and retries).
        const t = setTimeout(() => res.writeHead(200).end(), slowMs);
        res.on("close", () => clearTimeout(t));
        return;
      }
      const body = Buffer.concat(chunks).toString("utf8");
      try {
        e.verifier!.verify(body, req.headers as Record<string, string>);
      } catch {
        e.badSignatures++;
        res.writeHead(400).end("bad signature");
        return;
      }
      const m = stampRe.exec(body);
      if (!m || m[1] !== run) {
        e.other++;
        res.writeHead(204).end();
        return;
      }
      const k = Number(m[2]);
      const id = String(req.headers["webhook-id"]);
      const seen = e.ids.get(k);
      if (!seen) {
        e.ids.set(k, [id]);
        e.latencies.push(at - Number(m[3]));
        if (!firstAt) firstAt = at;
        lastAt = at;
      } else seen.push(id);
      res.writeHead(204).end();
    });
  };
}

async function up(e: Endpoint) {
  if (e.server) return;
  const server = http.createServer({ keepAliveTimeout: 65_000 }, handler(e));
  server.on("connection", (s) => {
    e.sockets.add(s);
    s.on("close", () => e.sockets.delete(s));
  });
  await new Promise<void>((ok) => server.listen(e.port, "127.0.0.1", ok));
  e.port = (server.address() as AddressInfo).port;
  e.server = server;
}

async function down(e: Endpoint) {
  const s = e.server;
  if (!s) return;
  e.server = undefined;
  for (const sock of e.sockets) sock.destroy();
  await new Promise<void>((ok) => s.close(() => ok()));
}

const endpoints: Endpoint[] = Array.from({ length: count + 1 }, (_, i) => ({
  port: 0, server: undefined, sockets: new Set(), verifier: undefined, ids: new Map(), received: 0, badSignatures: 0, other: 0, slow: i === count, latencies: [],
}));
for (const e of endpoints) await up(e);

function stats(expected: number[]) {
  const healthy = endpoints.filter((e) => !e.slow);
  let lost = 0;
  let twoIds = 0;
  let repeats = 0;
  const lostPerEndpoint: number[] = [];
  for (const e of healthy) {
    let l = 0;
    for (const k of expected) if (!e.ids.has(k)) l++;
    lost += l;
    lostPerEndpoint.push(l);
    for (const ids of e.ids.values()) {
      if (ids.length > 1) {
        if (new Set(ids).size > 1) twoIds++;
        repeats += ids.length - 1;
      }
    }
  }
  const lat = Float64Array.from(healthy.flatMap((e) => e.latencies)).sort();
  const pct = (p: number) => (lat.length ? lat[Math.min(lat.length - 1, Math.max(0, Math.ceil((p / 100) * lat.length) - 1))]! : NaN);
  const arrivals = healthy.reduce((n, e) => n + e.ids.size, 0);
  return {
    arrivals,
    lost,
    lostEndpoints: lostPerEndpoint.filter((l) => l > 0).length,
    twoIds,
    repeats,
    badSignatures: endpoints.reduce((n, e) => n + e.badSignatures, 0),
    other: healthy.reduce((n, e) => n + e.other, 0),
    slowRequests: endpoints[count]!.received,
    p50Ms: pct(50),
    p99Ms: pct(99),
    maxMs: lat.length ? lat[lat.length - 1]! : NaN,
    firstAt,
    lastAt,
  };
}

const control = http.createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on("data", (c: Buffer) => chunks.push(c));
  req.on("end", () => {
    void (async () => {
      const body = (chunks.length ? JSON.parse(Buffer.concat(chunks).toString("utf8")) : {}) as { secrets?: string[]; run?: string; indices?: number[]; expected?: number[] };
      let out: unknown = {};
      switch (req.url) {
        case "/secrets":
          body.secrets!.forEach((s, i) => (endpoints[i]!.verifier = new Webhook(s)));
          break;
        case "/reset":
          run = body.run!;
          firstAt = lastAt = 0;
          for (const e of endpoints) (e.ids = new Map()), (e.received = 0), (e.badSignatures = 0), (e.other = 0), (e.latencies = []);
          break;
        case "/down":
          await Promise.all(body.indices!.map((i) => down(endpoints[i]!)));
          break;
        case "/up":
          await Promise.all(body.indices!.map((i) => up(endpoints[i]!)));
          break;
        case "/stats":
          out = stats(body.expected ?? []);
          break;
        default:
          res.writeHead(404).end();
          return;
      }
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(out));
    })().catch((err: unknown) => res.writeHead(500).end(String(err)));
  });
});
control.listen(0, "127.0.0.1", () => {
  console.log(JSON.stringify({ bench_ready: true, port: (control.address() as AddressInfo).port, ports: endpoints.slice(0, count).map((e) => e.port), slowPort: endpoints[count]!.port }));
});
process.on("SIGTERM", () => process.exit(0));

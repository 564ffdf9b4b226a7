/**
 * Prometheus metrics of one process (prom-client), served at GET /metrics: on the ops port when the
 * main port is TLS, on the main port otherwise (all-in-one).
 *
 * RED per RPC: crm_rpc_requests_total{service,rpc,code}, crm_rpc_errors_total{service,rpc,code},
 * crm_rpc_duration_seconds{service,rpc} (unary calls; streams are counted when they end).
 * Queues and the outbox: crm_queue_depth{queue}, crm_outbox_pending, crm_outbox_lag_seconds, fed by
 * hooks the owners call (`setQueueDepth`, `watchQueueDepth`, `setOutboxLag`). Watched queues: the
 * email service's work and dead-letter queues, each chats replica's chat.events queue (both through
 * `EventBus.queueDepth`), the logs service's Loki buffer.
 * Plus Node's default process metrics (CPU, memory, event-loop lag, GC).
 */
import type http from "node:http";
import type http2 from "node:http2";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { Counter, Gauge, Registry, collectDefaultMetrics } from "prom-client";
import { callNext, methodPath } from "./interceptors.js";
import { codeName } from "./tracing-interceptor.js";

export const metricsRegistry = new Registry();
collectDefaultMetrics({ register: metricsRegistry, prefix: "crm_" });

/**
 * Successful calls per label set, counted with a plain increment and added to the counter at each
 * scrape (prom-client hashes the labels on every inc). Shared by every interceptor of the process
 * (the all-in-one's in-process peers count the same methods).
 */
const okCounts = new Map<string, { labels: { service: string; rpc: string; code: "ok" }; n: number }>();
const rpcRequests = new Counter({
  name: "crm_rpc_requests_total",
  help: "RPCs handled, by service, method path and Connect code (ok for success).",
  labelNames: ["service", "rpc", "code"] as const,
  registers: [metricsRegistry],
  collect() {
    for (const ok of okCounts.values()) {
      if (ok.n > 0) this.inc(ok.labels, ok.n);
      ok.n = 0;
    }
  },
});
const rpcErrors = new Counter({
  name: "crm_rpc_errors_total",
  help: "RPCs that failed, by service, method path and Connect code.",
  labelNames: ["service", "rpc", "code"] as const,
  registers: [metricsRegistry],
});
interface Series {
  labels: Record<string, string>;
  /** Observations per bucket (not cumulative); the last one is +Inf. */
  counts: number[];
  sum: number;
  count: number;
}

/**
 * A Prometheus histogram whose series are looked up once by their owner (one per RPC method) and
 * registered with prom-client as a custom metric. prom-client's Histogram validates and hashes the
 * labels and allocates on every observation, a few percent of a small RPC's CPU; here an
 * observation is a bucket scan and three additions. The exposition is prom-client's.
 */
export class SeriesHistogram {
  readonly type = "histogram";
  readonly aggregator = "sum";
  readonly #series = new Map<string, Series>();
  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly string[],
    private readonly bounds: number[],
  ) {}
  /** The series of `labels` (the same one for equal labels: Prometheus refuses a scrape with a series twice). */
  series(labels: Record<string, string>): Series {
    const key = JSON.stringify(labels);
    let s = this.#series.get(key);
    if (!s) this.#series.set(key, (s = { labels, counts: new Array<number>(this.bounds.length + 1).fill(0), sum: 0, count: 0 }));
    return s;
  }
  observe(s: Series, value: number) {
    let i = 0;
    while (i < this.bounds.length && value > this.bounds[i]!) i++;
    s.counts[i]!++;
    s.sum += value;
    s.count++;
  }
  async get() {
    const values: { labels: Record<string, string | number>; value: number; metricName: string }[] = [];
    for (const s of this.#series.values()) {
      let cumulative = 0;
      s.counts.forEach((n, i) => {
        cumulative += n;
        values.push({ labels: { ...s.labels, le: i < this.bounds.length ? this.bounds[i]! : "+Inf" }, value: cumulative, metricName: `${this.name}_bucket` });
      });
      values.push({ labels: s.labels, value: s.sum, metricName: `${this.name}_sum` }, { labels: s.labels, value: s.count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }
  reset() {
    for (const s of this.#series.values()) Object.assign(s, { counts: s.counts.map(() => 0), sum: 0, count: 0 });
  }
}

const rpcDuration = new SeriesHistogram("crm_rpc_duration_seconds", "Latency of unary RPCs in seconds, handler and interceptors included.", ["service", "rpc"], [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]);
metricsRegistry.registerMetric(rpcDuration as unknown as Parameters<Registry["registerMetric"]>[0]);

const queueWatchers = new Map<string, () => number | Promise<number>>();
const queueDepth = new Gauge({
  name: "crm_queue_depth",
  help: "Messages waiting in a queue (RabbitMQ queues, in-memory buffers).",
  labelNames: ["queue"] as const,
  registers: [metricsRegistry],
  async collect() {
    await Promise.all(
      [...queueWatchers].map(async ([queue, read]) => {
        try {
          this.set({ queue }, await read());
        } catch {
          // the queue's owner could not answer now; keep the last value
        }
      }),
    );
  },
});
const outboxPending = new Gauge({ name: "crm_outbox_pending", help: "Outbox rows not yet relayed to RabbitMQ.", registers: [metricsRegistry] });
const outboxLag = new Gauge({ name: "crm_outbox_lag_seconds", help: "Age of the oldest outbox row not yet relayed (0 when empty).", registers: [metricsRegistry] });

/** Sets the depth of a queue (call whenever it is known). */
export function setQueueDepth(queue: string, depth: number) {
  queueDepth.set({ queue }, depth);
}

/** Reads a queue's depth at every scrape (e.g. a RabbitMQ passive checkQueue). Returns an unwatch function. */
export function watchQueueDepth(queue: string, read: () => number | Promise<number>): () => void {
  queueWatchers.set(queue, read);
  return () => {
    // only its own watcher: another owner may have taken the name since (a replica in a test process)
    if (queueWatchers.get(queue) === read) queueWatchers.delete(queue);
  };
}

/** The outbox relay reports how far behind it is. */
export function setOutboxLag(lagSeconds: number, pending: number) {
  outboxLag.set(lagSeconds);
  outboxPending.set(pending);
}

/** RED metrics per RPC; `serviceOf` names the service (module) that owns a proto service. */
export function metricsInterceptor(serviceOf: (typeName: string) => string): Interceptor {
  // Each method's labels, series and success count, looked up once (not per call).
  const perMethod = new Map<string, { labels: { service: string; rpc: string }; duration: Series; ok: { n: number } }>();
  const metricsOf = (req: { service: { typeName: string }; method: { name: string } }) => {
    const rpc = methodPath(req);
    let m = perMethod.get(rpc);
    if (!m) {
      const labels = { service: serviceOf(req.service.typeName), rpc };
      const key = JSON.stringify(labels);
      let ok = okCounts.get(key);
      if (!ok) okCounts.set(key, (ok = { labels: { ...labels, code: "ok" }, n: 0 }));
      m = { labels, duration: rpcDuration.series(labels), ok };
      perMethod.set(rpc, m);
    }
    return m;
  };
  return (next) => (req) => {
    const m = metricsOf(req);
    const started = performance.now();
    const done = (err: unknown) => {
      if (err === undefined) return void m.ok.n++;
      const code = codeName(err instanceof ConnectError ? err.code : Code.Unknown);
      rpcRequests.inc({ ...m.labels, code });
      rpcErrors.inc({ ...m.labels, code });
    };
    const failed = (err: unknown) => {
      rpcDuration.observe(m.duration, (performance.now() - started) / 1000);
      done(err);
      return Promise.reject(err);
    };
    return callNext(next, req).then((res) => {
      if (!res.stream) {
        rpcDuration.observe(m.duration, (performance.now() - started) / 1000);
        done(undefined);
        return res;
      }
      const source = res.message;
      async function* counted() {
        let failed: unknown;
        try {
          yield* source;
        } catch (err) {
          failed = err;
          throw err;
        } finally {
          done(failed); // also when the client went away (the stream was returned early)
        }
      }
      return { ...res, message: counted() };
    }, failed);
  };
}

/** Serves GET /metrics in the Prometheus text format. */
export function serveMetrics(res: http.ServerResponse | http2.Http2ServerResponse) {
  metricsRegistry.metrics().then(
    (text) => {
      (res as http.ServerResponse).writeHead(200, { "content-type": metricsRegistry.contentType });
      res.end(text);
    },
    (err: unknown) => {
      (res as http.ServerResponse).writeHead(500, { "content-type": "text/plain" });
      res.end(`metrics failed: ${String(err)}`);
    },
  );
}

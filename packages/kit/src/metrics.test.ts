/** /metrics: on the main port of a cleartext server (all-in-one), on the ops port of a TLS server; RED per RPC. */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { CacheService } from "@crm/gen/crm/cache/v1/cache_pb";
import { need } from "@crm/testkit";
import type { TokenVerifier } from "./auth.js";
import { AppError } from "./errors.js";
import { createLogger } from "./logger.js";
import { SeriesHistogram, setOutboxLag, setQueueDepth, watchQueueDepth } from "./metrics.js";
import { startServer, type ServiceModule } from "./server.js";

const log = createLogger("test", "silent");
const nobody: TokenVerifier = { verify: async () => { throw new AppError("token_invalid", "no tokens in this test"); } };
const GET = `/${CacheService.typeName}/Get`;
const probe: ServiceModule = {
  name: "probe",
  services: [CacheService],
  publicMethods: [GET],
  routes: (router) =>
    void router.service(CacheService, {
      async get(req) {
        if (req.key === "missing") throw new AppError("not_found", "no such key");
        return { value: new Uint8Array([1]) };
      },
    }),
};
const dir = mkdtempSync(join(tmpdir(), "crm-metrics-"));
after(() => rmSync(dir, { recursive: true, force: true }));

test("cleartext server: GET /metrics on the main port counts requests, errors by code and latency per RPC", async () => {
  const server = await startServer({ modules: [probe], port: 0, host: "127.0.0.1", log, verifier: nobody, readMaxBytes: 1 << 20, shutdownTimeoutMs: 2_000 });
  try {
    const client = createClient(CacheService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${server.port}` }));
    await client.get({ key: "k" });
    await client.get({ key: "k" });
    await client.get({ key: "missing" }).catch(() => {});
    await client.save({ key: "k", value: new Uint8Array(), ttlSeconds: 1 }).catch(() => {}); // unauthenticated
    setQueueDepth("email_tasks", 7);
    const unwatch = watchQueueDepth("chat.events", async () => 3);
    setOutboxLag(1.5, 4);
    const res = await fetch(`http://127.0.0.1:${server.port}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type")!, /^text\/plain/);
    const text = await res.text();
    unwatch();
    assert.match(text, /crm_rpc_requests_total\{service="probe",rpc="\/crm.cache.v1.CacheService\/Get",code="ok"\} 2/);
    assert.match(text, /crm_rpc_requests_total\{service="probe",rpc="\/crm.cache.v1.CacheService\/Get",code="not_found"\} 1/);
    assert.match(text, /crm_rpc_errors_total\{service="probe",rpc="\/crm.cache.v1.CacheService\/Save",code="unauthenticated"\} 1/);
    assert.match(text, /crm_rpc_duration_seconds_count\{service="probe",rpc="\/crm.cache.v1.CacheService\/Get"\} 3/);
    assert.match(text, /crm_queue_depth\{queue="email_tasks"\} 7/);
    assert.match(text, /crm_queue_depth\{queue="chat.events"\} 3/);
    assert.match(text, /crm_outbox_lag_seconds 1.5/);
    assert.match(text, /crm_outbox_pending 4/);
    assert.match(text, /crm_process_resident_memory_bytes \d+/);
  } finally {
    await server.close();
  }
});

const hasOpenssl = spawnSync("openssl", ["version"]).status === 0;
test("TLS server: /metrics is served on the plaintext ops port", { skip: need("openssl", hasOpenssl, "apt-get install openssl") }, async () => {
  const { ensureDevPki } = await import("../../../scripts/certs.mjs" as string);
  ensureDevPki(dir, { names: ["probe"] });
  const read = (n: string) => readFileSync(join(dir, n));
  const server = await startServer({
    modules: [probe],
    port: 0,
    host: "127.0.0.1",
    log,
    verifier: nobody,
    tls: { cert: read("probe.crt"), key: read("probe.key"), ca: read("ca.crt"), clientAuth: "require", serviceIdentities: new Set() },
    opsPort: 0,
    readMaxBytes: 1 << 20,
    shutdownTimeoutMs: 2_000,
  });
  try {
    const res = await fetch(`http://127.0.0.1:${server.opsPort}/metrics`);
    assert.equal(res.status, 200);
    assert.match(await res.text(), /# TYPE crm_rpc_requests_total counter/);
  } finally {
    await server.close();
  }
});

test("the RPC latency histogram exposes cumulative buckets, +Inf, sum and count as prom-client would, and resets to zero", async () => {
  const h = new SeriesHistogram("t_seconds", "test", ["service", "rpc"], [0.001, 0.01, 1]);
  const s = h.series({ service: "svc", rpc: "/a.B/C" });
  assert.equal(h.series({ service: "svc", rpc: "/a.B/C" }), s, "equal labels share one series (a second interceptor of the process, e.g. an in-process peer's)");
  for (const v of [0.0005, 0.001, 0.005, 2]) h.observe(s, v);
  const { values, type } = await h.get();
  assert.equal(type, "histogram");
  const line = (v: (typeof values)[number]) => `${v.metricName} ${JSON.stringify(v.labels)} ${v.value}`;
  assert.deepEqual(values.map(line), [
    't_seconds_bucket {"service":"svc","rpc":"/a.B/C","le":0.001} 2',
    't_seconds_bucket {"service":"svc","rpc":"/a.B/C","le":0.01} 3',
    't_seconds_bucket {"service":"svc","rpc":"/a.B/C","le":1} 3',
    't_seconds_bucket {"service":"svc","rpc":"/a.B/C","le":"+Inf"} 4',
    `t_seconds_sum {"service":"svc","rpc":"/a.B/C"} ${0.0005 + 0.001 + 0.005 + 2}`,
    't_seconds_count {"service":"svc","rpc":"/a.B/C"} 4',
  ]);
  h.reset();
  assert.ok((await h.get()).values.every((v) => v.value === 0));
});

/** A real Prometheus (Debian package `prometheus`) scrapes /metrics of the running all-in-one app. */
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { CacheService } from "@crm/gen/crm/cache/v1/cache_pb";
import { need, type TestApp } from "@crm/testkit";
import { newCompany, startApp } from "./app.js";

const prometheusBin = process.env.PROMETHEUS_BIN ?? "prometheus";
const hasPrometheus = spawnSync(prometheusBin, ["--version"], { stdio: "ignore" }).status === 0;
const skip = need("Prometheus", hasPrometheus, "apt-get install prometheus (or set PROMETHEUS_BIN)");

const freePort = () =>
  new Promise<number>((resolve) => {
    const s = net.createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });

let app: TestApp;
let prom: ChildProcess | undefined;
let dir: string;
let promUrl: string;
before(async () => {
  if (skip) return;
  app = await startApp();
  dir = mkdtempSync(join(tmpdir(), "crm-prom-"));
  const port = await freePort();
  promUrl = `http://127.0.0.1:${port}`;
  const target = new URL(app.baseUrl).host;
  writeFileSync(
    join(dir, "prometheus.yml"),
    `global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: crm\n    metrics_path: /metrics\n    static_configs:\n      - targets: ["${target}"]\n`,
  );
  prom = spawn(prometheusBin, [`--config.file=${join(dir, "prometheus.yml")}`, `--storage.tsdb.path=${join(dir, "data")}`, `--web.listen-address=127.0.0.1:${port}`, "--log.level=warn"], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  prom.stderr!.on("data", (d: Buffer) => process.stderr.write(`prometheus: ${d}`));
});
after(async () => {
  if (prom && prom.exitCode === null) {
    const exited = new Promise((r) => prom!.once("exit", r));
    prom.kill("SIGTERM");
    await exited;
  }
  await app?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Runs a PromQL instant query until it returns a sample (bounded; Prometheus scrapes every second). */
async function queryUntil(promql: string, timeoutMs = 30_000): Promise<{ metric: Record<string, string>; value: [number, string] }[]> {
  const deadline = Date.now() + timeoutMs;
  let last = "";
  for (;;) {
    try {
      const res = await fetch(`${promUrl}/api/v1/query?query=${encodeURIComponent(promql)}`);
      const body = (await res.json()) as { status: string; data?: { result: { metric: Record<string, string>; value: [number, string] }[] } };
      last = JSON.stringify(body).slice(0, 300);
      if (body.status === "success" && body.data!.result.length > 0) return body.data!.result;
    } catch (err) {
      last = String(err); // Prometheus still starting
    }
    if (Date.now() > deadline) assert.fail(`Prometheus query ${promql} returned nothing within ${timeoutMs} ms; last answer: ${last}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

test("Prometheus scrapes RED metrics per RPC from /metrics", { skip }, async () => {
  const { token } = await newCompany(app);
  const cache = app.client(CacheService, { token });
  await cache.save({ key: "k", value: new Uint8Array([1]), ttlSeconds: 60 });
  await cache.get({ key: "k" });
  await cache.get({ key: "missing" }).catch(() => {});

  const up = await queryUntil('up{job="crm"} == 1');
  assert.equal(up[0]!.value[1], "1", "the target is up");
  const ok = await queryUntil('crm_rpc_requests_total{service="cache",rpc="/crm.cache.v1.CacheService/Get",code="ok"}');
  assert.equal(ok[0]!.value[1], "1");
  const errors = await queryUntil('crm_rpc_errors_total{service="cache",code="not_found"}');
  assert.equal(errors[0]!.value[1], "1");
  const latency = await queryUntil('crm_rpc_duration_seconds_count{service="auth",rpc="/crm.auth.v1.AuthService/RegisterCompany"}');
  assert.equal(latency[0]!.value[1], "1");
  await queryUntil('crm_rpc_duration_seconds_bucket{service="cache",le="+Inf"}');
  await queryUntil("crm_process_resident_memory_bytes");
});

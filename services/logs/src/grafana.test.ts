/** The Grafana dashboard and datasources: valid, and every metric a panel queries is one this code exports. */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { parse } from "yaml";
import { metricsRegistry } from "@crm/kit";
import "./shipper.js"; // registers the crm_logs_* counters

const dir = new URL("../grafana/", import.meta.url);
const dashboard = JSON.parse(readFileSync(new URL("dashboards/crm-overview.json", dir), "utf8")) as {
  uid: string;
  panels: { id: number; type: string; title: string; datasource?: { uid: string }; targets?: { expr: string }[] }[];
  templating: { list: { name: string }[] };
};

test("every PromQL metric in the dashboard is exported by the services", async () => {
  const exported = new Set((await metricsRegistry.getMetricsAsJSON()).map((m) => m.name));
  const used = new Set<string>();
  for (const p of dashboard.panels) {
    if (p.datasource?.uid !== "prometheus") continue;
    for (const t of p.targets ?? []) for (const m of t.expr.matchAll(/\bcrm_[a-z0-9_]+/g)) used.add(m[0].replace(/_(bucket|count|sum)$/, ""));
  }
  assert.ok(used.size >= 8);
  for (const m of used) assert.ok(exported.has(m), `${m} is queried by the dashboard but not exported`);
});

test("the dashboard has the RED panels, queue depth, outbox lag and a Loki logs panel filtered by trace id", () => {
  const titles = dashboard.panels.map((p) => p.title);
  for (const t of ["Request rate per RPC", "Errors per RPC and code", "Latency p50 / p95 / p99 per RPC", "Queue depth", "Outbox lag"]) assert.ok(titles.includes(t), t);
  const logs = dashboard.panels.find((p) => p.type === "logs")!;
  assert.equal(logs.datasource?.uid, "loki");
  assert.match(logs.targets![0]!.expr, /\|= "\$trace_id"/);
  assert.ok(dashboard.templating.list.some((v) => v.name === "trace_id"));
  assert.equal(new Set(dashboard.panels.map((p) => p.id)).size, dashboard.panels.length, "panel ids are unique");
});

test("the datasources provisioning names the uids the dashboard uses", () => {
  const ds = parse(readFileSync(new URL("datasources.yaml", dir), "utf8")) as { datasources: { uid: string; type: string }[] };
  assert.deepEqual(ds.datasources.map((d) => [d.uid, d.type]), [["prometheus", "prometheus"], ["loki", "loki"]]);
  const providers = parse(readFileSync(new URL("dashboards.yaml", dir), "utf8")) as { providers: { type: string }[] };
  assert.equal(providers.providers[0]!.type, "file");
});

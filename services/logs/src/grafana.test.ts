/**
 * The Grafana dashboard (the chart's file, which local Grafana mounts too) has the panels the
 * issue asks for, and the local provisioning names its datasource uids. That every metric and label
 * it queries exists is charts/test/dashboard.test.ts.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { parse } from "yaml";

const dir = new URL("../grafana/", import.meta.url);
const dashboard = JSON.parse(readFileSync(new URL("../../../charts/crm/files/dashboards/crm-overview.json", import.meta.url), "utf8")) as {
  uid: string;
  panels: { id: number; type: string; title: string; datasource?: { uid: string }; targets?: { expr: string }[] }[];
  templating: { list: { name: string }[] };
};

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

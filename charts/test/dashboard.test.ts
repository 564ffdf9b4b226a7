/**
 * The Grafana dashboard (the chart's, which local Grafana loads too: services/logs/grafana) asks Prometheus
 * only for what the services export: every metric name in
 * its PromQL (panels and template variables) is one the kit's registry has (packages/kit/src/metrics.ts,
 * histogram series `_bucket`/`_sum`/`_count` included), and every label it filters, groups by or
 * shows in a legend is one of that metric's labels (or a label Prometheus adds to every target).
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { metricsRegistry } from "@crm/kit/metrics";
import "@crm/logs/shipper"; // registers the logs service's crm_logs_* counters
import { chartDir, repo } from "./lib.ts";

interface Target {
  datasource?: { type?: string };
  expr?: string;
  legendFormat?: string;
}
interface Panel {
  title?: string;
  datasource?: { type?: string };
  targets?: Target[];
  panels?: Panel[];
}
interface Variable {
  name: string;
  type: string;
  datasource?: { type?: string };
  query?: string | { query?: string };
}
interface Dashboard {
  panels: Panel[];
  templating?: { list: Variable[] };
}

/** What one PromQL expression references. */
export interface PromRefs {
  metrics: Set<string>;
  /** label name → the metrics of the selector it was used with (empty: a by/without/on clause, applies to all). */
  labels: Map<string, Set<string>>;
}

const KEYWORDS = new Set(["by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset", "and", "or", "unless", "atan2", "inf", "nan"]);
const CLAUSES = new Set(["by", "without", "on", "ignoring", "group_left", "group_right"]);
const AGGREGATIONS = new Set(["sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk", "topk", "quantile", "limitk", "limit_ratio"]);

/**
 * Metric and label names in a PromQL expression. Enough PromQL for dashboards: selectors with
 * matchers, functions and aggregations with by/without, binary operators with on/ignoring/group_*.
 */
export function promRefs(expr: string): PromRefs {
  const refs: PromRefs = { metrics: new Set(), labels: new Map() };
  const addLabel = (label: string, metric?: string) => {
    let set = refs.labels.get(label);
    if (!set) refs.labels.set(label, (set = new Set()));
    if (metric) set.add(metric);
  };
  // Strings, range/subquery brackets and durations carry no names.
  const src = expr.replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""').replace(/\[[^\]]*\]/g, " ");
  const tokens = src.match(/[A-Za-z_:][\w:]*|\d[\w.]*|\$\w+|=~|!~|!=|==|>=|<=|[{}(),=<>+\-*/%^]/g) ?? [];
  let lastMetric: string | undefined;
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    if (t === "{") {
      // matchers: name op "value", …; a selector without a metric name is {__name__=…} only
      const metric = tokens[i - 1] && /^[A-Za-z_:][\w:]*$/.test(tokens[i - 1]!) && !KEYWORDS.has(tokens[i - 1]!) ? lastMetric : undefined;
      for (i++; i < tokens.length && tokens[i] !== "}"; i++) {
        const name = tokens[i]!;
        if (/^[A-Za-z_][\w]*$/.test(name) && ["=", "!=", "=~", "!~"].includes(tokens[i + 1] ?? "")) addLabel(name, metric);
      }
      continue;
    }
    if (!/^[A-Za-z_:][\w:]*$/.test(t)) continue;
    const lower = t.toLowerCase();
    if (CLAUSES.has(lower)) {
      if (tokens[i + 1] !== "(") continue;
      for (i += 2; i < tokens.length && tokens[i] !== ")"; i++) if (/^[A-Za-z_]\w*$/.test(tokens[i]!)) addLabel(tokens[i]!);
      continue;
    }
    if (KEYWORDS.has(lower) || tokens[i + 1] === "(") continue; // a keyword or a function
    if (AGGREGATIONS.has(lower) && CLAUSES.has(tokens[i + 1]?.toLowerCase() ?? "")) continue; // sum by (…) (…)
    refs.metrics.add(t);
    lastMetric = t;
  }
  return refs;
}

/** label_values(metric, label) and friends of Grafana's Prometheus variable queries. */
function variableRefs(query: string): PromRefs {
  const lv = /^\s*label_values\(\s*(.*?)\s*,\s*([A-Za-z_]\w*)\s*\)\s*$/.exec(query);
  if (lv) {
    const refs = promRefs(lv[1]!);
    const metric = [...refs.metrics][0];
    refs.labels.set(lv[2]!, new Set(metric ? [metric] : []));
    return refs;
  }
  const qr = /^\s*query_result\((.*)\)\s*$/.exec(query);
  return promRefs(qr ? qr[1]! : query.replace(/^\s*(metrics|label_names)\(\s*\)\s*$/, ""));
}

/** Every metric series name the registry exposes, with its labels. */
async function exported(): Promise<Map<string, Set<string>>> {
  const out = new Map<string, Set<string>>();
  for (const m of await metricsRegistry.getMetricsAsJSON()) {
    const metric = metricsRegistry.getSingleMetric(m.name) as unknown as { labelNames?: string[] };
    const labels = new Set(metric.labelNames ?? []);
    for (const v of m.values) for (const l of Object.keys(v.labels)) labels.add(l);
    const type = String(m.type);
    if (type === "histogram") {
      out.set(`${m.name}_bucket`, new Set([...labels, "le"]));
      out.set(`${m.name}_sum`, labels);
      out.set(`${m.name}_count`, labels);
    } else if (type === "summary") {
      out.set(m.name, new Set([...labels, "quantile"]));
      out.set(`${m.name}_sum`, labels);
      out.set(`${m.name}_count`, labels);
    } else {
      out.set(m.name, labels);
    }
  }
  return out;
}

/** Labels Prometheus attaches to every scraped series (target labels), plus the name label. */
const TARGET_LABELS = new Set(["job", "instance", "__name__", "namespace", "pod", "container", "component"]);

const dashboardFiles = [join(chartDir, "files", "dashboards", "crm-overview.json")];

function promQueries(d: Dashboard): { where: string; refs: PromRefs; legend?: string }[] {
  const out: { where: string; refs: PromRefs; legend?: string }[] = [];
  const walk = (panels: Panel[]) => {
    for (const p of panels) {
      if (p.panels) walk(p.panels);
      for (const t of p.targets ?? []) if (t.expr && (t.datasource?.type ?? p.datasource?.type) === "prometheus") out.push({ where: `panel "${p.title}"`, refs: promRefs(t.expr), ...(t.legendFormat ? { legend: t.legendFormat } : {}) });
    }
  };
  walk(d.panels);
  for (const v of d.templating?.list ?? []) {
    if (v.type !== "query" || v.datasource?.type !== "prometheus") continue;
    const q = typeof v.query === "string" ? v.query : (v.query?.query ?? "");
    if (q) out.push({ where: `variable $${v.name}`, refs: variableRefs(q) });
  }
  return out;
}

describe("Grafana dashboard", () => {
  it("reads names out of PromQL", () => {
    const r = promRefs('histogram_quantile(0.95, sum by (le, service) (rate(crm_rpc_duration_seconds_bucket{service=~"$service", rpc!="x"}[$__rate_interval])))');
    assert.deepEqual([...r.metrics], ["crm_rpc_duration_seconds_bucket"]);
    assert.deepEqual([...r.labels.keys()].sort(), ["le", "rpc", "service"]);
    assert.deepEqual([...r.labels.get("rpc")!], ["crm_rpc_duration_seconds_bucket"]);
    const b = promRefs("sum(rate(a_total[5m])) / on (job) group_left sum without (code) (b_total) > bool 0");
    assert.deepEqual([...b.metrics].sort(), ["a_total", "b_total"]);
    assert.deepEqual([...b.labels.keys()].sort(), ["code", "job"]);
    assert.deepEqual([...variableRefs("label_values(crm_rpc_requests_total, service)").metrics], ["crm_rpc_requests_total"]);
  });

  for (const file of dashboardFiles) it(`${file.slice(repo.length + 1)} uses only metrics and labels the services export`, async () => {
    const dashboard = JSON.parse(readFileSync(file, "utf8")) as Dashboard;
    const known = await exported();
    const queries = promQueries(dashboard);
    assert.ok(queries.length >= 6, `the dashboard has its PromQL panels (${queries.length})`);
    const referenced = new Set<string>();
    for (const { where, refs, legend } of queries) {
      assert.ok(refs.metrics.size > 0, `${where}: no metric in the query`);
      for (const m of refs.metrics) {
        referenced.add(m.replace(/_(bucket|sum|count)$/, ""));
        assert.ok(known.has(m), `${where}: metric ${m} is not exported by packages/kit/src/metrics.ts`);
      }
      const all = new Set([...refs.metrics].flatMap((m) => [...(known.get(m) ?? [])]));
      for (const [label, on] of refs.labels) {
        if (TARGET_LABELS.has(label)) continue;
        const metrics = on.size > 0 ? [...on] : [...refs.metrics];
        assert.ok(
          metrics.some((m) => known.get(m)?.has(label)),
          `${where}: label ${label} is not a label of ${metrics.join(", ")} (they have ${[...all].join(", ") || "none"})`,
        );
      }
      for (const [, label] of (legend ?? "").matchAll(/\{\{\s*(\w+)\s*\}\}/g)) {
        assert.ok(TARGET_LABELS.has(label!) || all.has(label!), `${where}: legend {{${label}}} is not a label of ${[...refs.metrics].join(", ")}`);
      }
    }
    // the panels the issue asks for: request rate, errors, latency per RPC, queue depths, outbox lag
    for (const m of ["crm_rpc_requests_total", "crm_rpc_errors_total", "crm_rpc_duration_seconds", "crm_queue_depth", "crm_outbox_lag_seconds", "crm_outbox_pending"]) {
      assert.ok(referenced.has(m), `the dashboard shows ${m}`);
    }
  });
});

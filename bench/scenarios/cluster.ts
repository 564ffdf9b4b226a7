/**
 * 8 (cluster part). The local cluster (every service its own process, TLS + mTLS, NGINX in
 * front): time until every service logged "ready" and the gateway listens, then each process's
 * idle RSS. Floor: bare `node` idle RSS (in the startup scenario) × the number of processes.
 */
import { startBenchCluster, clusterProblem } from "../lib/cluster.js";
import { mb, sample, sampleAll } from "../lib/proc.js";
import type { Check, Ctx, Scenario, Table } from "../lib/report.js";
import { nginxProblem } from "../../services/gateway/run.mjs";
import { unreachable } from "@crm/testkit";

export const cluster: Scenario = {
  name: "cluster",
  title: "Local cluster: time to ready and each service's idle RSS",
  async missing() {
    const c = clusterProblem() ?? nginxProblem();
    if (c) return c;
    return unreachable("postgres", "redis", "rabbitmq");
  },
  async run(ctx: Ctx) {
    const t0 = performance.now();
    const bc = await startBenchCluster();
    const readyMs = performance.now() - t0;
    try {
      await new Promise((r) => setTimeout(r, ctx.quick ? 200 : 5_000));
      const rows: Table["rows"] = [];
      let total = 0;
      for (const [name, pid] of Object.entries(bc.pids)) {
        const s = sample(pid);
        total += s.rssBytes;
        rows.push([name, pid, mb(s.rssBytes), mb(s.peakBytes), s.cpuMs]);
      }
      const ng = sampleAll(bc.nginxPids());
      total += ng.rssBytes;
      rows.push([`nginx (master + ${bc.nginxPids().length - 1} workers)`, bc.cluster.nginx?.pid, mb(ng.rssBytes), mb(ng.peakBytes), ng.cpuMs]);
      rows.push(["**total**", undefined, mb(total), undefined, undefined]);
      ctx.log(`cluster ready in ${readyMs.toFixed(0)} ms; total idle RSS ${mb(total).toFixed(0)} MB`);
      const checks: Check[] = [
        { label: "cluster start (fresh database, all services, gateway) until ready", value: readyMs, unit: "ms", target: "informational" },
        { label: "total idle RSS of the cluster's processes", value: mb(total), unit: "MB", target: "informational" },
      ];
      return {
        rows: [],
        tables: [{ title: "", columns: ["process", "pid", "idle RSS MB", "peak RSS MB", "CPU ms since start"], rows }],
        checks,
        notes: ["services run from source (node --import tsx services/all/src/main.ts <name>), as scripts/cluster.mjs starts them; RSS is each process's own (shared library pages count in each)"],
      };
    } finally {
      await bc.stop();
    }
  },
};

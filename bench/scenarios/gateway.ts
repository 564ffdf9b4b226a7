/**
 * 2. Gateway: the same calls straight to the auth service (TLS) and through NGINX (TLS, mTLS to
 * the service), without a JWT check (grpc.health.v1.Health/Check, public) and with one
 * (AuthService/Check: the gateway's auth_request + njs verifier + its cache, then the service
 * verifies again). Floor: NGINX answering a static JSON body itself (/healthz).
 * 6. GetWorkingTimer (Redis-cached) through the gateway, against the same floor.
 * CPU is split: NGINX (master + workers) and the service process, each per request.
 */
import { readFileSync } from "node:fs";
import { connectJson, trustCa } from "../lib/app.js";
import { startBenchCluster, clusterProblem, type BenchCluster } from "../lib/cluster.js";
import { registerOwner, uniqueTag } from "../lib/crm.js";
import { combine, h2load, h2loadProblem, type LoadResult } from "../lib/h2load.js";
import { mb, sampleAll } from "../lib/proc.js";
import type { Check, Ctx, Scenario, Table } from "../lib/report.js";
import { nginxProblem } from "../../services/gateway/run.mjs";
import { unreachable } from "@crm/testkit";

interface Variant {
  label: string;
  floor?: boolean;
  base: "gateway" | "auth" | "timers";
  path: string;
  body: string;
  token?: boolean;
  /** Which service process's CPU to report ("" for none). */
  service: "" | "auth" | "timers";
}

const json = { "content-type": "application/json", "connect-protocol-version": "1" };

const variants: Variant[] = [
  { label: "NGINX static JSON (/healthz)", floor: true, base: "gateway", path: "/healthz", body: "", service: "" },
  { label: "direct → auth: Health/Check (TLS)", base: "auth", path: "/grpc.health.v1.Health/Check", body: '{"service":""}', service: "auth" },
  { label: "gateway → auth: Health/Check (no JWT check)", base: "gateway", path: "/grpc.health.v1.Health/Check", body: '{"service":""}', service: "auth" },
  { label: "direct → auth: AuthService/Check (token verified by the service)", base: "auth", path: "/crm.auth.v1.AuthService/Check", body: "{}", token: true, service: "auth" },
  { label: "gateway → auth: AuthService/Check (JWT check at the gateway, then the service)", base: "gateway", path: "/crm.auth.v1.AuthService/Check", body: "{}", token: true, service: "auth" },
  { label: "direct → timers: GetWorkingTimer (cached)", base: "timers", path: "/crm.timer.v1.TimerService/GetWorkingTimer", body: "{}", token: true, service: "timers" },
  { label: "gateway → timers: GetWorkingTimer (cached)", base: "gateway", path: "/crm.timer.v1.TimerService/GetWorkingTimer", body: "{}", token: true, service: "timers" },
];

export const gateway: Scenario = {
  name: "gateway",
  title: "Gateway (NGINX, TLS) vs direct, without and with the JWT check; GetWorkingTimer through the gateway",
  async missing() {
    const c = clusterProblem() ?? nginxProblem() ?? h2loadProblem();
    if (c) return c;
    return unreachable("postgres", "redis", "rabbitmq");
  },
  async run(ctx: Ctx) {
    const rounds = ctx.quick ? 1 : 2;
    const n = ctx.quick ? 200 : 10_000; // per variant per round
    let bc: BenchCluster | undefined;
    try {
      // Client certificates optional on auth and timers, so h2load (no client-cert support) can call them directly.
      bc = await startBenchCluster({ only: ["dbservice", "auth", "timers", "logs"], serviceEnv: { auth: { TLS_CLIENT_AUTH: "optional" }, timers: { TLS_CLIENT_AUTH: "optional" } } });
      const c = bc.cluster;
      trustCa(readFileSync(c.pki.ca));
      const owner = await registerOwner(c.gatewayUrl, uniqueTag());
      await connectJson(c.gatewayUrl, "crm.timer.v1.TimerService/StartTimer", { description: "bench" }, owner.token);
      const t = await connectJson<{ timer?: { description?: string } }>(c.gatewayUrl, "crm.timer.v1.TimerService/GetWorkingTimer", {}, owner.token);
      if (t.timer?.description !== "bench") throw new Error(`GetWorkingTimer through the gateway answered ${JSON.stringify(t)}`);
      const bases = { gateway: c.gatewayUrl, auth: `https://127.0.0.1:${c.ports.auth}`, timers: `https://127.0.0.1:${c.ports.timers}` };
      const load = (v: Variant, requests: number) =>
        h2load({
          url: `${bases[v.base]}${v.path}`,
          requests,
          clients: 4,
          streams: 16,
          headers: v.body ? { ...json, ...(v.token ? { authorization: `Bearer ${owner.token}` } : {}) } : {},
          ...(v.body ? { body: v.body } : {}),
          timeoutMs: 120_000,
        });
      for (const v of variants) {
        const r = await load(v, 50);
        if (r.errors) throw new Error(`${v.label}: ${r.errors} of 50 calls failed (statuses ${JSON.stringify(r.statuses)})`);
        await load(v, ctx.quick ? 50 : 2_000);
      }
      const acc = new Map<string, { loads: LoadResult[]; nginxCpu: number; serviceCpu: number }>();
      for (let round = 0; round < rounds; round++) {
        for (const v of variants) {
          const nginx = bc.nginxPids();
          const svc = v.service ? [bc.pids[v.service]!] : [];
          const n0 = sampleAll(nginx).cpuMs;
          const s0 = sampleAll(svc).cpuMs;
          const r = await load(v, n);
          const a = acc.get(v.label) ?? { loads: [], nginxCpu: 0, serviceCpu: 0 };
          a.loads.push(r);
          a.nginxCpu += sampleAll(nginx).cpuMs - n0;
          a.serviceCpu += sampleAll(svc).cpuMs - s0;
          acc.set(v.label, a);
        }
      }
      const out = variants.map((v) => {
        const a = acc.get(v.label)!;
        const r = combine(a.loads);
        const viaGateway = v.base === "gateway";
        return { v, r, nginxCpu: viaGateway ? a.nginxCpu / r.ok : undefined, serviceCpu: v.service ? a.serviceCpu / r.ok : undefined };
      });
      for (const o of out) ctx.log(`${o.v.label}: ${o.r.rps.toFixed(0)} req/s p99 ${o.r.p99Ms.toFixed(1)} ms nginx ${o.nginxCpu?.toFixed(3)} svc ${o.serviceCpu?.toFixed(3)} CPU ms/req`);
      const by = (label: string) => out.find((o) => o.v.label.startsWith(label))!;
      const jwtOverhead = (by("gateway → auth: AuthService/Check").nginxCpu ?? NaN) - (by("gateway → auth: Health/Check").nginxCpu ?? NaN);
      const timer = by("gateway → timers");
      const table: Table = {
        title: "",
        columns: ["variant", "tool", "requests", "errors", "req/s", "p50 ms", "p99 ms", "NGINX CPU ms/req", "service CPU ms/req"],
        rows: out.map((o) => [`${o.v.floor ? "**floor**: " : ""}${o.v.label}`, o.r.tool, o.r.requests, o.r.errors, o.r.rps, o.r.p50Ms, o.r.p99Ms, o.nginxCpu, o.serviceCpu]),
      };
      const rss = Object.entries(bc.pids).map(([name, pid]) => `${name} ${mb(sampleAll([pid]).rssBytes).toFixed(0)} MB`).join(", ");
      const checks: Check[] = [
        { label: "JWT check: NGINX CPU per request over plain proxying (AuthService/Check − Health/Check, token cached)", value: jwtOverhead, unit: "ms", target: "≤ 0.1 ms", met: jwtOverhead <= 0.1 },
        { label: "GetWorkingTimer (cached) through the gateway", value: timer.r.rps, unit: "req/s", target: "≥ 2000", met: timer.r.rps >= 2000 },
        { label: "GetWorkingTimer through the gateway ÷ NGINX static JSON", value: timer.r.rps / by("NGINX static").r.rps, unit: "×", target: "informational" },
        { label: "gateway hop: added p50 latency on Health/Check", value: by("gateway → auth: Health/Check").r.p50Ms - by("direct → auth: Health/Check").r.p50Ms, unit: "ms", target: "informational" },
      ];
      return {
        rows: [],
        tables: [table],
        checks,
        notes: [
          `${rounds} rounds × ${n} calls per variant (variants take turns), h2load over TLS (HTTP/2, ALPN), 4 connections × 16 streams, Connect JSON; one access token (the gateway's verifier cache is warm, as for a user's repeated calls)`,
          `cluster from scripts/cluster/lib.mjs (services from source, mTLS between gateway and services, nginx workers: auto); only dbservice, auth, timers, logs run; RSS after the run: ${rss}`,
        ],
      };
    } finally {
      await bc?.stop();
    }
  },
};

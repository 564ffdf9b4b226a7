/**
 * GetWorkingTimer on the all-in-one (real PostgreSQL): served from the Redis cache-aside vs read
 * from the database every time (no REDIS_URL). One user with a running timer, 64 calls in flight
 * (h2load: 4 connections × 16 streams). The target (≥ 2,000 req/s with 64 clients) is for
 * the path through the gateway; this measures the service itself, so the gateway's cost is not in it.
 * With REDIS_URL set a call also checks the revocation list in Redis (one EXISTS), as in the cluster.
 */
import { freshDatabase, TEST_REDIS_URL, unreachable } from "@crm/testkit";
import { connectJson, removeDir, startApp } from "../lib/app.js";
import { grpcFrame, h2load, h2loadProblem, type LoadResult } from "../lib/h2load.js";
import { mb, measured } from "../lib/proc.js";
import type { Check, Ctx, Row, Scenario } from "../lib/report.js";

const method = "crm.timer.v1.TimerService/GetWorkingTimer";
/** GetWorkingTimerRequest{user_id: ""} written out (h2load cannot post an empty body). */
const emptyRequest = new Uint8Array([0x0a, 0x00]);

export const timers: Scenario = {
  name: "timers",
  title: "GetWorkingTimer on the all-in-one (PostgreSQL): Redis cache-aside vs the database every time",
  async missing() {
    return (await unreachable("postgres", "redis")) ?? h2loadProblem();
  },
  async run(ctx: Ctx) {
    const warm = ctx.quick ? 100 : 2_000;
    const rows: Row[] = [];
    const rps = new Map<string, number>();
    const db = await freshDatabase("crm_bench");
    try {
      for (const variant of [
        { label: "cached (REDIS_URL set)", env: { DATABASE_URL: db.url, REDIS_URL: TEST_REDIS_URL }, n: ctx.quick ? 500 : 20_000 },
        { label: "uncached (no REDIS_URL: PostgreSQL every call)", env: { DATABASE_URL: db.url }, n: ctx.quick ? 500 : 5_000 },
      ]) {
        const app = await startApp({ env: variant.env, name: `all-in-one ${variant.label}` });
        try {
          const { url } = app.value;
          const tag = `${Date.now().toString(36)}${rows.length}`;
          const reg = await connectJson<{ accessToken: string }>(url, "crm.auth.v1.AuthService/RegisterCompany", {
            companyName: `Bench ${tag}`, email: `timers.${tag}@bench.example`, password: "correct horse battery staple 42", ownerName: "Bench",
          });
          await connectJson(url, "crm.timer.v1.TimerService/StartTimer", { description: "bench" }, reg.accessToken);
          const check = await connectJson<{ timer?: { description?: string } }>(url, method, {}, reg.accessToken);
          if (check.timer?.description !== "bench") throw new Error(`GetWorkingTimer answered ${JSON.stringify(check)}`);
          const auth = { authorization: `Bearer ${reg.accessToken}` };
          for (const [protocol, headers, body] of [
            ["gRPC", { "content-type": "application/grpc", te: "trailers", ...auth }, grpcFrame(emptyRequest)],
            ["Connect JSON", { "content-type": "application/json", "connect-protocol-version": "1", ...auth }, "{}"],
          ] as const) {
            const load = (requests: number) => h2load({ url: `${url}/${method}`, requests, clients: 4, streams: 16, headers, body, timeoutMs: 180_000 });
            await load(warm);
            const m = await measured(() => [app.pid], () => load(variant.n));
            const r: LoadResult = m.value;
            const label = `${protocol}, ${variant.label}`;
            rps.set(label, r.rps);
            rows.push({ label, tool: r.tool, requests: r.requests, errors: r.errors, rps: r.rps, p50Ms: r.p50Ms, p99Ms: r.p99Ms, cpuMsPerReq: r.ok ? m.cpuMs / r.ok : undefined, rssMB: mb(m.rssBytes) });
            ctx.log(`${label}: ${r.rps.toFixed(0)} req/s, p50 ${r.p50Ms.toFixed(2)} ms, p99 ${r.p99Ms.toFixed(2)} ms, errors ${r.errors}`);
          }
        } finally {
          await app.stop();
          removeDir(app.dataDir);
        }
      }
    } finally {
      await db.drop();
    }
    const cached = rps.get("gRPC, cached (REDIS_URL set)") ?? 0;
    const uncached = rps.get("gRPC, uncached (no REDIS_URL: PostgreSQL every call)") ?? 0;
    const checks: Check[] = [
      { label: "GetWorkingTimer gRPC, cached, 64 in flight (all-in-one, no gateway)", value: cached, unit: "req/s", target: "≥ 2000 (the issue's target is through the gateway)", met: cached >= 2000 },
      { label: "cached ÷ uncached throughput", value: cached / uncached, unit: "×", target: "informational" },
    ];
    return {
      rows,
      checks,
      notes: [
        `20000 calls per cached row, 5000 per uncached row, after ${warm} warm-up calls; h2load 4 connections × 16 streams (64 in flight); one user whose timer runs`,
        "all-in-one from source on a fresh PostgreSQL database; the uncached rows also skip Redis for the revocation check (in-memory revocations without REDIS_URL)",
      ],
    };
  },
};

/**
 * An API-key call vs a session-token call, in the same run (issue 18: "an API-key call costs no
 * more than a session-token call"). The all-in-one on PostgreSQL with Redis (the revocation list
 * checked on every call, as in the cluster); one user with a running timer; GetWorkingTimer over
 * gRPC with the user's access token, and with an API key of that user (scope timers:read).
 * The key is exchanged once; every later call is answered from the verifier's memory like a
 * token (packages/kit/src/auth.ts). The two alternate in rounds, so load and warm-up hit both alike.
 */
import { freshDatabase, TEST_REDIS_URL, unreachable } from "@crm/testkit";
import { connectJson, removeDir, startApp } from "../lib/app.js";
import { grpcFrame, h2load, h2loadProblem, type LoadResult } from "../lib/h2load.js";
import { mb, measured } from "../lib/proc.js";
import type { Check, Ctx, Row, Scenario } from "../lib/report.js";

const method = "crm.timer.v1.TimerService/GetWorkingTimer";
/** GetWorkingTimerRequest{user_id: ""} written out (h2load cannot post an empty body). */
const emptyRequest = new Uint8Array([0x0a, 0x00]);

export const apikeys: Scenario = {
  name: "apikeys",
  title: "API key vs session token: the same RPC (GetWorkingTimer, gRPC) on the all-in-one, same run",
  async missing() {
    return (await unreachable("postgres", "redis")) ?? h2loadProblem();
  },
  async run(ctx: Ctx) {
    const rounds = ctx.quick ? 1 : 4;
    const n = ctx.quick ? 500 : 6_000; // per credential per round (a key allows 100,000 calls a minute at most)
    const warm = ctx.quick ? 100 : 1_000;
    const db = await freshDatabase("crm_bench");
    const app = await startApp({ env: { DATABASE_URL: db.url, REDIS_URL: TEST_REDIS_URL }, name: "all-in-one (API keys)" });
    const totals = new Map<string, { ok: number; errors: number; cpuMs: number; rps: number[]; p50: number[]; p99: number[]; rss: number; requests: number; tool: string }>();
    try {
      const { url } = app.value;
      const tag = Date.now().toString(36);
      const reg = await connectJson<{ accessToken: string }>(url, "crm.auth.v1.AuthService/RegisterCompany", {
        companyName: `Bench ${tag}`, email: `keys.${tag}@bench.example`, password: "correct horse battery staple 42", ownerName: "Bench",
      });
      await connectJson(url, "crm.timer.v1.TimerService/StartTimer", { description: "bench" }, reg.accessToken);
      const key = await connectJson<{ secret: string }>(url, "crm.auth.v1.ApiKeyService/CreateApiKey", { name: "bench", scopes: ["timers:read"], requestsPerMinute: 100_000 }, reg.accessToken);
      for (const credential of [reg.accessToken, key.secret]) {
        const check = await connectJson<{ timer?: { description?: string } }>(url, method, {}, credential);
        if (check.timer?.description !== "bench") throw new Error(`GetWorkingTimer answered ${JSON.stringify(check)}`);
      }
      const variants = [
        { label: "session token (JWT)", token: reg.accessToken },
        { label: "API key (crm_live_…)", token: key.secret },
      ];
      const load = (token: string, requests: number) =>
        h2load({ url: `${url}/${method}`, requests, clients: 4, streams: 16, headers: { "content-type": "application/grpc", te: "trailers", authorization: `Bearer ${token}` }, body: grpcFrame(emptyRequest), timeoutMs: 180_000 });
      for (const v of variants) await load(v.token, warm);
      for (let round = 0; round < rounds; round++) {
        for (const v of round % 2 ? [...variants].reverse() : variants) {
          const m = await measured(() => [app.pid], () => load(v.token, n));
          const r: LoadResult = m.value;
          const t = totals.get(v.label) ?? { ok: 0, errors: 0, cpuMs: 0, rps: [], p50: [], p99: [], rss: 0, requests: 0, tool: r.tool };
          t.ok += r.ok;
          t.errors += r.errors;
          t.cpuMs += m.cpuMs;
          t.rps.push(r.rps);
          t.p50.push(r.p50Ms);
          t.p99.push(r.p99Ms);
          t.rss = Math.max(t.rss, m.rssBytes);
          t.requests += r.requests;
          totals.set(v.label, t);
          ctx.log(`${v.label}, round ${round + 1}: ${r.rps.toFixed(0)} req/s, p50 ${r.p50Ms.toFixed(2)} ms, p99 ${r.p99Ms.toFixed(2)} ms, errors ${r.errors}`);
        }
      }
    } finally {
      await app.stop();
      removeDir(app.dataDir);
      await db.drop();
    }
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
    const rows: Row[] = [...totals].map(([label, t]) => ({
      label,
      tool: t.tool,
      requests: t.requests,
      errors: t.errors,
      rps: median(t.rps),
      p50Ms: median(t.p50),
      p99Ms: median(t.p99),
      cpuMsPerReq: t.ok ? t.cpuMs / t.ok : undefined,
      rssMB: mb(t.rss),
    }));
    const token = totals.get("session token (JWT)");
    const apiKey = totals.get("API key (crm_live_…)");
    const cpuRatio = token && apiKey && token.ok && apiKey.ok ? apiKey.cpuMs / apiKey.ok / (token.cpuMs / token.ok) : NaN;
    // The best round of each: other work on the machine slows a round, never speeds one up.
    const p50Ratio = token && apiKey ? Math.min(...apiKey.p50) / Math.min(...token.p50) : NaN;
    const checks: Check[] = [
      // Within measurement noise (10 %): the target is "no more than".
      { label: "API-key call CPU ÷ session-token call CPU (same RPC, same run)", value: cpuRatio, unit: "×", target: "≤ 1.1", met: cpuRatio <= 1.1 },
      { label: "API-key call p50 ÷ session-token call p50 (best round of each)", value: p50Ratio, unit: "×", target: "≤ 1.1", met: p50Ratio <= 1.1 },
      { label: "errors with the API key", value: apiKey?.errors ?? NaN, unit: "", target: "0", met: apiKey?.errors === 0 },
    ];
    return {
      rows,
      checks,
      notes: [
        `${rounds} alternating rounds of ${n} calls per credential after ${warm} warm-up calls each; h2load 4 connections × 16 streams; medians of the rounds; CPU is the app process's, per successful call`,
        "all-in-one from source on a fresh PostgreSQL database with REDIS_URL (the revocation list consulted on every call, for the token's session and the key alike)",
      ],
    };
  },
};

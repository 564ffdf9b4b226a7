/**
 * Tracing overhead: the same RPCs on the all-in-one with tracing off (no OTEL_EXPORTER_OTLP_ENDPOINT)
 * and on (every request sampled, spans batched to an OTLP/HTTP sink in this process).
 * - CacheService/Get: one server span (memory store: nothing else);
 * - AuthService/ListSessions: server span → client span → dbservice server span → pg spans.
 * One call at a time (per-RPC latency) and 16 in flight (throughput, server CPU per call).
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { freshDatabase, unreachable } from "@crm/testkit";
import { countOtlpSpans, otlpExportAnswer } from "@crm/testkit/otlp-receiver";
import { connectJson, removeDir, startApp } from "../lib/app.js";
import { closedLoop } from "../lib/driver.js";
import { mb, measured } from "../lib/proc.js";
import type { Check, Ctx, Row, Scenario } from "../lib/report.js";

async function otlpSink() {
  let spans = 0;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      // the kit's default encoding is protobuf (OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf); JSON is counted too
      spans += countOtlpSpans(req.headers["content-type"], Buffer.concat(chunks));
      const answer = otlpExportAnswer(req.headers["content-type"]);
      res.writeHead(200, { "content-type": answer.contentType }).end(answer.body);
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, spans: () => spans, close: () => new Promise<void>((r) => server.close(() => r())) };
}

export const tracing: Scenario = {
  name: "tracing",
  title: "Tracing overhead per RPC — OpenTelemetry off vs on (all-in-one)",
  async missing() {
    return unreachable("postgres"); // ListSessions runs on a fresh database
  },
  async run(ctx: Ctx) {
    const n1 = ctx.quick ? 100 : 2_000;
    const n16 = ctx.quick ? 200 : 6_000;
    const rounds = ctx.quick ? 2 : 10;
    const sink = await otlpSink();
    const rows: Row[] = [];
    const checks: Check[] = [];
    const modes = ["off", "on"] as const;
    const dbs = await Promise.all(modes.map(() => freshDatabase("crm_bench")));
    // Both apps run side by side and the rounds alternate between them, so the machine's load
    // (other processes on these 2 cores) weighs on both alike.
    const apps = await Promise.all(
      modes.map((mode, i) =>
        startApp({
          name: `all-in-one tracing ${mode}`,
          env: { DATABASE_URL: dbs[i]!.url, ...(mode === "on" ? { OTEL_EXPORTER_OTLP_ENDPOINT: sink.url, OTEL_BSP_MAX_QUEUE_SIZE: "65536" } : {}) },
        }),
      ),
    );
    try {
      const calls = await Promise.all(
        apps.map(async (app) => {
          const { url } = app.value;
          const tag = Date.now().toString(36) + Math.random().toString(36).slice(2, 6);
          const reg = await connectJson<{ accessToken: string }>(url, "crm.auth.v1.AuthService/RegisterCompany", { companyName: `Trace ${tag}`, email: `t.${tag}@bench.example`, password: "correct horse battery staple 42", ownerName: "T" });
          const token = reg.accessToken;
          await connectJson(url, "crm.cache.v1.CacheService/Save", { key: "k", value: "dmFsdWU=", ttlSeconds: 3600 }, token);
          return {
            "CacheService/Get": () => connectJson(url, "crm.cache.v1.CacheService/Get", { key: "k" }, token),
            "AuthService/ListSessions (→ dbservice → pg)": () => connectJson(url, "crm.auth.v1.AuthService/ListSessions", {}, token),
          } as Record<string, () => Promise<unknown>>;
        }),
      );
      for (const label of Object.keys(calls[0]!)) {
        for (const c of [1, 16]) {
          const total = c === 1 ? n1 : n16;
          const acc = modes.map(() => ({ ok: 0, errors: 0, seconds: 0, cpuMs: 0, rss: 0, p50: [] as number[], p99: [] as number[] }));
          for (let i = 0; i < 2; i++) await closedLoop({ concurrency: c, total: Math.ceil(total / 20), timeoutMs: 60_000, call: calls[i]![label]! }); // warm-up
          for (let r = 0; r < rounds; r++) {
            for (let i = 0; i < modes.length; i++) {
              const m = await measured(() => [apps[i]!.pid], () => closedLoop({ concurrency: c, total: Math.ceil(total / rounds), timeoutMs: 300_000, call: calls[i]![label]! }));
              if (m.value.errors) throw new Error(`${label} failed ${m.value.errors}×: ${m.value.errorSamples.join(" | ")}`);
              const a = acc[i]!;
              a.ok += m.value.ok;
              a.seconds += m.value.seconds;
              a.cpuMs += m.cpuMs;
              a.rss = m.rssBytes;
              a.p50.push(m.value.p50Ms);
              a.p99.push(m.value.p99Ms);
            }
          }
          const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
          const res = acc.map((a) => ({ ok: a.ok, rss: a.rss, p50: median(a.p50), p99: median(a.p99), rps: a.ok / a.seconds, cpu: a.cpuMs / a.ok }));
          modes.forEach((mode, i) => {
            const r = res[i]!;
            rows.push({ label: `${label} c=${c}, tracing ${mode}`, floor: mode === "off", tool: `node driver c=${c}, ${rounds} alternating rounds`, requests: r.ok, errors: 0, rps: r.rps, p50Ms: r.p50, p99Ms: r.p99, cpuMsPerReq: r.cpu, rssMB: mb(r.rss) });
            ctx.log(`${label} c=${c} tracing ${mode}: p50 ${r.p50.toFixed(3)} ms, ${r.rps.toFixed(0)}/s, ${r.cpu.toFixed(3)} ms CPU/call`);
          });
          checks.push({ label: `${label} c=${c}: p50 latency added by tracing (median of rounds)`, value: res[1]!.p50 - res[0]!.p50, unit: "ms", target: "informational" });
          checks.push({ label: `${label} c=${c}: server CPU added by tracing per call`, value: res[1]!.cpu - res[0]!.cpu, unit: "ms", target: "informational" });
        }
      }
      return { rows, checks, notes: [`spans received by the OTLP sink: ${sink.spans()}`, "tracing off = OTEL_EXPORTER_OTLP_ENDPOINT unset: no SDK loaded, the RPC interceptors check one boolean", "both apps run at once; rounds alternate off/on so background load weighs on both"] };
    } finally {
      for (const app of apps) {
        await app.stop();
        removeDir(app.dataDir);
      }
      for (const db of dbs) await db.drop();
      await sink.close();
    }
  },
};

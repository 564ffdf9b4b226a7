/**
 * 1. RPC hop: grpc.health.v1.Health/Check on the kit's server vs bare node:http2 (the floor) and
 * vs @grpc/grpc-js serving the same proto. Each server is its own process; h2load drives it over
 * h2c from another; CPU is the server process's own (utime+stime), per successful call.
 */
import { createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { Health, HealthCheckResponse_ServingStatus as Status } from "@crm/gen/grpc/health/v1/health_pb";
import { buildServerBundle } from "../lib/app.js";
import { benchReady, nodeFlags, startChild, tsNode, type Child } from "../lib/child.js";
import { combine, grpcFrame, h2load, h2loadProblem, type LoadResult } from "../lib/h2load.js";
import { mb, measured } from "../lib/proc.js";
import type { Check, Ctx, Row, Scenario } from "../lib/report.js";

type Protocol = "grpc" | "connect-proto" | "connect-json" | "connect-json-h1";

const path = "/grpc.health.v1.Health/Check";
/** HealthCheckRequest{service: ""} with the field written out (0x0a 0x00): the same 2 bytes in every protocol (h2load cannot post an empty body). */
const checkRequest = new Uint8Array([0x0a, 0x00]);
const request: Record<Protocol, { headers: Record<string, string>; body: Uint8Array | string; h1?: boolean }> = {
  grpc: { headers: { "content-type": "application/grpc", te: "trailers" }, body: grpcFrame(checkRequest) },
  "connect-proto": { headers: { "content-type": "application/proto", "connect-protocol-version": "1" }, body: checkRequest },
  "connect-json": { headers: { "content-type": "application/json", "connect-protocol-version": "1" }, body: '{"service":""}' },
  "connect-json-h1": { headers: { "content-type": "application/json", "connect-protocol-version": "1" }, body: '{"service":""}', h1: true },
};

/** One real call with a real client before the load: h2load sees HTTP statuses only (gRPC errors are 200 + trailers). */
async function verify(port: number, protocol: Protocol) {
  const baseUrl = `http://127.0.0.1:${port}`;
  const transport =
    protocol === "grpc"
      ? createGrpcTransport({ baseUrl })
      : createConnectTransport({ baseUrl, httpVersion: protocol === "connect-json-h1" ? "1.1" : "2", useBinaryFormat: protocol === "connect-proto" });
  const res = await createClient(Health, transport).check({});
  if (res.status !== Status.SERVING) throw new Error(`Health/Check over ${protocol} answered ${Status[res.status]}, not SERVING`);
}

/** How each server starts. The kit runs as it is deployed: bundled like dist/crm.mjs (the image's entry point); also from source through tsx, as `npm start` and the local cluster run it. */
const servers = {
  "node:http2": async () => tsNode("bench/servers/plain-http2.ts"),
  "grpc-js": async () => tsNode("bench/servers/grpcjs-health.ts"),
  "connect-node": async () => tsNode("bench/servers/connect-health.ts"),
  kit: async () => ({ cmd: process.execPath, args: [...nodeFlags("kit-health"), await buildServerBundle("bench/servers/kit-health.ts")] }),
  "kit (tsx)": async () => tsNode("bench/servers/kit-health.ts"),
} satisfies Record<string, () => Promise<{ cmd: string; args: string[] }>>;

interface Variant {
  label: string;
  server: keyof typeof servers;
  protocol: Protocol;
  floor?: boolean;
}

const variants: Variant[] = [
  { label: "node:http2 gRPC", server: "node:http2", protocol: "grpc", floor: true },
  { label: "node:http2 Connect binary", server: "node:http2", protocol: "connect-proto", floor: true },
  { label: "node:http2 Connect JSON", server: "node:http2", protocol: "connect-json", floor: true },
  { label: "grpc-js gRPC", server: "grpc-js", protocol: "grpc" },
  { label: "connect-node (no kit) gRPC", server: "connect-node", protocol: "grpc" },
  { label: "connect-node (no kit) Connect binary", server: "connect-node", protocol: "connect-proto" },
  { label: "kit gRPC", server: "kit", protocol: "grpc" },
  { label: "kit Connect binary", server: "kit", protocol: "connect-proto" },
  { label: "kit Connect JSON", server: "kit", protocol: "connect-json" },
  { label: "kit Connect JSON over HTTP/1.1", server: "kit", protocol: "connect-json-h1" },
  { label: "kit gRPC, from source (tsx)", server: "kit (tsx)", protocol: "grpc" },
];

export const rpc: Scenario = {
  name: "rpc",
  title: "RPC hop — kit vs bare node:http2 vs grpc-js (grpc.health.v1.Health/Check)",
  missing: h2loadProblem,
  async run(ctx: Ctx) {
    const rounds = ctx.quick ? 1 : 5;
    const n = ctx.quick ? 300 : 10_000; // per variant per round
    const warm = ctx.quick ? 100 : 3_000;
    const rows: Row[] = [];
    const cpu = new Map<string, number>();
    const running = new Map<string, Child<{ port: number }>>();
    try {
      // Every server runs for the whole scenario (an idle one costs nothing), so the variants can
      // take turns in rounds: a load swing on a shared machine then hits all of them alike.
      for (const server of new Set(variants.map((v) => v.server))) {
        const { cmd, args } = await servers[server]();
        running.set(server, await startChild({ name: server, cmd, args, ready: benchReady, timeoutMs: 30_000 }));
      }
      const load = (v: Variant, requests: number) => {
        const r = request[v.protocol];
        const { port } = running.get(v.server)!.value;
        return h2load({ url: `http://127.0.0.1:${port}${path}`, requests, clients: r.h1 ? 32 : 4, streams: r.h1 ? 1 : 16, headers: r.headers, body: r.body, h1: r.h1, timeoutMs: 60_000 });
      };
      for (const v of variants) {
        await verify(running.get(v.server)!.value.port, v.protocol);
        await load(v, warm);
      }
      const results = new Map<string, { loads: LoadResult[]; cpuMs: number; rssBytes: number }>();
      for (let round = 0; round < rounds; round++) {
        for (const v of variants) {
          const pid = running.get(v.server)!.pid;
          const m = await measured(() => [pid], () => load(v, n));
          const acc = results.get(v.label) ?? { loads: [], cpuMs: 0, rssBytes: 0 };
          acc.loads.push(m.value);
          acc.cpuMs += m.cpuMs;
          acc.rssBytes = m.rssBytes;
          results.set(v.label, acc);
        }
      }
      for (const v of variants) {
        const acc = results.get(v.label)!;
        const res = combine(acc.loads);
        const perReq = res.ok ? acc.cpuMs / res.ok : undefined;
        if (perReq !== undefined) cpu.set(v.label, perReq);
        rows.push({ label: v.label, floor: v.floor, tool: res.tool, requests: res.requests, errors: res.errors, rps: res.rps, p50Ms: res.p50Ms, p99Ms: res.p99Ms, cpuMsPerReq: perReq, rssMB: mb(acc.rssBytes) });
        ctx.log(`${v.label}: ${res.rps.toFixed(0)} req/s, p99 ${res.p99Ms.toFixed(2)} ms, ${perReq?.toFixed(4)} CPU ms/call`);
      }
    } finally {
      for (const c of running.values()) await c.stop();
    }
    const us = (label: string) => (cpu.get(label) ?? NaN) * 1000;
    const checks: Check[] = [
      { label: "kit gRPC CPU per call ÷ grpc-js CPU per call", value: us("kit gRPC") / us("grpc-js gRPC"), unit: "×", target: "≤ 1.0 (kit overhead no worse than grpc-js)", met: us("kit gRPC") <= us("grpc-js gRPC") },
      { label: "kit gRPC from source (tsx) CPU per call ÷ grpc-js CPU per call", value: us("kit gRPC, from source (tsx)") / us("grpc-js gRPC"), unit: "×", target: "informational (development runs)" },
      { label: "kit gRPC CPU per call over the bare node:http2 floor", value: us("kit gRPC") - us("node:http2 gRPC"), unit: "µs", target: "informational" },
      { label: "kit Connect binary CPU per call over its floor", value: us("kit Connect binary") - us("node:http2 Connect binary"), unit: "µs", target: "informational" },
      { label: "kit Connect JSON CPU per call over its floor", value: us("kit Connect JSON") - us("node:http2 Connect JSON"), unit: "µs", target: "informational" },
      { label: "connect-node (no kit) gRPC CPU per call over the floor", value: us("connect-node (no kit) gRPC") - us("node:http2 gRPC"), unit: "µs", target: "informational" },
      { label: "kit gRPC CPU per call minus connect-node's (the kit serves unary calls itself: packages/fastpath)", value: us("kit gRPC") - us("connect-node (no kit) gRPC"), unit: "µs", target: "informational" },
      { label: "grpc-js CPU per call over the bare node:http2 floor", value: us("grpc-js gRPC") - us("node:http2 gRPC"), unit: "µs", target: "informational" },
    ];
    return {
      rows,
      checks,
      notes: [
        `${rounds} rounds × ${n} calls per variant, variants taking turns each round, after ${warm} warm-up calls; HTTP/2 variants: 4 connections × 16 streams (64 in flight), HTTP/1.1: 32 connections`,
        "each server runs alone in its own process; the kit from its bundle (bench/.build/kit-health.mjs, scripts/build.mjs's esbuild options, as the image runs dist/crm.mjs), the others and \"from source\" through node --import tsx; CPU is that process's utime+stime per successful call",
      ],
    };
  },
};

/**
 * Issue 20 (3): what starting tracing costs a service process — the kit's own set-up
 * (packages/kit/src/telemetry.ts: the tracing pieces of the OpenTelemetry SDK, loaded only when an
 * OTLP endpoint is set) against the OpenTelemetry Node SDK (@opentelemetry/sdk-node) set up as the
 * design asked, with the same trace exporter and instrumentations.
 *
 * Fresh processes, the variants taking turns in rounds (the order rotating each round), medians:
 * - floor: bare `node` to its first line;
 * - the kit, tracing off (no endpoint: nothing of OpenTelemetry is loaded) and on (endpoint set);
 * - sdk-node with its defaults (it also sets up OTLP metrics and logs exporters), and with
 *   OTEL_METRICS_EXPORTER=none and OTEL_LOGS_EXPORTER=none (traces only);
 * - the kit (on) and sdk-node (defaults) once more from source through tsx, as `npm start` runs.
 * Each child (bench/servers/otel-kit.ts, otel-sdk-node.ts) then loads the clients a service loads
 * (pg, ioredis, amqplib) and listens on HTTP: ready is the point a service would serve. Both are
 * bundled with the production build's esbuild options, as the image runs dist/crm.mjs (the kit's
 * code bundled, the @opentelemetry packages and sdk-node left in node_modules, where they would
 * be as runtime dependencies; the kit imports its OpenTelemetry packages only when an endpoint is
 * set, as in the image, where telemetry.ts is part of the kit's chunk every service loads). Measured: spawn → ready wall time, the process's own ms since it
 * began (without spawn), CPU ms to ready (utime+stime, every thread), RSS at ready and its peak.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { buildServerBundle } from "../lib/app.js";
import { benchReady, nodeFlags, startChild, tsNode } from "../lib/child.js";
import { mb, sample } from "../lib/proc.js";
import type { Check, Ctx, Scenario, Table } from "../lib/report.js";

interface Start {
  wallMs: number;
  selfMs?: number;
  cpuMs: number;
  rssMB: number;
  peakMB: number;
}

interface Variant {
  key: "floor" | "kitOff" | "kit" | "sdk" | "sdkTraces" | "kitSource" | "sdkSource";
  label: string;
  start(): Promise<Start>;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

/** An OTLP/HTTP endpoint that answers every export with 200 (nothing is exported before ready; it is there so nothing fails). */
async function otlpSink() {
  const server = http.createServer((req, res) => {
    req.resume();
    req.on("end", () => res.writeHead(200, { "content-type": "application/json" }).end("{}"));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => new Promise<void>((r) => server.close(() => r())) };
}

/** One start of a bench server (its bundle, or its source through tsx): to its ready line, sampled there, stopped. `tracing`: what its line must say. */
async function startServer(name: string, file: string, env: Record<string, string>, tracing: boolean): Promise<Start> {
  const { cmd, args } = file.endsWith(".ts") ? tsNode(file) : { cmd: process.execPath, args: [...nodeFlags(name), file] };
  const child = await startChild({
    name,
    cmd,
    args,
    env,
    ready: (line) => {
      const ready = benchReady(line);
      return ready && { ...ready, ...(JSON.parse(line) as { tracing: boolean; ms: number }) };
    },
    timeoutMs: 60_000,
  });
  try {
    const s = sample(child.pid);
    if (child.value.tracing !== tracing) throw new Error(`${name}: tracing is ${child.value.tracing ? "on" : "off"}, expected ${tracing ? "on" : "off"}`);
    return { wallMs: child.readyMs, selfMs: child.value.ms, cpuMs: s.cpuMs, rssMB: mb(s.rssBytes), peakMB: mb(s.peakBytes) };
  } finally {
    await child.stop();
  }
}

async function bareNode(): Promise<Start> {
  const child = await startChild({
    name: "bare node",
    cmd: process.execPath,
    args: ["-e", 'console.log(JSON.stringify({bench_ready:true,port:0})); setInterval(() => {}, 1000); process.on("SIGTERM", () => process.exit(0))'],
    ready: benchReady,
    timeoutMs: 30_000,
  });
  try {
    const s = sample(child.pid);
    return { wallMs: child.readyMs, cpuMs: s.cpuMs, rssMB: mb(s.rssBytes), peakMB: mb(s.peakBytes) };
  } finally {
    await child.stop();
  }
}

export const otelStartup: Scenario = {
  name: "otel-startup",
  title: "Tracing start-up: the kit's OpenTelemetry set-up vs @opentelemetry/sdk-node, fresh processes",
  async run(ctx: Ctx) {
    const rounds = ctx.quick ? 1 : 7;
    ctx.log("bundling bench/servers/otel-kit.ts and otel-sdk-node.ts (the production build's esbuild options)");
    const kitBundle = await buildServerBundle("bench/servers/otel-kit.ts");
    const sdkBundle = await buildServerBundle("bench/servers/otel-sdk-node.ts", ["@opentelemetry/sdk-node", "@opentelemetry/sdk-node/*"]);
    const sink = await otlpSink();
    // the kit's trace exporter as sdk-node's here (OTLP/HTTP JSON; the kit's default is http/protobuf,
    // which loads as fast): the traces-only variable, which sdk-node's metrics and logs exporters ignore
    const endpoint = { OTEL_EXPORTER_OTLP_ENDPOINT: sink.url, OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: "http/json", OTEL_SDK_DISABLED: "false" };
    const variants: Variant[] = [
      { key: "floor", label: "**floor**: bare node to its first line", start: bareNode },
      { key: "kitOff", label: "kit, tracing off (no endpoint: nothing of OpenTelemetry loaded)", start: () => startServer("otel-kit-off", kitBundle, { OTEL_EXPORTER_OTLP_ENDPOINT: "", OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "" }, false) },
      { key: "kit", label: "kit, tracing on (startTelemetry, endpoint set)", start: () => startServer("otel-kit", kitBundle, endpoint, true) },
      { key: "sdk", label: "sdk-node, NodeSDK({ traceExporter, instrumentations }).start(), its defaults (also OTLP metrics + logs exporters)", start: () => startServer("otel-sdk-node", sdkBundle, endpoint, true) },
      { key: "sdkTraces", label: "sdk-node, the same, OTEL_METRICS_EXPORTER=none OTEL_LOGS_EXPORTER=none", start: () => startServer("otel-sdk-node-traces", sdkBundle, { ...endpoint, OTEL_METRICS_EXPORTER: "none", OTEL_LOGS_EXPORTER: "none" }, true) },
      { key: "kitSource", label: "kit, tracing on, from source (node --import tsx, as npm start)", start: () => startServer("otel-kit-source", "bench/servers/otel-kit.ts", endpoint, true) },
      { key: "sdkSource", label: "sdk-node (defaults), from source (node --import tsx)", start: () => startServer("otel-sdk-node-source", "bench/servers/otel-sdk-node.ts", endpoint, true) },
    ];
    const runs = new Map<Variant["key"], Start[]>(variants.map((v) => [v.key, []]));
    try {
      for (let round = 0; round < rounds; round++) {
        ctx.log(`round ${round + 1}/${rounds}`);
        for (let i = 0; i < variants.length; i++) {
          const v = variants[(round + i) % variants.length]!; // each round starts with the next variant
          runs.get(v.key)!.push(await v.start());
        }
      }
    } finally {
      await sink.close();
    }
    const med = (key: Variant["key"], f: keyof Start) => median(runs.get(key)!.map((s) => s[f]).filter((x): x is number => typeof x === "number"));
    /** The median over rounds of a per-round ratio a ÷ b (a swing of the machine's load hits both of a round alike). */
    const ratio = (a: Variant["key"], b: Variant["key"], f: keyof Start) => median(runs.get(a)!.map((s, i) => (s[f] as number) / (runs.get(b)![i]![f] as number)));
    for (const v of variants) ctx.log(`${v.label}: ${med(v.key, "wallMs").toFixed(0)} ms to ready, ${med(v.key, "cpuMs").toFixed(0)} ms CPU, RSS ${med(v.key, "rssMB").toFixed(0)} MB`);
    const table: Table = {
      title: "",
      columns: ["start (median of the rounds; each round's spawn → ready ms)", "spawn → ready ms", "own ms (since the process began)", "CPU ms to ready", "RSS at ready MB", "peak RSS MB"],
      rows: variants.map((v) => {
        const each = runs.get(v.key)!.map((s) => s.wallMs.toFixed(0)).join(", ");
        return [`${v.label} (${each})`, med(v.key, "wallMs"), v.key === "floor" ? undefined : med(v.key, "selfMs"), med(v.key, "cpuMs"), med(v.key, "rssMB"), med(v.key, "peakMB")];
      }),
    };
    const checks: Check[] = [
      { label: "sdk-node (defaults) ÷ the kit with tracing on, spawn → ready (median of per-round ratios)", value: ratio("sdk", "kit", "wallMs"), unit: "×", target: "informational" },
      { label: "sdk-node (defaults) ÷ the kit with tracing on, CPU to ready", value: ratio("sdk", "kit", "cpuMs"), unit: "×", target: "informational" },
      { label: "sdk-node (traces only) ÷ the kit with tracing on, spawn → ready", value: ratio("sdkTraces", "kit", "wallMs"), unit: "×", target: "informational" },
      { label: "from source (tsx): sdk-node (defaults) ÷ the kit with tracing on, spawn → ready", value: ratio("sdkSource", "kitSource", "wallMs"), unit: "×", target: "informational" },
      { label: "start-up the kit's tracing adds (on − off), spawn → ready", value: med("kit", "wallMs") - med("kitOff", "wallMs"), unit: "ms", target: "informational" },
      { label: "start-up sdk-node (defaults) adds over the kit with tracing off, spawn → ready", value: med("sdk", "wallMs") - med("kitOff", "wallMs"), unit: "ms", target: "informational" },
      { label: "CPU the kit's tracing adds (on − off)", value: med("kit", "cpuMs") - med("kitOff", "cpuMs"), unit: "ms", target: "informational" },
      { label: "CPU sdk-node (defaults) adds over the kit with tracing off", value: med("sdk", "cpuMs") - med("kitOff", "cpuMs"), unit: "ms", target: "informational" },
      { label: "RSS the kit's tracing adds at ready (on − off)", value: med("kit", "rssMB") - med("kitOff", "rssMB"), unit: "MB", target: "informational" },
      { label: "RSS sdk-node (defaults) adds at ready over the kit with tracing off", value: med("sdk", "rssMB") - med("kitOff", "rssMB"), unit: "MB", target: "informational" },
    ];
    return {
      rows: [],
      tables: [table],
      checks,
      notes: [
        `${rounds} round(s), every variant once per round in a fresh process, the order rotating each round; medians`,
        "bundles: bench/.build/otel-kit.mjs and otel-sdk-node.mjs, built with scripts/build.mjs's esbuild options (as the image runs dist/crm.mjs); the kit's telemetry code is bundled, every @opentelemetry package (and sdk-node) is loaded from node_modules, the kit's only when the endpoint is set (dynamic import)",
        "every child loads pg, ioredis and amqplib (what a service loads anyway; patched when tracing is on) and listens on HTTP before its ready line; OTEL_EXPORTER_OTLP_ENDPOINT points at a sink in the bench process",
        "sdk-node is a devDependency used by this scenario only; its instrumentations are the kit's three (the kit has no HTTP instrumentation)",
        "the two rows from source run the same files through node --conditions=source --import tsx (development, npm start); the image runs the bundle",
      ],
    };
  },
};

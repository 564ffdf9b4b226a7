/**
 * A process for telemetry.test.ts: starts the kit's telemetry from its environment (OTEL_*), as a
 * service's entry point does, makes the same five spans every time, exports them (shutdown
 * flushes) and prints one JSON line with `"fixture": true`: whether tracing ran, the spans it made
 * and the OpenTelemetry (and gRPC) packages the process loaded besides the API (all of them are
 * CommonJS, so Node's require cache lists them however they were imported).
 *
 * The spans, named for what the sampler sees: a root span, and four children of remote parents
 * (as after a traceparent header) whose parent was sampled or not, with a trace id that a
 * TraceIdRatioBased sampler at 0.5 keeps ("low") or drops ("high").
 */
import { createRequire } from "node:module";
import { ROOT_CONTEXT, TraceFlags, trace } from "@opentelemetry/api";
import { startTelemetry } from "./telemetry.js";

/** Trace ids whose 32-bit words XOR to 1 and to 0xfffffffe: below and above 0.5 of the ratio sampler's range. */
const LOW_TRACE_ID = "00000000000000000000000000000001";
const HIGH_TRACE_ID = "ffffffff000000000000000000000001";

const t = await startTelemetry("fixture-svc");
const tracer = trace.getTracer("telemetry-fixture");
const underRemote = (name: string, traceId: string, sampled: boolean) => {
  const parent = trace.setSpanContext(ROOT_CONTEXT, { traceId, spanId: "00f067aa0ba902b7", traceFlags: sampled ? TraceFlags.SAMPLED : TraceFlags.NONE, isRemote: true });
  tracer.startSpan(name, {}, parent).end();
};
tracer.startSpan("root").end();
underRemote("sampled-parent-low-id", LOW_TRACE_ID, true);
underRemote("sampled-parent-high-id", HIGH_TRACE_ID, true);
underRemote("unsampled-parent-low-id", LOW_TRACE_ID, false);
underRemote("unsampled-parent-high-id", HIGH_TRACE_ID, false);
await t.shutdown();
const loaded = new Set<string>();
for (const file of Object.keys(createRequire(import.meta.url).cache)) {
  const pkg = /\/node_modules\/(@opentelemetry\/[^/]+|@grpc\/grpc-js)\//.exec(file)?.[1];
  if (pkg && pkg !== "@opentelemetry/api") loaded.add(pkg);
}
process.stdout.write(`${JSON.stringify({ fixture: true, enabled: t.enabled, made: 5, loaded: [...loaded].sort() })}\n`);

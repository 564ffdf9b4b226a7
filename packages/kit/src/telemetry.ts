/**
 * OpenTelemetry tracing for one process. `startTelemetry(service)` is called first thing by the
 * entry point (services/all/src/main.ts), before any server starts.
 *
 * - OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) unset, or
 *   OTEL_SDK_DISABLED=true (the spec's boolean: only "true", any case, is true): nothing is loaded;
 *   the RPC interceptors see `tracingEnabled()` false and step aside (a boolean check per call).
 * - Set: a NodeTracerProvider starts with a batching OTLP/HTTP (JSON) exporter, W3C traceparent
 *   propagation and the pg, ioredis and amqplib instrumentations. RPC spans come from
 *   tracing-interceptor.ts (node:http2 is not auto-instrumented). Other OTEL_* variables (sampler,
 *   headers, resource attributes, service name, batch sizes, the signal-specific traces endpoint)
 *   work as the OpenTelemetry spec says (telemetry.test.ts checks them on exported spans). Metrics
 *   are served at /metrics for Prometheus (metrics.ts); logs go to stdout and Loki.
 *   (The tracing pieces of @opentelemetry/sdk-node, without its metrics/logs exporters and gRPC
 *   stack: a process starting sdk-node with the same exporter and instrumentations was ready after
 *   0.77 s with 111 MB RSS, with these pieces after 0.36 s with 75 MB; bundled as the image runs,
 *   medians on a 2-core box: `npm run bench -- otel-startup`, bench/README.md.)
 *
 * The instrumentations patch the client libraries' prototypes. Those libraries may already have
 * been loaded by static ESM imports of the entry module; re-requiring them once through Node's
 * `require` (which the instrumentations hook) patches the already loaded modules, so every
 * connection made afterwards is traced, whatever the import order was.
 */
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { setTracingEnabled } from "./tracing-interceptor.js";

export interface Telemetry {
  enabled: boolean;
  /** Exports every finished span now (tests, shutdown). */
  flush(): Promise<void>;
  shutdown(): Promise<void>;
}

const off: Telemetry = { enabled: false, flush: async () => {}, shutdown: async () => {} };
let current: Telemetry = off;
let warnedUnknown = false;

/**
 * OTEL_SDK_DISABLED as the specification reads a boolean: "true" (trimmed, any case) is true; unset,
 * empty and "false" are false; anything else is false too, with a warning (so "1" does NOT disable).
 */
function sdkDisabled(env: NodeJS.ProcessEnv): { disabled: boolean; unknown?: string } {
  const raw = env.OTEL_SDK_DISABLED?.trim().toLowerCase() ?? "";
  if (raw === "true") return { disabled: true };
  if (raw === "" || raw === "false") return { disabled: false };
  return { disabled: false, unknown: env.OTEL_SDK_DISABLED };
}

/** Whether `env` turns tracing on: an OTLP endpoint (general or traces-only) set, and the SDK not disabled. */
export function telemetryEnabledBy(env: NodeJS.ProcessEnv): boolean {
  if (sdkDisabled(env).disabled) return false;
  return Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim() || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim());
}

/** Starts tracing once per process (later calls return the running instance). */
export async function startTelemetry(service: string, env: NodeJS.ProcessEnv = process.env): Promise<Telemetry> {
  const { unknown } = sdkDisabled(env);
  if (unknown !== undefined && !warnedUnknown) {
    warnedUnknown = true;
    process.emitWarning(`OTEL_SDK_DISABLED=${JSON.stringify(unknown)} is not a boolean the OpenTelemetry spec knows ("true" or "false"); read as false: the SDK is not disabled`, { code: "CRM_OTEL_SDK_DISABLED" });
  }
  if (current.enabled || !telemetryEnabledBy(env)) return current;
  const [{ NodeTracerProvider, BatchSpanProcessor }, { OTLPTraceExporter }, { registerInstrumentations }, { defaultResource, detectResources, envDetector, resourceFromAttributes }, { PgInstrumentation }, { IORedisInstrumentation }, { AmqplibInstrumentation }] =
    await Promise.all([
      import("@opentelemetry/sdk-trace-node"),
      import("@opentelemetry/exporter-trace-otlp-http"),
      import("@opentelemetry/instrumentation"),
      import("@opentelemetry/resources"),
      import("@opentelemetry/instrumentation-pg"),
      import("@opentelemetry/instrumentation-ioredis"),
      import("@opentelemetry/instrumentation-amqplib"),
    ]);
  // OTEL_RESOURCE_ATTRIBUTES, OTEL_SERVICE_NAME (else the service's name), OTEL_TRACES_SAMPLER,
  // OTEL_BSP_* and OTEL_EXPORTER_OTLP_* are read from the environment as the spec says.
  const resource = defaultResource()
    .merge(resourceFromAttributes({ "service.name": env.OTEL_SERVICE_NAME || service, "service.namespace": "crm", "process.pid": process.pid }))
    .merge(detectResources({ detectors: [envDetector] }));
  const provider = new NodeTracerProvider({ resource, spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter())] });
  provider.register(); // global tracer provider, AsyncLocalStorage context, W3C traceparent + baggage propagation
  registerInstrumentations({
    tracerProvider: provider,
    instrumentations: [new PgInstrumentation({ requireParentSpan: true }), new IORedisInstrumentation({ requireParentSpan: true }), new AmqplibInstrumentation()],
  });
  patchLoadedClients();
  setTracingEnabled(true);
  let stopped = false;
  current = {
    enabled: true,
    flush: () => provider.forceFlush().catch(() => {}), // spans not flushed now still go out with the next batch
    async shutdown() {
      if (stopped) return;
      stopped = true;
      setTracingEnabled(false);
      await provider.shutdown().catch(() => {});
    },
  };
  return current;
}

/** The running telemetry (a no-op when tracing is off). */
export function telemetry(): Telemetry {
  return current;
}

/** Requires the traced client libraries once through the hooked `require`, so modules loaded earlier get patched. */
function patchLoadedClients() {
  const require = createRequire(import.meta.url);
  const files: string[] = [];
  for (const name of ["pg", "pg-pool", "ioredis", "amqplib"]) {
    try {
      files.push(require.resolve(name));
    } catch {
      // not installed: nothing to patch
    }
  }
  try {
    const amqp = dirname(require.resolve("amqplib"));
    for (const f of ["lib/connect.js", "lib/channel_model.js", "lib/callback_model.js"]) files.push(join(amqp, f));
  } catch {
    // amqplib not installed
  }
  for (const f of files) {
    try {
      require(f);
    } catch {
      // a module that cannot load here is not used by this process
    }
  }
}

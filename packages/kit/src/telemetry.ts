/**
 * OpenTelemetry tracing for one process. `startTelemetry(service)` is called first thing by the
 * entry point (services/all/src/main.ts), before any server starts.
 *
 * - OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) unset, or
 *   OTEL_SDK_DISABLED=true: nothing is loaded; the RPC interceptors see `tracingEnabled()` false and
 *   step aside (a boolean check per call).
 * - Set: the NodeSDK starts with OTLP/HTTP export (JSON), W3C traceparent propagation and the pg,
 *   ioredis and amqplib instrumentations. RPC spans come from tracing-interceptor.ts (node:http2
 *   is not auto-instrumented). Other OTEL_* variables (sampler, headers, resource attributes) work
 *   as the OpenTelemetry spec says; OTEL metrics and logs exporters default to none (metrics are
 *   served at /metrics for Prometheus, logs go to stdout and Loki).
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

export function telemetryEnabledBy(env: NodeJS.ProcessEnv): boolean {
  if (/^(true|1)$/i.test(env.OTEL_SDK_DISABLED ?? "")) return false;
  return Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim() || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim());
}

/** Starts tracing once per process (later calls return the running instance). */
export async function startTelemetry(service: string, env: NodeJS.ProcessEnv = process.env): Promise<Telemetry> {
  if (current.enabled || !telemetryEnabledBy(env)) return current;
  env.OTEL_METRICS_EXPORTER ??= "none";
  env.OTEL_LOGS_EXPORTER ??= "none";
  const [{ NodeSDK }, { OTLPTraceExporter }, { PgInstrumentation }, { IORedisInstrumentation }, { AmqplibInstrumentation }] = await Promise.all([
    import("@opentelemetry/sdk-node"),
    import("@opentelemetry/exporter-trace-otlp-http"),
    import("@opentelemetry/instrumentation-pg"),
    import("@opentelemetry/instrumentation-ioredis"),
    import("@opentelemetry/instrumentation-amqplib"),
  ]);
  const sdk = new NodeSDK({
    serviceName: env.OTEL_SERVICE_NAME || service,
    traceExporter: new OTLPTraceExporter(),
    instrumentations: [
      new PgInstrumentation({ requireParentSpan: true }),
      new IORedisInstrumentation({ requireParentSpan: true }),
      new AmqplibInstrumentation(),
    ],
  });
  sdk.start();
  patchLoadedClients();
  setTracingEnabled(true);
  let stopped = false;
  current = {
    enabled: true,
    async flush() {
      const { trace } = await import("@opentelemetry/api");
      const provider = trace.getTracerProvider() as { forceFlush?: () => Promise<void>; getDelegate?: () => { forceFlush?: () => Promise<void> } };
      await (provider.forceFlush?.() ?? provider.getDelegate?.().forceFlush?.());
    },
    async shutdown() {
      if (stopped) return;
      stopped = true;
      setTracingEnabled(false);
      await sdk.shutdown().catch(() => {});
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

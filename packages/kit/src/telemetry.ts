/**
 * OpenTelemetry tracing for one process. `startTelemetry(service)` is called first thing by the
 * entry point (services/all/src/main.ts), before any server starts.
 *
 * Which exporters run (`tracesConfigFrom`, the spec's variables):
 * - OTEL_TRACES_EXPORTER, a comma-separated list (unset or empty: otlp): `otlp`, `console`, or
 *   `none` (no tracing; it wins over anything listed beside it). Other values (zipkin, a typo) are
 *   ignored with a warning naming them.
 * - otlp runs only when OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set
 *   (there is no collector to assume); console needs no endpoint.
 * - OTEL_SDK_DISABLED=true (the spec's boolean: only "true", any case, is true) turns all of it off.
 * With no exporter to run nothing of OpenTelemetry is loaded: the RPC interceptors see
 * `tracingEnabled()` false and step aside (a boolean check per call).
 *
 * With one, a NodeTracerProvider starts with W3C traceparent propagation and the pg, ioredis and
 * amqplib instrumentations; RPC spans come from tracing-interceptor.ts (node:http2 is not
 * auto-instrumented). otlp goes through a batch span processor, with the exporter
 * OTEL_EXPORTER_OTLP_TRACES_PROTOCOL (else OTEL_EXPORTER_OTLP_PROTOCOL) names, each imported only
 * when chosen: `http/protobuf` (the default, as the spec's: the encoding every OTLP/HTTP receiver
 * takes, 2.3 times smaller than JSON and quicker to encode), `http/json`, or `grpc` (the endpoint is
 * host:port or http(s)://host:port, without a path; plaintext for http://, TLS otherwise unless
 * OTEL_EXPORTER_OTLP_INSECURE=true). An unknown protocol: a warning, then http/protobuf. console
 * writes each span when it ends (simple span processor, as the SDK does) as ONE JSON line on
 * stdout with the fields of the SDK's ConsoleSpanExporter: that exporter prints a multi-line
 * util.inspect dump, which would break the JSON-lines stream the services' pino logs make (log
 * shippers, Loki's json parser, ready-line readers).
 * Other OTEL_* variables (sampler, headers, resource attributes, service name, batch sizes, the
 * signal-specific traces endpoint, the gRPC exporter's TLS files) work as the OpenTelemetry spec
 * says (telemetry.test.ts checks them on exported spans). Metrics are served at /metrics for
 * Prometheus (metrics.ts); logs go to stdout and Loki.
 * (The tracing pieces of @opentelemetry/sdk-node, without its metrics/logs exporters and with only
 * the one trace exporter chosen: a process starting sdk-node with the same exporter and
 * instrumentations was ready after 0.77 s with 111 MB RSS, with these pieces after 0.36 s with
 * 75 MB; bundled as the image runs, medians on a 2-core box: `npm run bench -- otel-startup`,
 * bench/README.md; measured with the http/json exporter, which takes as long to load as the
 * http/protobuf one.)
 *
 * The instrumentations patch the client libraries' prototypes. Those libraries may already have
 * been loaded by static ESM imports of the entry module; re-requiring them once through Node's
 * `require` (which the instrumentations hook) patches the already loaded modules, so every
 * connection made afterwards is traced, whatever the import order was.
 */
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import type { ReadableSpan, SpanExporter, SpanProcessor } from "@opentelemetry/sdk-trace-node";
import { setTracingEnabled } from "./tracing-interceptor.js";

export interface Telemetry {
  enabled: boolean;
  /** Exports every finished span now (tests, shutdown). */
  flush(): Promise<void>;
  shutdown(): Promise<void>;
}

const off: Telemetry = { enabled: false, flush: async () => {}, shutdown: async () => {} };
let current: Telemetry = off;
/** The warnings this process has emitted (each once, however often startTelemetry runs). */
const warned = new Set<string>();

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

export type OtlpProtocol = "http/protobuf" | "http/json" | "grpc";
export type TracesExporter = "otlp" | "console";
const protocols: readonly OtlpProtocol[] = ["http/protobuf", "http/json", "grpc"];
/** The spec's default (https://opentelemetry.io/docs/specs/otel/protocol/exporter/). */
export const defaultOtlpProtocol: OtlpProtocol = "http/protobuf";

export interface TracesConfig {
  /** The exporters that will run: otlp only with an endpoint set; empty = tracing off. */
  exporters: TracesExporter[];
  /** The OTLP exporter's protocol (meaningful when `exporters` has otlp). */
  protocol: OtlpProtocol;
  /** Settings the spec does not know or this kit does not support, each as a warning: [code, message]. */
  warnings: [code: string, message: string][];
}

const quoted = (v: string | undefined) => JSON.stringify(v);

/**
 * What the OTEL_* variables of `env` ask for: the exporters to run and the OTLP protocol, with a
 * warning for each value that is ignored. Enum values are trimmed and read in any case (the spec:
 * "case-insensitive"); an empty variable counts as unset.
 */
export function tracesConfigFrom(env: NodeJS.ProcessEnv): TracesConfig {
  const warnings: TracesConfig["warnings"] = [];
  const { disabled, unknown } = sdkDisabled(env);
  if (unknown !== undefined) {
    warnings.push(["CRM_OTEL_SDK_DISABLED", `OTEL_SDK_DISABLED=${quoted(unknown)} is not a boolean the OpenTelemetry spec knows ("true" or "false"); read as false: the SDK is not disabled`]);
  }
  // OTEL_TRACES_EXPORTER: a list; unset or empty = otlp
  const raw = env.OTEL_TRACES_EXPORTER ?? "";
  const names = [...new Set(raw.split(",").map((v) => v.trim().toLowerCase()).filter(Boolean))];
  const unsupported = names.filter((n) => n !== "otlp" && n !== "console" && n !== "none");
  if (unsupported.length > 0) {
    warnings.push(["CRM_OTEL_TRACES_EXPORTER", `OTEL_TRACES_EXPORTER=${quoted(raw)}: ${unsupported.map((n) => quoted(n)).join(", ")} ignored (this process exports traces with otlp, console or none)`]);
  }
  let selected: TracesExporter[] = names.length === 0 ? ["otlp"] : names.filter((n): n is TracesExporter => n === "otlp" || n === "console");
  if (names.includes("none")) {
    if (names.length > 1) warnings.push(["CRM_OTEL_TRACES_EXPORTER", `OTEL_TRACES_EXPORTER=${quoted(raw)} lists "none" with other exporters; "none" wins: no traces are exported`]);
    selected = [];
  }
  // the protocol: the signal-specific variable wins; an unknown value falls back to the default
  const [variable, value] = env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL?.trim() ? ["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL] : ["OTEL_EXPORTER_OTLP_PROTOCOL", env.OTEL_EXPORTER_OTLP_PROTOCOL];
  let protocol = defaultOtlpProtocol;
  if (value?.trim()) {
    const wanted = value.trim().toLowerCase();
    if ((protocols as readonly string[]).includes(wanted)) protocol = wanted as OtlpProtocol;
    else if (selected.includes("otlp")) warnings.push(["CRM_OTEL_PROTOCOL", `${variable}=${quoted(value)} is not an OTLP protocol (grpc, http/protobuf or http/json); using ${defaultOtlpProtocol}`]);
  }
  const endpoint = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim() || env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim();
  if (protocol === "grpc" && endpoint && selected.includes("otlp") && /^[a-z][\w+.-]*:\/\/[^/]+\/./i.test(endpoint)) {
    warnings.push(["CRM_OTEL_PROTOCOL", `OTLP over gRPC takes host:port or http(s)://host:port: the path of ${quoted(endpoint)} is ignored`]);
  }
  const exporters = disabled ? [] : selected.filter((e) => e !== "otlp" || Boolean(endpoint));
  return { exporters, protocol, warnings: disabled ? [] : warnings };
}

/** Whether `env` turns tracing on: an exporter to run (otlp with an endpoint, or console) and the SDK not disabled. */
export function telemetryEnabledBy(env: NodeJS.ProcessEnv): boolean {
  return tracesConfigFrom(env).exporters.length > 0;
}

/** Imports the OTLP exporter of `protocol` alone: the others' packages (and gRPC's stack) are never loaded. */
async function otlpExporter(protocol: OtlpProtocol) {
  switch (protocol) {
    case "grpc":
      return new (await import("@opentelemetry/exporter-trace-otlp-grpc")).OTLPTraceExporter();
    case "http/json":
      return new (await import("@opentelemetry/exporter-trace-otlp-http")).OTLPTraceExporter();
    case "http/protobuf":
      return new (await import("@opentelemetry/exporter-trace-otlp-proto")).OTLPTraceExporter();
  }
}

/**
 * OTEL_TRACES_EXPORTER=console: each span as one JSON line on stdout, with the fields (and units:
 * microseconds) of the SDK's ConsoleSpanExporter, whose multi-line console.dir output would break
 * the stream of JSON lines the services' logs make.
 */
class JsonLineSpanExporter implements SpanExporter {
  export(spans: ReadableSpan[], done: Parameters<SpanExporter["export"]>[1]) {
    const us = ([s, ns]: [number, number]) => Math.round(s * 1e6 + ns / 1e3);
    for (const span of spans) {
      const ctx = span.spanContext();
      const line = {
        resource: { attributes: span.resource.attributes },
        instrumentationScope: span.instrumentationScope,
        traceId: ctx.traceId,
        parentSpanContext: span.parentSpanContext,
        traceState: ctx.traceState?.serialize(),
        name: span.name,
        id: ctx.spanId,
        kind: span.kind,
        timestamp: us(span.startTime),
        duration: us(span.duration),
        attributes: span.attributes,
        status: span.status,
        events: span.events,
        links: span.links,
      };
      process.stdout.write(`${JSON.stringify(line)}\n`);
    }
    done({ code: 0 }); // ExportResultCode.SUCCESS
  }
  async shutdown() {}
  async forceFlush() {}
}

/** Starts tracing once per process (later calls return the running instance). */
export async function startTelemetry(service: string, env: NodeJS.ProcessEnv = process.env): Promise<Telemetry> {
  const config = tracesConfigFrom(env);
  for (const [code, message] of config.warnings) {
    if (warned.has(message)) continue;
    warned.add(message);
    process.emitWarning(message, { code });
  }
  if (current.enabled || config.exporters.length === 0) return current;
  const [otlp, { NodeTracerProvider, BatchSpanProcessor, SimpleSpanProcessor }, { registerInstrumentations }, { defaultResource, detectResources, envDetector, resourceFromAttributes }, { PgInstrumentation }, { IORedisInstrumentation }, { AmqplibInstrumentation }] =
    await Promise.all([
      config.exporters.includes("otlp") ? otlpExporter(config.protocol) : undefined,
      import("@opentelemetry/sdk-trace-node"),
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
  // otlp in batches (OTEL_BSP_*); console as each span ends, as the SDK does
  const spanProcessors: SpanProcessor[] = config.exporters.map((e) => (e === "console" ? new SimpleSpanProcessor(new JsonLineSpanExporter()) : new BatchSpanProcessor(otlp!)));
  const provider = new NodeTracerProvider({ resource, spanProcessors });
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

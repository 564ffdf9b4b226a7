/**
 * Start-up of the OpenTelemetry Node SDK (@opentelemetry/sdk-node, a devDependency: only this
 * bench uses it) for the `otel-startup` scenario, set up as the design would: NodeSDK with an
 * OTLP/HTTP trace exporter and the instrumentations the kit uses (pg, ioredis, amqplib; the kit
 * has no HTTP instrumentation: node:http2 RPC spans come from its own interceptor), everything
 * else from the environment as sdk-node reads it (by default it also sets up OTLP metrics and logs
 * exporters; the scenario runs it once more with OTEL_METRICS_EXPORTER=none and
 * OTEL_LOGS_EXPORTER=none). Then the same clients and HTTP listener as otel-kit.ts.
 * Prints {"bench_ready":true,"port":N,"tracing":true,"ms":<ms since the process began>}.
 */
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { AmqplibInstrumentation } from "@opentelemetry/instrumentation-amqplib";
import { IORedisInstrumentation } from "@opentelemetry/instrumentation-ioredis";
import { PgInstrumentation } from "@opentelemetry/instrumentation-pg";
import { NodeSDK } from "@opentelemetry/sdk-node";
import { loadClientsAndServe } from "./otel-serve.js";

const sdk = new NodeSDK({
  serviceName: "otel-startup",
  traceExporter: new OTLPTraceExporter(),
  instrumentations: [new PgInstrumentation({ requireParentSpan: true }), new IORedisInstrumentation({ requireParentSpan: true }), new AmqplibInstrumentation()],
});
sdk.start();
loadClientsAndServe(true, () => sdk.shutdown());

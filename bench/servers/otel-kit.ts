/**
 * Start-up of the kit's tracing (packages/kit/src/telemetry.ts) for the `otel-startup` scenario:
 * startTelemetry as a service's entry point calls it (on when OTEL_EXPORTER_OTLP_ENDPOINT is set,
 * else nothing is loaded), then the traced clients a service loads (pg, ioredis, amqplib; patched
 * when tracing is on), then an HTTP listener: the point a service would serve.
 * Prints {"bench_ready":true,"port":N,"tracing":bool,"ms":<ms since the process began>}.
 * The scenario runs it bundled with the production build's esbuild options (as the image runs
 * dist/crm.mjs): the kit is bundled, the @opentelemetry packages stay in node_modules.
 */
import { startTelemetry } from "@crm/kit/telemetry";
import { loadClientsAndServe } from "./otel-serve.js";

const telemetry = await startTelemetry("otel-startup");
loadClientsAndServe(telemetry.enabled, () => telemetry.shutdown());

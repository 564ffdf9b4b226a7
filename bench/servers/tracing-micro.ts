/**
 * Tracing cost of the kit's RPC path alone, without network or handlers' work: a client calls a
 * module through an in-process peer (client span + server span + all kit interceptors), `total`
 * sequential calls. `on` starts OpenTelemetry exporting to an OTLP sink in this process.
 * Prints one JSON line: µs and CPU µs per call.
 *   node --conditions=source --import tsx bench/servers/tracing-micro.ts off|on TOTAL
 */
import http from "node:http";
import type { AddressInfo } from "node:net";

const [mode = "off", totalArg = "20000"] = process.argv.slice(2);
const total = Number(totalArg);
let spans = 0;
if (mode === "on") {
  const { countOtlpSpans, otlpExportAnswer } = await import("@crm/testkit/otlp-receiver");
  const sink = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      // protobuf (the kit's default encoding) or JSON
      spans += countOtlpSpans(req.headers["content-type"], Buffer.concat(chunks));
      const answer = otlpExportAnswer(req.headers["content-type"]);
      res.writeHead(200, { "content-type": answer.contentType }).end(answer.body);
    });
  });
  await new Promise<void>((r) => sink.listen(0, "127.0.0.1", r));
  sink.unref();
  process.env.OTEL_EXPORTER_OTLP_ENDPOINT = `http://127.0.0.1:${(sink.address() as AddressInfo).port}`;
  process.env.OTEL_BSP_MAX_QUEUE_SIZE = "65536";
  const { startTelemetry } = await import("@crm/kit/telemetry");
  await startTelemetry("tracing-micro");
}
const { createClient } = await import("@connectrpc/connect");
const kit = await import("@crm/kit");
const { CacheService } = await import("@crm/gen/crm/cache/v1/cache_pb");

const log = kit.createLogger("micro", "warn");
const verifier: import("@crm/kit").TokenVerifier = { verify: async () => ({ userId: "u", companyId: "c", role: "owner", sessionId: "s", expiresAt: 2e9, token: "t" }) };
const module: import("@crm/kit").ServiceModule = {
  name: "probe",
  services: [CacheService],
  routes: (router) => void router.service(CacheService, { get: async () => ({ value: new Uint8Array([1]), ttlSeconds: 1 }) }),
};
const client = createClient(CacheService, kit.inProcessPeer("bench", module, { log, verifier, internal: kit.newInternalIdentity() }));
const call = () => client.get({ key: "k" }, { headers: { authorization: "Bearer t" } });
for (let i = 0; i < 2000; i++) await call(); // warm-up (JIT)
const cpu0 = process.cpuUsage();
const t0 = performance.now();
for (let i = 0; i < total; i++) await call();
const ms = performance.now() - t0;
const cpu = process.cpuUsage(cpu0);
await kit.telemetry().flush();
console.log(JSON.stringify({ bench_result: true, mode, total, usPerCall: (ms * 1000) / total, cpuUsPerCall: (cpu.user + cpu.system) / total, spans }));
await kit.telemetry().shutdown();

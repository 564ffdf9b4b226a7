/**
 * The standard OTEL_* variables, as the OpenTelemetry specification defines them
 * (https://opentelemetry.io/docs/specs/otel/configuration/sdk-environment-variables/,
 * https://opentelemetry.io/docs/specs/otel/protocol/exporter/), do what it says in a kit process:
 * `telemetryEnabledBy` and `tracesConfigFrom` decide from the endpoint, OTEL_SDK_DISABLED,
 * OTEL_TRACES_EXPORTER and the protocol variables; the rest is checked on what arrives at real OTLP
 * receivers (OTLP/HTTP with protobuf or JSON, OTLP/gRPC), on the console exporter's stdout and on
 * the packages each process loaded. Tracing is process-global, so each environment runs in a
 * process of its own (telemetry.fixture.ts: five spans, then exit).
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, test } from "node:test";
import { startOtlpGrpcReceiver, startOtlpReceiver, type OtlpReceiver } from "@crm/testkit/otlp-receiver";
import { startTelemetry, telemetryEnabledBy, tracesConfigFrom } from "./telemetry.js";

describe("telemetryEnabledBy", () => {
  const endpoint = "http://collector:4318";
  const cases: [string, NodeJS.ProcessEnv, boolean][] = [
    ["nothing set", {}, false],
    ["an empty endpoint", { OTEL_EXPORTER_OTLP_ENDPOINT: "" }, false],
    ["a blank endpoint", { OTEL_EXPORTER_OTLP_ENDPOINT: "  ", OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "\t" }, false],
    ["OTEL_EXPORTER_OTLP_ENDPOINT", { OTEL_EXPORTER_OTLP_ENDPOINT: endpoint }, true],
    ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT alone", { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `${endpoint}/v1/traces` }, true],
    ["OTEL_SDK_DISABLED=true without an endpoint", { OTEL_SDK_DISABLED: "true" }, false],
    ["OTEL_SDK_DISABLED=true with both endpoints", { OTEL_SDK_DISABLED: "true", OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: endpoint }, false],
    ["OTEL_SDK_DISABLED=TRUE (any case, trimmed)", { OTEL_SDK_DISABLED: " TRUE ", OTEL_EXPORTER_OTLP_ENDPOINT: endpoint }, false],
    ["OTEL_SDK_DISABLED=false", { OTEL_SDK_DISABLED: "false", OTEL_EXPORTER_OTLP_ENDPOINT: endpoint }, true],
    ["OTEL_SDK_DISABLED empty", { OTEL_SDK_DISABLED: "", OTEL_EXPORTER_OTLP_ENDPOINT: endpoint }, true],
    ["OTEL_SDK_DISABLED=1 (not a true value in the spec)", { OTEL_SDK_DISABLED: "1", OTEL_EXPORTER_OTLP_ENDPOINT: endpoint }, true],
    ["OTEL_SDK_DISABLED=yes (not a true value in the spec)", { OTEL_SDK_DISABLED: "yes", OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: endpoint }, true],
    ["OTEL_TRACES_EXPORTER empty (the default: otlp)", { OTEL_TRACES_EXPORTER: "", OTEL_EXPORTER_OTLP_ENDPOINT: endpoint }, true],
    ["OTEL_TRACES_EXPORTER=otlp", { OTEL_TRACES_EXPORTER: "otlp", OTEL_EXPORTER_OTLP_ENDPOINT: endpoint }, true],
    ["OTEL_TRACES_EXPORTER= OTLP (any case, trimmed)", { OTEL_TRACES_EXPORTER: " OTLP ", OTEL_EXPORTER_OTLP_ENDPOINT: endpoint }, true],
    ["OTEL_TRACES_EXPORTER=otlp without an endpoint", { OTEL_TRACES_EXPORTER: "otlp" }, false],
    ["OTEL_TRACES_EXPORTER=none with an endpoint", { OTEL_TRACES_EXPORTER: "none", OTEL_EXPORTER_OTLP_ENDPOINT: endpoint }, false],
    ["OTEL_TRACES_EXPORTER=None (any case)", { OTEL_TRACES_EXPORTER: "None", OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: endpoint }, false],
    ["OTEL_TRACES_EXPORTER=otlp,none (none wins)", { OTEL_TRACES_EXPORTER: "otlp,none", OTEL_EXPORTER_OTLP_ENDPOINT: endpoint }, false],
    ["OTEL_TRACES_EXPORTER=console without an endpoint", { OTEL_TRACES_EXPORTER: "console" }, true],
    ["OTEL_TRACES_EXPORTER=otlp,console without an endpoint (console alone)", { OTEL_TRACES_EXPORTER: "otlp,console" }, true],
    ["OTEL_TRACES_EXPORTER=console with OTEL_SDK_DISABLED=true", { OTEL_TRACES_EXPORTER: "console", OTEL_SDK_DISABLED: "true" }, false],
    ["OTEL_TRACES_EXPORTER=zipkin (not supported: ignored, nothing left)", { OTEL_TRACES_EXPORTER: "zipkin", OTEL_EXPORTER_OTLP_ENDPOINT: endpoint }, false],
    ["OTEL_TRACES_EXPORTER=zipkin,otlp (zipkin ignored)", { OTEL_TRACES_EXPORTER: "zipkin,otlp", OTEL_EXPORTER_OTLP_ENDPOINT: endpoint }, true],
  ];
  for (const [name, env, enabled] of cases) {
    test(`${name}: ${enabled ? "on" : "off"}`, () => assert.equal(telemetryEnabledBy(env), enabled));
  }

  test("an OTEL_SDK_DISABLED the spec does not know is read as false, with one warning naming it", async () => {
    const warnings: Error[] = [];
    const onWarning = (w: Error) => warnings.push(w);
    process.on("warning", onWarning);
    try {
      // No endpoint: nothing is loaded in this process, but the value is still reported.
      assert.equal((await startTelemetry("t", { OTEL_SDK_DISABLED: "1" })).enabled, false);
      assert.equal((await startTelemetry("t", { OTEL_SDK_DISABLED: "1" })).enabled, false);
      await new Promise((r) => setImmediate(r)); // warnings are emitted on the next tick
      const ours = warnings.filter((w) => (w as Error & { code?: string }).code === "CRM_OTEL_SDK_DISABLED");
      assert.equal(ours.length, 1, `one warning expected, got: ${warnings.map((w) => w.message).join(" | ")}`);
      assert.match(ours[0]!.message, /OTEL_SDK_DISABLED="1".*read as false/);
    } finally {
      process.off("warning", onWarning);
    }
  });
});

describe("tracesConfigFrom: exporters and the OTLP protocol", () => {
  const endpoint = { OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318" };
  const codes = (env: NodeJS.ProcessEnv) => tracesConfigFrom(env).warnings.map(([code]) => code);

  test("nothing set but the endpoint: otlp over http/protobuf (the spec's default), no warning", () => {
    assert.deepEqual(tracesConfigFrom(endpoint), { exporters: ["otlp"], protocol: "http/protobuf", warnings: [] });
  });

  const protocols: [string, NodeJS.ProcessEnv, string][] = [
    ["OTEL_EXPORTER_OTLP_PROTOCOL=grpc", { OTEL_EXPORTER_OTLP_PROTOCOL: "grpc" }, "grpc"],
    ["OTEL_EXPORTER_OTLP_PROTOCOL=http/json", { OTEL_EXPORTER_OTLP_PROTOCOL: "http/json" }, "http/json"],
    ["OTEL_EXPORTER_OTLP_PROTOCOL= HTTP/JSON (any case, trimmed)", { OTEL_EXPORTER_OTLP_PROTOCOL: " HTTP/JSON " }, "http/json"],
    ["OTEL_EXPORTER_OTLP_PROTOCOL empty", { OTEL_EXPORTER_OTLP_PROTOCOL: "" }, "http/protobuf"],
    ["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL alone", { OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: "grpc" }, "grpc"],
    ["the traces-only protocol wins (grpc over http/json)", { OTEL_EXPORTER_OTLP_PROTOCOL: "http/json", OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: "grpc" }, "grpc"],
    ["the traces-only protocol wins (http/protobuf over grpc)", { OTEL_EXPORTER_OTLP_PROTOCOL: "grpc", OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: "http/protobuf" }, "http/protobuf"],
    ["an empty traces-only protocol is unset: the general one applies", { OTEL_EXPORTER_OTLP_PROTOCOL: "http/json", OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: " " }, "http/json"],
  ];
  for (const [name, env, protocol] of protocols) {
    test(`${name}: ${protocol}`, () => {
      const config = tracesConfigFrom({ ...endpoint, ...env });
      assert.equal(config.protocol, protocol);
      assert.deepEqual(config.warnings, []);
    });
  }

  test("an unknown protocol: the default, with a warning naming the variable that set it and its value", () => {
    const general = tracesConfigFrom({ ...endpoint, OTEL_EXPORTER_OTLP_PROTOCOL: "http/xml" });
    assert.equal(general.protocol, "http/protobuf");
    assert.deepEqual(general.exporters, ["otlp"]);
    assert.equal(general.warnings.length, 1);
    assert.equal(general.warnings[0]![0], "CRM_OTEL_PROTOCOL");
    assert.match(general.warnings[0]![1], /^OTEL_EXPORTER_OTLP_PROTOCOL="http\/xml" is not an OTLP protocol .*using http\/protobuf$/);
    // a winning traces-only value that is unknown does not fall back to the general one
    const specific = tracesConfigFrom({ ...endpoint, OTEL_EXPORTER_OTLP_PROTOCOL: "grpc", OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: "gRPC-web" });
    assert.equal(specific.protocol, "http/protobuf");
    assert.match(specific.warnings[0]![1], /^OTEL_EXPORTER_OTLP_TRACES_PROTOCOL="gRPC-web" is not an OTLP protocol/);
    // nothing to say when no OTLP exporter is chosen
    assert.deepEqual(codes({ ...endpoint, OTEL_EXPORTER_OTLP_PROTOCOL: "http/xml", OTEL_TRACES_EXPORTER: "console" }), []);
  });

  test("grpc with an endpoint path: the path is ignored, with a warning; host:port and a bare URL are fine", () => {
    const withPath = tracesConfigFrom({ OTEL_EXPORTER_OTLP_PROTOCOL: "grpc", OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4317/v1/traces" });
    assert.deepEqual(withPath.exporters, ["otlp"]);
    assert.match(withPath.warnings.map(([, m]) => m).join(), /the path of "http:\/\/collector:4317\/v1\/traces" is ignored/);
    for (const url of ["collector:4317", "http://collector:4317", "https://collector:4317/"]) assert.deepEqual(codes({ OTEL_EXPORTER_OTLP_PROTOCOL: "grpc", OTEL_EXPORTER_OTLP_ENDPOINT: url }), [], url);
  });

  test("OTEL_TRACES_EXPORTER: a list, deduplicated in its order; console needs no endpoint", () => {
    assert.deepEqual(tracesConfigFrom({ ...endpoint, OTEL_TRACES_EXPORTER: "console, otlp,console" }).exporters, ["console", "otlp"]);
    assert.deepEqual(tracesConfigFrom({ OTEL_TRACES_EXPORTER: "console,otlp" }).exporters, ["console"]);
  });

  test("OTEL_TRACES_EXPORTER values this kit does not support are ignored, with one warning naming them", () => {
    const config = tracesConfigFrom({ ...endpoint, OTEL_TRACES_EXPORTER: "zipkin,otlp,jaeger" });
    assert.deepEqual(config.exporters, ["otlp"]);
    assert.equal(config.warnings.length, 1);
    assert.equal(config.warnings[0]![0], "CRM_OTEL_TRACES_EXPORTER");
    assert.match(config.warnings[0]![1], /^OTEL_TRACES_EXPORTER="zipkin,otlp,jaeger": "zipkin", "jaeger" ignored/);
    assert.deepEqual(tracesConfigFrom({ ...endpoint, OTEL_TRACES_EXPORTER: "zipkin" }).exporters, []);
  });

  test("none beside other exporters: none wins, with a warning", () => {
    const config = tracesConfigFrom({ ...endpoint, OTEL_TRACES_EXPORTER: "none,console" });
    assert.deepEqual(config.exporters, []);
    assert.match(config.warnings.map(([, m]) => m).join(), /"none" wins/);
    assert.deepEqual(tracesConfigFrom({ ...endpoint, OTEL_TRACES_EXPORTER: "none" }).warnings, []);
  });

  test("OTEL_SDK_DISABLED=true: nothing runs and nothing else is reported", () => {
    assert.deepEqual(tracesConfigFrom({ ...endpoint, OTEL_SDK_DISABLED: "true", OTEL_TRACES_EXPORTER: "zipkin,console", OTEL_EXPORTER_OTLP_PROTOCOL: "x" }), { exporters: [], protocol: "http/protobuf", warnings: [] });
  });
});

const fixture = fileURLToPath(new URL("./telemetry.fixture.ts", import.meta.url));

interface FixtureResult {
  enabled: boolean;
  made: number;
  /** The @opentelemetry packages (but the API) and @grpc/grpc-js the process loaded. */
  loaded: string[];
  /** Every other stdout line, parsed: the console exporter's spans (each line must be JSON). */
  lines: Record<string, unknown>[];
  stderr: string;
}

/** Runs the fixture with exactly `otel` as its OTEL_* environment; resolves once it has exported and exited. */
function runFixture(otel: Record<string, string>): Promise<FixtureResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--conditions=source", "--import", "tsx", fixture], {
      env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", ...otel },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    child.once("error", reject);
    child.once("exit", (code) => {
      try {
        const lines = out.split("\n").filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
        const result = lines.find((l) => l.fixture === true) as Omit<FixtureResult, "lines" | "stderr"> | undefined;
        if (code !== 0 || !result) throw new Error("no result line");
        resolve({ ...result, lines: lines.filter((l) => l !== result), stderr: err });
      } catch (e) {
        reject(new Error(`the telemetry fixture exited with ${code} (${(e as Error).message}):\n${out}\n${err}`));
      }
    });
  });
}

const ALL = ["root", "sampled-parent-low-id", "sampled-parent-high-id", "unsampled-parent-low-id", "unsampled-parent-high-id"];

/** The fixture's spans that reached `receiver`, sorted by name (each at most once). */
function exported(receiver: OtlpReceiver): string[] {
  const names = receiver.spans.map((s) => s.name).sort();
  assert.deepEqual(names, [...new Set(names)], "a span was exported twice");
  return names;
}

/** The Node warnings of `code` a fixture printed on stderr. */
const warningsIn = (stderr: string, code: string) => stderr.split("\n").filter((l) => l.includes(`[${code}] Warning:`));

const exporters = ["@opentelemetry/exporter-trace-otlp-grpc", "@opentelemetry/exporter-trace-otlp-http", "@opentelemetry/exporter-trace-otlp-proto", "@grpc/grpc-js"];
/** Of the OTLP exporters and gRPC, which the process loaded. */
const exportersLoaded = (loaded: string[]) => loaded.filter((p) => exporters.includes(p));

/** The ids the fixture gives its remote parents, as they must arrive whatever the encoding. */
function assertRemoteParents(receiver: OtlpReceiver) {
  const low = receiver.spans.find((s) => s.name === "sampled-parent-low-id");
  assert.ok(low, "sampled-parent-low-id arrived");
  assert.equal(low.traceId, "00000000000000000000000000000001");
  assert.equal(low.parentSpanId, "00f067aa0ba902b7");
  assert.match(low.spanId, /^[0-9a-f]{16}$/);
  assert.equal(low.kind, 1, "SPAN_KIND_INTERNAL");
}

/** One fixture run against a fresh receiver at OTEL_EXPORTER_OTLP_ENDPOINT (plus `otel`). */
async function run(otel: Record<string, string>, endpointPath = "", start: () => Promise<OtlpReceiver> = startOtlpReceiver) {
  const receiver = await start();
  try {
    const result = await runFixture({ OTEL_EXPORTER_OTLP_ENDPOINT: `${receiver.url}${endpointPath}`, ...otel });
    assert.equal(result.made, 5);
    return { ...result, receiver };
  } finally {
    await receiver.close();
  }
}

describe("OTEL_* variables in a kit process, seen at OTLP receivers (HTTP, gRPC), on stdout and in the packages loaded", { timeout: 300_000 }, () => {
  test("OTEL_SDK_DISABLED=true: nothing is sent, though an endpoint is set", async () => {
    const { enabled, receiver, loaded } = await run({ OTEL_SDK_DISABLED: "true", OTEL_TRACES_SAMPLER: "always_on" });
    assert.equal(enabled, false);
    assert.equal(receiver.requests, 0);
    assert.deepEqual(loaded, []);
  });

  test("the default sampler (parentbased_always_on), OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES on the exported resource, the endpoint's path + /v1/traces, http/protobuf", async () => {
    const { enabled, receiver, loaded } = await run(
      {
        OTEL_SERVICE_NAME: "billing-eu",
        // service.name here loses to OTEL_SERVICE_NAME; service.namespace here wins over the kit's "crm"; %2C is a comma
        OTEL_RESOURCE_ATTRIBUTES: "deployment.environment.name=staging,service.name=ignored,service.namespace=shop,k8s.pod.name=crm-auth%2C7d",
      },
      "/collector",
    );
    assert.equal(enabled, true);
    assert.deepEqual(exported(receiver), ["root", "sampled-parent-high-id", "sampled-parent-low-id"]);
    assert.ok(receiver.paths.length > 0 && receiver.paths.every((p) => p === "/collector/v1/traces"), `paths: ${receiver.paths.join(", ")}`);
    assert.deepEqual([...new Set(receiver.contentTypes)], ["application/x-protobuf"], "http/protobuf by default, as the spec says");
    assertRemoteParents(receiver);
    for (const s of receiver.spans) {
      assert.equal(s.resource["service.name"], "billing-eu");
      assert.equal(s.resource["service.namespace"], "shop");
      assert.equal(s.resource["deployment.environment.name"], "staging");
      assert.equal(s.resource["k8s.pod.name"], "crm-auth,7d");
      assert.equal(s.resource["telemetry.sdk.language"], "nodejs");
    }
    assert.deepEqual(exportersLoaded(loaded), ["@opentelemetry/exporter-trace-otlp-proto"], "only the chosen exporter is imported");
  });

  test("OTEL_TRACES_SAMPLER=always_on: every span, under the service's own name when OTEL_SERVICE_NAME is unset; OTEL_EXPORTER_OTLP_HEADERS on each export", async () => {
    const { receiver } = await run({ OTEL_TRACES_SAMPLER: "always_on", OTEL_EXPORTER_OTLP_HEADERS: "x-scope-orgid=tenant-1,authorization=Basic%20YTpi" });
    assert.ok(receiver.headers.length > 0);
    for (const h of receiver.headers) {
      assert.equal(h["x-scope-orgid"], "tenant-1");
      assert.equal(h.authorization, "Basic YTpi", "values are percent-decoded");
    }
    assert.deepEqual(exported(receiver), [...ALL].sort());
    for (const s of receiver.spans) {
      assert.equal(s.resource["service.name"], "fixture-svc");
      assert.equal(s.resource["service.namespace"], "crm");
      assert.equal(s.path, "/v1/traces");
    }
    assert.equal(receiver.requests, 1, "the batch span processor's default batch (512) holds all five");
  });

  test("OTEL_BSP_MAX_EXPORT_BATCH_SIZE=2: the batch span processor sends the five spans in three requests", async () => {
    const { receiver } = await run({ OTEL_TRACES_SAMPLER: "always_on", OTEL_BSP_MAX_EXPORT_BATCH_SIZE: "2" });
    assert.deepEqual(exported(receiver), [...ALL].sort());
    assert.equal(receiver.requests, 3);
  });

  test("OTEL_TRACES_SAMPLER=always_off: nothing is sent", async () => {
    const { enabled, receiver } = await run({ OTEL_TRACES_SAMPLER: "always_off" });
    assert.equal(enabled, true);
    assert.equal(receiver.requests, 0);
  });

  test("OTEL_TRACES_SAMPLER=traceidratio, OTEL_TRACES_SAMPLER_ARG=0.5: the trace id decides, the parent does not", async () => {
    const { receiver } = await run({ OTEL_TRACES_SAMPLER: "traceidratio", OTEL_TRACES_SAMPLER_ARG: "0.5" });
    const names = exported(receiver).filter((n) => n !== "root"); // the root's trace id is random
    assert.deepEqual(names, ["sampled-parent-low-id", "unsampled-parent-low-id"]);
  });

  test("OTEL_TRACES_SAMPLER=parentbased_traceidratio, OTEL_TRACES_SAMPLER_ARG=0: roots by the ratio (none), children by their parent", async () => {
    const { receiver } = await run({ OTEL_TRACES_SAMPLER: "parentbased_traceidratio", OTEL_TRACES_SAMPLER_ARG: "0" });
    assert.deepEqual(exported(receiver), ["sampled-parent-high-id", "sampled-parent-low-id"]);
  });

  test("OTEL_TRACES_SAMPLER=parentbased_always_off: no roots, children of sampled parents", async () => {
    const { receiver } = await run({ OTEL_TRACES_SAMPLER: "parentbased_always_off" });
    assert.deepEqual(exported(receiver), ["sampled-parent-high-id", "sampled-parent-low-id"]);
  });

  test("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT wins over OTEL_EXPORTER_OTLP_ENDPOINT and is used as given", async () => {
    const general = await startOtlpReceiver();
    const traces = await startOtlpReceiver();
    try {
      const { enabled } = await runFixture({
        OTEL_EXPORTER_OTLP_ENDPOINT: general.url,
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `${traces.url}/custom/traces`,
        OTEL_TRACES_SAMPLER: "always_on",
      });
      assert.equal(enabled, true);
      assert.equal(general.requests, 0);
      assert.deepEqual(exported(traces), [...ALL].sort());
      assert.ok(traces.paths.every((p) => p === "/custom/traces"), `paths: ${traces.paths.join(", ")}`);
    } finally {
      await general.close();
      await traces.close();
    }
  });

  test("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT alone turns tracing on", async () => {
    const traces = await startOtlpReceiver();
    try {
      const { enabled } = await runFixture({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `${traces.url}/otlp/spans` });
      assert.equal(enabled, true);
      assert.deepEqual(exported(traces), ["root", "sampled-parent-high-id", "sampled-parent-low-id"]);
      assert.ok(traces.paths.every((p) => p === "/otlp/spans"), `paths: ${traces.paths.join(", ")}`);
    } finally {
      await traces.close();
    }
  });
  test("OTEL_EXPORTER_OTLP_PROTOCOL=http/json: JSON at the same path, only the JSON exporter loaded", async () => {
    const { receiver, loaded } = await run({ OTEL_EXPORTER_OTLP_PROTOCOL: "http/json", OTEL_TRACES_SAMPLER: "always_on" });
    assert.deepEqual(exported(receiver), [...ALL].sort());
    assert.deepEqual([...new Set(receiver.contentTypes)], ["application/json"]);
    assert.ok(receiver.paths.every((p) => p === "/v1/traces"), `paths: ${receiver.paths.join(", ")}`);
    assertRemoteParents(receiver);
    assert.deepEqual(exportersLoaded(loaded), ["@opentelemetry/exporter-trace-otlp-http"]);
  });

  test("OTEL_EXPORTER_OTLP_PROTOCOL=grpc: TraceService/Export at a gRPC receiver (http://host:port), headers as metadata", async () => {
    const { enabled, receiver, loaded } = await run(
      { OTEL_EXPORTER_OTLP_PROTOCOL: "grpc", OTEL_TRACES_SAMPLER: "always_on", OTEL_SERVICE_NAME: "billing-grpc", OTEL_EXPORTER_OTLP_HEADERS: "x-scope-orgid=tenant-2" },
      "",
      startOtlpGrpcReceiver,
    );
    assert.equal(enabled, true);
    assert.deepEqual(exported(receiver), [...ALL].sort());
    assert.ok(receiver.paths.every((p) => p === "/opentelemetry.proto.collector.trace.v1.TraceService/Export"), `paths: ${receiver.paths.join(", ")}`);
    for (const h of receiver.headers) assert.equal(h["x-scope-orgid"], "tenant-2");
    for (const s of receiver.spans) assert.equal(s.resource["service.name"], "billing-grpc");
    assertRemoteParents(receiver);
    assert.deepEqual(exportersLoaded(loaded), ["@grpc/grpc-js", "@opentelemetry/exporter-trace-otlp-grpc"]);
  });

  test("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL wins over OTEL_EXPORTER_OTLP_PROTOCOL", async () => {
    const { receiver, loaded } = await run({ OTEL_EXPORTER_OTLP_PROTOCOL: "grpc", OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: "http/json" });
    assert.deepEqual(exported(receiver), ["root", "sampled-parent-high-id", "sampled-parent-low-id"]);
    assert.deepEqual([...new Set(receiver.contentTypes)], ["application/json"]);
    assert.deepEqual(exportersLoaded(loaded), ["@opentelemetry/exporter-trace-otlp-http"]);
  });

  test("grpc to a traces-only endpoint given as host:port (plaintext by OTEL_EXPORTER_OTLP_INSECURE=true), the general endpoint unused", async () => {
    const general = await startOtlpReceiver();
    const traces = await startOtlpGrpcReceiver();
    try {
      const { enabled } = await runFixture({
        OTEL_EXPORTER_OTLP_ENDPOINT: general.url,
        OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: traces.hostPort,
        OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: "grpc",
        OTEL_EXPORTER_OTLP_INSECURE: "true",
      });
      assert.equal(enabled, true);
      assert.equal(general.requests, 0);
      assert.deepEqual(exported(traces), ["root", "sampled-parent-high-id", "sampled-parent-low-id"]);
    } finally {
      await general.close();
      await traces.close();
    }
  });

  test("an unknown OTEL_EXPORTER_OTLP_PROTOCOL: one warning naming it and its value, then http/protobuf", async () => {
    const { receiver, stderr } = await run({ OTEL_EXPORTER_OTLP_PROTOCOL: "http/xml" });
    const warnings = warningsIn(stderr, "CRM_OTEL_PROTOCOL");
    assert.equal(warnings.length, 1, stderr);
    assert.match(warnings[0]!, /OTEL_EXPORTER_OTLP_PROTOCOL="http\/xml" is not an OTLP protocol.*using http\/protobuf/);
    assert.deepEqual(exported(receiver), ["root", "sampled-parent-high-id", "sampled-parent-low-id"]);
    assert.deepEqual([...new Set(receiver.contentTypes)], ["application/x-protobuf"]);
  });

  test("OTEL_TRACES_EXPORTER=none: nothing sent and nothing of OpenTelemetry loaded, though an endpoint is set", async () => {
    const { enabled, receiver, loaded, stderr } = await run({ OTEL_TRACES_EXPORTER: "none", OTEL_TRACES_SAMPLER: "always_on" });
    assert.equal(enabled, false);
    assert.equal(receiver.requests, 0);
    assert.deepEqual(loaded, []);
    assert.doesNotMatch(stderr, /Warning/);
  });

  test("OTEL_TRACES_EXPORTER=console without an endpoint: each span as one JSON line on stdout, no OTLP exporter loaded", async () => {
    const { enabled, lines, loaded } = await runFixture({ OTEL_TRACES_EXPORTER: "console", OTEL_TRACES_SAMPLER: "always_on" });
    assert.equal(enabled, true);
    assert.deepEqual(lines.map((l) => l.name).sort(), [...ALL].sort(), "every stdout line parsed as JSON; one per span");
    const low = lines.find((l) => l.name === "sampled-parent-low-id")!;
    assert.equal(low.traceId, "00000000000000000000000000000001");
    assert.match(String(low.id), /^[0-9a-f]{16}$/);
    assert.equal((low.parentSpanContext as { spanId: string }).spanId, "00f067aa0ba902b7");
    assert.equal((low.resource as { attributes: Record<string, unknown> }).attributes["service.name"], "fixture-svc");
    assert.equal((low.instrumentationScope as { name: string }).name, "telemetry-fixture");
    assert.equal(typeof low.timestamp, "number");
    assert.equal(typeof low.duration, "number");
    assert.deepEqual(exportersLoaded(loaded), []);
  });

  test("OTEL_TRACES_EXPORTER=otlp,console: the same spans to both", async () => {
    const { receiver, lines } = await run({ OTEL_TRACES_EXPORTER: "otlp,console" });
    assert.deepEqual(exported(receiver), ["root", "sampled-parent-high-id", "sampled-parent-low-id"]);
    assert.deepEqual(lines.map((l) => l.name).sort(), exported(receiver));
    assert.deepEqual(lines.map((l) => l.id).sort(), receiver.spans.map((s) => s.spanId).sort());
  });

  test("OTEL_TRACES_EXPORTER with values this kit does not support: one warning naming them, the rest runs", async () => {
    const { receiver, stderr, lines } = await run({ OTEL_TRACES_EXPORTER: "zipkin,otlp" });
    const warnings = warningsIn(stderr, "CRM_OTEL_TRACES_EXPORTER");
    assert.equal(warnings.length, 1, stderr);
    assert.match(warnings[0]!, /OTEL_TRACES_EXPORTER="zipkin,otlp": "zipkin" ignored/);
    assert.deepEqual(exported(receiver), ["root", "sampled-parent-high-id", "sampled-parent-low-id"]);
    assert.deepEqual(lines, []);
  });
});

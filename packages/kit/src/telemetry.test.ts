/**
 * The standard OTEL_* variables, as the OpenTelemetry specification defines them
 * (https://opentelemetry.io/docs/specs/otel/configuration/sdk-environment-variables/), do what it
 * says in a kit process: `telemetryEnabledBy` decides from the endpoint and OTEL_SDK_DISABLED; the
 * rest is checked on what arrives at a real OTLP/HTTP receiver. Tracing is process-global, so each
 * environment runs in a process of its own (telemetry.fixture.ts: five spans, then exit).
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, test } from "node:test";
import { startOtlpReceiver, type OtlpReceiver } from "@crm/testkit/otlp-receiver";
import { startTelemetry, telemetryEnabledBy } from "./telemetry.js";

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

const fixture = fileURLToPath(new URL("./telemetry.fixture.ts", import.meta.url));

/** Runs the fixture with exactly `otel` as its OTEL_* environment; resolves once it has exported and exited. */
function runFixture(otel: Record<string, string>): Promise<{ enabled: boolean; made: number }> {
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
      const line = out.split("\n").find((l) => l.startsWith("{"));
      if (code !== 0 || !line) reject(new Error(`the telemetry fixture exited with ${code}:\n${out}\n${err}`));
      else resolve(JSON.parse(line) as { enabled: boolean; made: number });
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

/** One fixture run against a fresh receiver at OTEL_EXPORTER_OTLP_ENDPOINT (plus `otel`). */
async function run(otel: Record<string, string>, endpointPath = "") {
  const receiver = await startOtlpReceiver();
  try {
    const result = await runFixture({ OTEL_EXPORTER_OTLP_ENDPOINT: `${receiver.url}${endpointPath}`, ...otel });
    assert.equal(result.made, 5);
    return { ...result, receiver };
  } finally {
    await receiver.close();
  }
}

describe("OTEL_* variables in a kit process, seen at an OTLP/HTTP receiver", { timeout: 300_000 }, () => {
  test("OTEL_SDK_DISABLED=true: nothing is sent, though an endpoint is set", async () => {
    const { enabled, receiver } = await run({ OTEL_SDK_DISABLED: "true", OTEL_TRACES_SAMPLER: "always_on" });
    assert.equal(enabled, false);
    assert.equal(receiver.requests, 0);
  });

  test("the default sampler (parentbased_always_on), OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES on the exported resource, the endpoint's path + /v1/traces", async () => {
    const { enabled, receiver } = await run(
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
    for (const s of receiver.spans) {
      assert.equal(s.resource["service.name"], "billing-eu");
      assert.equal(s.resource["service.namespace"], "shop");
      assert.equal(s.resource["deployment.environment.name"], "staging");
      assert.equal(s.resource["k8s.pod.name"], "crm-auth,7d");
      assert.equal(s.resource["telemetry.sdk.language"], "nodejs");
    }
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
});

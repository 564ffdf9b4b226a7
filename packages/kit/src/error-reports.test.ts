/** Error reports: the error interceptor's `internal` path feeds the sink; the reporter batches, bounds and detaches. */
import assert from "node:assert/strict";
import { afterEach, test } from "node:test";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { CacheService } from "@crm/gen/crm/cache/v1/cache_pb";
import { callContext, currentCall } from "./context.js";
import { LogLevel, LogsService } from "@crm/gen/crm/logs/v1/logs_pb";
import { createErrorReporter, logsServiceSender, setErrorSink, type ErrorReport } from "./error-reports.js";
import { contextInterceptor, errorInterceptor } from "./interceptors.js";
import { createLogger } from "./logger.js";
import { metricsInterceptor, metricsRegistry } from "./metrics.js";

afterEach(() => setErrorSink(undefined));

const report = (message: string): ErrorReport => ({ service: "t", level: "error", message, time: new Date(), attributes: {} });

test("an unhandled error becomes `internal` for the caller and an error report with the rpc, error, request and trace ids", async () => {
  const got: ErrorReport[] = [];
  setErrorSink((r) => got.push(r));
  const log = createLogger("probe", "error");
  const transport = createRouterTransport(
    (router) =>
      router.service(CacheService, {
        async get() {
          throw new TypeError("cannot read properties of undefined");
        },
      }),
    { router: { interceptors: [metricsInterceptor(() => "probe"), contextInterceptor(), errorInterceptor(log)] } },
  );
  const client = createClient(CacheService, transport);
  await assert.rejects(client.get({ key: "k" }, { headers: { traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "x-request-id": "req-1" } }), (err) => {
    assert.ok(err instanceof ConnectError);
    assert.equal(err.code, Code.Internal);
    assert.match(err.message, /request id req-1/);
    assert.doesNotMatch(err.message, /undefined/, "the bug's details stay in the logs");
    return true;
  });
  assert.equal(got.length, 1);
  const r = got[0]!;
  assert.equal(r.service, "probe");
  assert.equal(r.level, "error");
  assert.equal(r.message, "unhandled error");
  assert.equal(r.traceId, "4bf92f3577b34da6a3ce929d0e0e4736");
  assert.equal(r.attributes.rpc, "/crm.cache.v1.CacheService/Get");
  assert.equal(r.attributes.request_id, "req-1");
  assert.equal(r.attributes.error_type, "TypeError");
  assert.match(r.attributes.error!, /cannot read properties/);
  const text = await metricsRegistry.metrics();
  assert.match(text, /crm_rpc_errors_total\{service="probe",rpc="\/crm.cache.v1.CacheService\/Get",code="internal"\} 1/);
  assert.match(text, /crm_rpc_duration_seconds_count\{service="probe",rpc="\/crm.cache.v1.CacheService\/Get"\} 1/);
});

test("warnings and info are not reported; a logger built with reportErrors: false never is", () => {
  const got: ErrorReport[] = [];
  setErrorSink((r) => got.push(r));
  const log = createLogger("quiet", "info");
  log.warn("w");
  createLogger("no-report", "fatal", { reportErrors: false }).fatal("f");
  assert.equal(got.length, 0);
});

test("LOGS_REPORT_LEVEL: warnings, or info lines and up, are reported too, at their level, and reach SaveLogs as such", async () => {
  const got: ErrorReport[] = [];
  setErrorSink((r) => got.push(r));
  const info = createLogger("chatty", "debug", { reportLevel: "info" });
  info.debug("not this one");
  info.info({ port: 1 }, "ready");
  info.info({ only: "fields" });
  createLogger("warny", "info", { reportLevel: "warn" }).info("not this one");
  createLogger("warny", "info", { reportLevel: "warn" }).warn("w");
  createLogger("quiet", "info", { reportLevel: "info" }).trace("below LOG_LEVEL: never");
  assert.deepEqual(got.map((r) => [r.service, r.level, r.message]), [["chatty", "info", "ready"], ["chatty", "info", "(no message)"], ["warny", "warn", "w"]]);
  assert.equal(got[0]!.attributes.port, "1");
  const saved: { level: LogLevel; message: string }[] = [];
  const logs = createClient(LogsService, createRouterTransport((r) => r.service(LogsService, { saveLogs: (req) => (saved.push(...req.entries), { accepted: req.entries.length }) })));
  await logsServiceSender(logs)([...got, { ...report("boom"), level: "fatal" }, { ...report("  "), level: "info" }]);
  assert.deepEqual(saved.map((e) => [e.level, e.message]), [[LogLevel.INFO, "ready"], [LogLevel.INFO, "(no message)"], [LogLevel.WARN, "w"], [LogLevel.FATAL, "boom"], [LogLevel.INFO, "(no message)"]]);
});

test("the reporter sends in batches from a timer, outside the request's call context", async () => {
  const batches: { n: number; call: unknown }[] = [];
  let sent!: () => void;
  const done = new Promise<void>((r) => (sent = r));
  const reporter = createErrorReporter({
    log: createLogger("t", "silent"),
    maxBatch: 100,
    flushMs: 5,
    send: async (rs) => {
      batches.push({ n: rs.length, call: currentCall() });
      sent();
    },
  });
  callContext.run({ requestId: "r1", authorization: "Bearer user-token" }, () => {
    reporter.report(report("a"));
    reporter.report(report("b"));
  });
  // The reporter's timer is unref'd (it never holds a process open): hold the loop for the test.
  const hold = setInterval(() => {}, 1000);
  await done;
  clearInterval(hold);
  assert.deepEqual(batches, [{ n: 2, call: undefined }], "one batch, and no user token forwarded");
});

test("the reporter drops the oldest when its queue is full, and survives a failing send", async () => {
  const seen: string[] = [];
  let fail = true;
  const reporter = createErrorReporter({
    log: createLogger("t", "silent"),
    maxQueue: 3,
    maxBatch: 100,
    flushMs: 60_000,
    send: async (rs) => {
      if (fail) throw new Error("logs service down");
      seen.push(...rs.map((r) => r.message));
    },
  });
  for (const m of ["1", "2", "3", "4", "5"]) reporter.report(report(m));
  assert.equal(reporter.stats.dropped, 2);
  await reporter.flush();
  assert.equal(reporter.stats.failedSends, 1);
  fail = false;
  reporter.report(report("6"));
  await reporter.flush();
  assert.deepEqual(seen, ["6"]);
});

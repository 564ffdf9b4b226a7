/** The Loki shipper against a stand-in Loki that checks every push's format: batching, retry, drop, refusal. */
import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { after, before, test } from "node:test";
import { pino } from "pino";
import { createLokiShipper, type ShipperOptions } from "../src/shipper.js";
import type { LogRecord } from "../src/validation.js";
import { startLokiReceiver, type LokiReceiver } from "./loki-receiver.js";

let loki: LokiReceiver;
before(async () => {
  loki = await startLokiReceiver();
});
after(async () => {
  await loki?.close();
});

function capture() {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split("\n")) if (l) lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  return { log: pino({ level: "info" }, stream), lines };
}

const base = Date.now();
function rec(i: number, over: Partial<LogRecord> = {}): LogRecord {
  return {
    name: "chats",
    level: "error",
    message: `entry ${i}`,
    companyId: "",
    userId: "",
    traceId: "",
    attributes: { i: String(i) },
    timeNs: BigInt(base + i) * 1_000_000n,
    bytes: 300,
    ...over,
  };
}

function shipper(over: Partial<ShipperOptions> = {}) {
  const { log, lines } = capture();
  const s = createLokiShipper({
    url: loki.url,
    batchEntries: 10,
    batchBytes: 1024 * 1024,
    flushMs: 60_000,
    bufferEntries: 1000,
    bufferBytes: 16 * 1024 * 1024,
    timeoutMs: 5_000,
    retryFirstMs: 5,
    retryMaxMs: 40,
    companyLabel: false,
    structuredMetadata: false,
    log,
    ...over,
  });
  return { s, lines };
}

const reset = () => {
  loki.entries.length = 0;
  loki.pushes.length = 0;
  loki.violations.length = 0;
  loki.script.length = 0;
  loki.release();
};

test("a full batch goes out at once; the rest waits for the timer or a flush", async () => {
  reset();
  const { s } = shipper({ batchEntries: 10 });
  s.push(Array.from({ length: 25 }, (_, i) => rec(i)));
  await loki.waitFor((r) => r.entries.length >= 20);
  assert.deepEqual(loki.pushes.map((p) => p.entries), [10, 10], "two full batches, the 5 others wait (flushMs is 60 s)");
  assert.equal(s.stats.buffered, 5);
  await s.flush();
  assert.deepEqual(loki.pushes.map((p) => p.entries), [10, 10, 5]);
  assert.deepEqual(loki.entries.map((e) => e.parsed.msg), Array.from({ length: 25 }, (_, i) => `entry ${i}`), "in order, each once");
  assert.deepEqual(loki.violations, []);
  await s.close();
});

test("a batch also goes out when its bytes reach LOKI_BATCH_BYTES", async () => {
  reset();
  const { s } = shipper({ batchEntries: 1000, batchBytes: 3000 });
  s.push(Array.from({ length: 10 }, (_, i) => rec(i, { bytes: 1000 })));
  await loki.waitFor((r) => r.entries.length >= 9);
  assert.deepEqual(loki.pushes.map((p) => p.entries), [3, 3, 3]);
  await s.close();
  assert.equal(loki.entries.length, 10);
});

test("a few entries go out after LOKI_FLUSH_MS without a flush", async () => {
  reset();
  const { s } = shipper({ batchEntries: 1000, flushMs: 30 });
  s.push([rec(1), rec(2), rec(3)]);
  assert.equal(loki.pushes.length, 0, "nothing is sent synchronously");
  await loki.waitFor((r) => r.entries.length === 3);
  assert.deepEqual(loki.pushes.map((p) => p.entries), [3]);
  await s.close();
});

test("the push follows Loki's format: low-cardinality labels; ids, attributes in the JSON line; ns timestamps", async () => {
  reset();
  const { s } = shipper({ companyLabel: true, structuredMetadata: true });
  const company = "7d0a1e52-4b0e-4d59-8f3b-0f9a3c6a1f10";
  const user = "0c4b3c1a-9d7e-4c1e-9a55-2f7e0a7d9b11";
  const trace = "4bf92f3577b34da6a3ce929d0e0e4736";
  s.push([rec(1, { companyId: company, userId: user, traceId: trace, level: "warn" }), rec(2, { name: "my-frontend", level: "info" })]);
  await s.flush();
  assert.deepEqual(loki.violations, []);
  const [a, b] = loki.entries;
  assert.deepEqual(a!.labels, { service: "chats", level: "warn", company_id: company });
  assert.deepEqual(a!.parsed, { msg: "entry 1", name: "chats", trace_id: trace, user_id: user, company_id: company, attrs: { i: "1" } });
  assert.deepEqual(a!.metadata, { trace_id: trace, user_id: user, company_id: company });
  assert.equal(a!.ts, (BigInt(base + 1) * 1_000_000n).toString());
  assert.deepEqual(b!.labels, { service: "other", level: "info" }, "unknown service names do not become label values");
  assert.equal(b!.parsed.name, "my-frontend");
  await s.close();
});

test("LOKI_URL credentials become Basic auth and LOKI_TENANT X-Scope-OrgID", async () => {
  reset();
  const u = new URL(loki.url);
  u.username = "crm";
  u.password = "s3cret";
  const { s } = shipper({ url: u.toString(), tenant: "team-a" });
  s.push([rec(1)]);
  await s.flush();
  assert.equal(loki.pushes[0]!.headers.authorization, `Basic ${Buffer.from("crm:s3cret").toString("base64")}`);
  assert.equal(loki.pushes[0]!.headers["x-scope-orgid"], "team-a");
  await s.close();
});

test("5xx and 429 are retried with backoff until Loki takes the batch: each entry arrives once", async () => {
  reset();
  loki.script.push(500, 503, 429);
  const { s, lines } = shipper({ batchEntries: 5 });
  s.push(Array.from({ length: 5 }, (_, i) => rec(i)));
  await loki.waitFor((r) => r.entries.length === 5);
  await s.flush(); // the shipper has seen Loki's answer
  assert.deepEqual(loki.pushes.map((p) => p.status), [500, 503, 429, 204]);
  assert.equal(s.stats.failedPushes, 3);
  assert.equal(s.stats.shipped, 5);
  assert.deepEqual(loki.entries.map((e) => e.parsed.msg), ["entry 0", "entry 1", "entry 2", "entry 3", "entry 4"]);
  assert.ok(lines.some((l) => l.msg === "pushing logs to Loki failed; will retry"), "the failure is logged");
  await s.close();
});

test("Loki down: the buffer keeps the newest entries, drops the oldest with a counted warning; SaveLogs-side push never waits", async () => {
  reset();
  loki.mode = 503;
  const { s, lines } = shipper({ batchEntries: 5, bufferEntries: 20, retryFirstMs: 5, retryMaxMs: 20 });
  for (let i = 0; i < 50; i++) s.push([rec(i)]); // synchronous: returns while Loki fails
  await loki.waitFor((r) => r.pushes.length >= 2); // it keeps retrying
  // 5 went out in the first push and failed: back in front, they were the oldest to go.
  assert.equal(s.stats.dropped, 30);
  const warning = lines.find((l) => l.msg === "log buffer full (Loki is slow or down): oldest entries dropped");
  assert.ok(warning, "a warning names the drop");
  assert.equal(typeof warning.dropped, "number");
  loki.mode = "ok";
  await s.flush(10_000);
  assert.deepEqual(
    loki.entries.map((e) => e.parsed.msg),
    Array.from({ length: 20 }, (_, i) => `entry ${30 + i}`),
    "the newest 20 survive, in order",
  );
  await s.close();
});

test("a hanging Loki holds one push in flight; new entries still buffer and go after it", async () => {
  reset();
  loki.mode = "hang";
  const { s } = shipper({ batchEntries: 2 });
  s.push([rec(0), rec(1)]);
  await loki.waitFor(() => s.stats.pushes === 1);
  s.push([rec(2), rec(3), rec(4)]);
  assert.equal(s.stats.pushes, 1, "one push at a time");
  loki.release();
  await s.flush();
  assert.deepEqual(loki.entries.map((e) => e.parsed.msg), ["entry 0", "entry 1", "entry 2", "entry 3", "entry 4"]);
  await s.close();
});

test("a 400 (Loki refuses the data) drops that batch with a warning instead of retrying forever", async () => {
  reset();
  loki.script.push(400);
  const { s, lines } = shipper({ batchEntries: 3 });
  s.push([rec(0), rec(1), rec(2)]);
  await loki.waitFor((r) => r.pushes.length === 1);
  await s.flush();
  s.push([rec(3)]);
  await s.flush();
  assert.equal(s.stats.rejected, 3);
  assert.deepEqual(loki.entries.map((e) => e.parsed.msg), ["entry 3"]);
  assert.ok(lines.some((l) => l.msg === "Loki refused a batch of log entries; they were dropped" && l.status === 400));
  await s.close();
});

test("pushAndWait resolves once Loki took the entries (soon, not at LOKI_FLUSH_MS), through retries; rejects for dropped or refused ones", async () => {
  reset();
  const { s } = shipper({ flushMs: 60_000, batchEntries: 100 });
  loki.script.push(503);
  const started = Date.now();
  await s.pushAndWait([rec(1), rec(2)]);
  assert.ok(Date.now() - started < 10_000, "sent within ~100 ms, retried after the 503");
  assert.deepEqual(loki.pushes.map((p) => p.status), [503, 204]);
  assert.equal(loki.entries.length, 2);
  reset();
  loki.script.push(400);
  await assert.rejects(s.pushAndWait([rec(3)]), /Loki refused them \(400\)/);
  reset();
  // More than the buffer holds: the oldest is dropped at once, and its caller hears so.
  const small = shipper({ bufferEntries: 2, flushMs: 60_000, batchEntries: 100 }).s;
  await assert.rejects(small.pushAndWait([rec(10), rec(11), rec(12)]), /the log buffer was full/);
  await small.close(1000);
});

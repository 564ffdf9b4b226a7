/**
 * One RPC through all-in-one that calls a peer and the database produces ONE trace whose spans
 * are parented correctly: caller's traceparent → auth SERVER span → CLIENT span to dbservice →
 * dbservice SERVER span → pg spans. Spans are collected by an OTLP/HTTP receiver in this test.
 * (The cluster version — gateway → chats → RabbitMQ → subscriber — lives with the cluster tests.)
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from "@crm/testkit/otlp-receiver";

// Tracing must start before the app's clients exist: the receiver first, then telemetry, then the app.
const receiver: OtlpReceiver = await startOtlpReceiver();
process.env.OTEL_EXPORTER_OTLP_ENDPOINT = receiver.url;
process.env.OTEL_BSP_SCHEDULE_DELAY = "50";
const { startTelemetry } = await import("@crm/kit/telemetry");
const telemetry = await startTelemetry("crm-test");
const { freshDatabase, installHint, need, postgresUp } = await import("@crm/testkit");
const { startTestApp } = await import("@crm/all/test-app");
const { AuthService } = await import("@crm/gen/crm/auth/v1/auth_pb");
const { CacheService } = await import("@crm/gen/crm/cache/v1/cache_pb");

const skip = need("PostgreSQL", await postgresUp(), installHint.postgres);

let db: Awaited<ReturnType<typeof freshDatabase>> | undefined;
let app: Awaited<ReturnType<typeof startTestApp>> | undefined;
before(async () => {
  if (skip) return;
  db = await freshDatabase();
  app = await startTestApp({ DATABASE_URL: db.url });
});
after(async () => {
  await app?.close();
  await db?.drop();
  await telemetry.shutdown();
  await receiver.close();
});

const hex = (n: number) => [...crypto.getRandomValues(new Uint8Array(n))].map((b) => b.toString(16).padStart(2, "0")).join("");

test("RegisterCompany → dbservice → PostgreSQL is one trace with correctly parented spans", { skip }, async () => {
  assert.equal(telemetry.enabled, true);
  const traceId = hex(16);
  const callerSpan = hex(8);
  const auth = app!.client(AuthService);
  await auth.registerCompany(
    { companyName: "Traced Ltd", email: `trace${Date.now()}@example.com`, password: "correct horse battery", ownerName: "Tracy" },
    { headers: { traceparent: `00-${traceId}-${callerSpan}-01` } },
  );
  await telemetry.flush();
  // Spans arrive in export batches, a parent often after its children: wait for the whole trace
  // (the auth span, and the parent of every span of the trace), not only for the first of it.
  const complete = (all: ReceivedSpan[]) => {
    const trace = all.filter((s) => s.traceId === traceId);
    const ids = new Set(trace.map((s) => s.spanId));
    return trace.some((s) => s.name === "crm.auth.v1.AuthService/RegisterCompany") && trace.every((s) => s.parentSpanId === callerSpan || ids.has(s.parentSpanId));
  };
  const spans = await receiver.waitFor(complete);
  const trace = spans.filter((s) => s.traceId === traceId);
  const byId = new Map(trace.map((s) => [s.spanId, s]));
  const one = (pred: (s: ReceivedSpan) => boolean, what: string) => {
    const found = trace.filter(pred);
    assert.equal(found.length, 1, `${what}: expected one span, got ${found.length} in ${trace.map((s) => s.name).join(", ")}`);
    return found[0]!;
  };
  const SERVER = 2;
  const CLIENT = 3;
  const authServer = one((s) => s.name === "crm.auth.v1.AuthService/RegisterCompany" && s.kind === SERVER, "auth server span");
  assert.equal(authServer.parentSpanId, callerSpan, "the auth span continues the caller's traceparent");
  assert.equal(authServer.service, "crm-test");
  const dbClient = one((s) => s.name === "crm.db.v1.DbAuthService/RegisterCompany" && s.kind === CLIENT, "client span to dbservice");
  assert.equal(dbClient.parentSpanId, authServer.spanId);
  const dbServer = one((s) => s.name === "crm.db.v1.DbAuthService/RegisterCompany" && s.kind === SERVER, "dbservice server span");
  assert.equal(dbServer.parentSpanId, dbClient.spanId);
  const pgSpans = trace.filter((s) => s.scope.includes("pg"));
  assert.ok(pgSpans.length >= 2, `pg spans expected, got: ${trace.map((s) => `${s.scope}:${s.name}`).join(", ")}`);
  // every pg span descends from the dbservice span
  for (const s of pgSpans) {
    let p: ReceivedSpan | undefined = s;
    while (p && p.spanId !== dbServer.spanId) p = byId.get(p.parentSpanId);
    const chain: string[] = [];
    for (let q: ReceivedSpan | undefined = s; q; q = byId.get(q.parentSpanId)) chain.push(`${q.scope}:${q.name}`);
    assert.ok(p, `pg span ${s.name} is not under the dbservice span: its parents ${chain.join(" < ")}; the trace: ${trace.map((x) => `${x.scope}:${x.name}`).join(", ")}`);
  }
  assert.ok(pgSpans.some((s) => String(s.attributes["db.statement"] ?? s.attributes["db.query.text"] ?? "").length > 0), "pg spans carry the statement");
  // nothing of this request leaked into another trace
  assert.equal(spans.filter((s) => s.traceId !== traceId && s.name.includes("RegisterCompany")).length, 0);
});

test("a failed RPC marks its span with the Connect code; a call without traceparent starts a new trace", { skip }, async () => {
  const cache = app!.client(CacheService);
  await assert.rejects(cache.get({ key: "x" })); // no token: unauthenticated
  await telemetry.flush();
  const spans = await receiver.waitFor((all) => all.some((s) => s.name === "crm.cache.v1.CacheService/Get"));
  const span = spans.find((s) => s.name === "crm.cache.v1.CacheService/Get")!;
  assert.equal(span.parentSpanId, "");
  assert.equal(span.attributes["rpc.connect_rpc.error_code"], "unauthenticated");
  assert.equal(span.attributes["rpc.grpc.status_code"], 16);
});

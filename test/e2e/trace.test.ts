/**
 * One SendMessage through the local cluster is ONE trace: NGINX gateway → chats (SERVER) → its
 * call to dbservice (CLIENT) → dbservice (SERVER) → PostgreSQL (pg spans) → the outbox relay's
 * RabbitMQ publish (PRODUCER) → the chats subscriber (CONSUMER) → the event on a live Subscribe
 * stream. Every service is its own process exporting OTLP to a receiver in this test.
 * Twice: with the client's traceparent (continued unchanged by the gateway), and without one (the
 * gateway starts the trace; its id is the request id in the gateway's access log).
 *
 * Needs nginx + the njs module and the local PostgreSQL/Redis/RabbitMQ, like gateway.test.ts.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, watch } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { ChatService } from "@crm/gen/crm/chat/v1/chat_pb";
import { dropDatabase, needNone } from "@crm/testkit";
import { checkPrerequisites, defaults, startCluster, type Cluster } from "../../scripts/cluster/lib.mjs";
import { nginxProblem } from "../../services/gateway/run.mjs";
import { request } from "../../services/gateway/test/helpers.ts";
import { startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from "@crm/testkit/otlp-receiver";

const backing = await checkPrerequisites({ ...defaults, gateway: false });
const skip = needNone(nginxProblem(), ...backing);

const SERVER = 2;
const CLIENT = 3;
const PRODUCER = 4;
const CONSUMER = 5;

/** The spans of one SendMessage, found in a trace; undefined where one is missing. */
function chainOf(trace: ReceivedSpan[]) {
  const send = trace.find((s) => s.kind === SERVER && s.service === "chats" && s.name === "crm.chat.v1.ChatService/SendMessage");
  const dbClient = send && trace.find((s) => s.kind === CLIENT && s.service === "chats" && s.name.startsWith("crm.db.v1.DbChatService/") && s.parentSpanId === send.spanId);
  const dbServer = dbClient && trace.find((s) => s.kind === SERVER && s.service === "dbservice" && s.parentSpanId === dbClient.spanId);
  const pgSpans = trace.filter((s) => s.service === "dbservice" && s.scope.includes("pg"));
  const producer = trace.find((s) => s.kind === PRODUCER && s.service === "dbservice");
  const consumer = trace.find((s) => s.kind === CONSUMER && s.service === "chats");
  return { send, dbClient, dbServer, pgSpans, producer, consumer };
}

const complete = (spans: ReceivedSpan[], traceId: string) => {
  const c = chainOf(spans.filter((s) => s.traceId === traceId));
  return Boolean(c.send && c.dbClient && c.dbServer && c.pgSpans.length > 0 && c.producer && c.consumer);
};

describe("one trace per SendMessage through the cluster", { skip, timeout: 600_000 }, () => {
  const tag = `${process.pid}_${randomBytes(3).toString("hex")}`;
  const dbName = `crm_e2e_trace_${tag}`;
  let dir: string;
  let receiver: OtlpReceiver;
  let cluster: Cluster;
  let ca: Buffer;
  let token: string;
  let chatId: string;
  const json = { "content-type": "application/json" };
  const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
    request({ port: cluster.httpsPort, ca, path, method: "POST", headers: { ...json, ...headers }, body: JSON.stringify(body) });

  /** The live stream's messages; `nextMessage` resolves with the next one. */
  const stream = { ac: new AbortController(), messages: [] as string[], waiting: [] as ((m: string) => void)[], done: Promise.resolve() };
  const nextMessage = (timeoutMs = 20_000) =>
    new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no live message within ${timeoutMs} ms`)), timeoutMs);
      stream.waiting.push((m) => (clearTimeout(timer), resolve(m)));
    });

  /** The gateway's access-log entries for `uri`, once there are `count` of them (the log is written after the answer). */
  const accessLog = (uri: string, count: number) =>
    new Promise<{ request_id: string }[]>((resolve, reject) => {
      const file = join(cluster.logDir, "gateway-access.log");
      const read = () =>
        readFileSync(file, "utf8")
          .split("\n")
          .filter(Boolean)
          .map((l) => JSON.parse(l) as { uri: string; request_id: string })
          .filter((e) => e.uri === uri);
      const watcher = watch(file);
      const timer = setTimeout(() => (watcher.close(), reject(new Error(`the access log has ${read().length} entries for ${uri}, expected ${count}`))), 20_000);
      const check = () => {
        const entries = read();
        if (entries.length < count) return;
        clearTimeout(timer);
        watcher.close();
        resolve(entries);
      };
      watcher.on("change", check);
      check();
    });

  before(async () => {
    receiver = await startOtlpReceiver();
    dir = mkdtempSync(join(tmpdir(), "crm-e2e-trace-"));
    cluster = await startCluster({
      dataDir: dir,
      ports: "free",
      only: ["dbservice", "auth", "chats", "logs"],
      databaseUrl: `postgres://postgres@127.0.0.1:5432/${dbName}`,
      redisUrl: "redis://127.0.0.1:6379/7",
      env: { LOG_LEVEL: "info", LOGS_REPORT_ERRORS: "false", OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_BSP_SCHEDULE_DELAY: "50" },
      gateway: { clientVerify: "optional", vars: { CRM_GW_WORKERS: "1" } },
      readyTimeoutMs: 240_000,
    });
    ca = readFileSync(cluster.pki.ca);
    const reg = await post("/auth/register", {
      companyName: `Trace ${tag}`,
      address: "1 Test Street",
      email: `trace-${tag}@example.com`,
      phone: `+1415${String(Math.floor(Math.random() * 1e7)).padStart(7, "0")}`,
      password: "correct horse battery staple 42",
      ownerName: "Tracy Owner",
    });
    assert.equal(reg.status, 200, reg.body);
    token = reg.json().accessToken;
    const created = await post("/chats/createNewChat", { name: "traced room", memberIds: [] }, { authorization: `Bearer ${token}` });
    assert.equal(created.status, 200, created.body);
    chatId = created.json().chat.chatId;

    // A live subscriber through the gateway: the chats replica consumes this chat's events from RabbitMQ.
    const chats = createClient(ChatService, createConnectTransport({ baseUrl: cluster.gatewayUrl, httpVersion: "1.1", nodeOptions: { ca } }));
    let live!: () => void;
    const isLive = new Promise<void>((r) => (live = r));
    stream.done = (async () => {
      try {
        for await (const ev of chats.subscribe({ chatId }, { headers: { authorization: `Bearer ${token}` }, signal: stream.ac.signal })) {
          if (ev.event.case === "heartbeat") live(); // the first one says the stream is subscribed
          if (ev.event.case === "message") {
            stream.messages.push(ev.event.value.content);
            stream.waiting.shift()?.(ev.event.value.content);
          }
        }
      } catch {
        // aborted at the end
      }
    })();
    await isLive;
  });

  after(async () => {
    stream.ac.abort();
    await stream.done;
    await cluster?.stop();
    await receiver?.close();
    await dropDatabase(dbName);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** Sends one message through the gateway and checks its trace; returns the chats server span. */
  async function sendAndTrace(content: string, headers: Record<string, string>, traceIdOf: () => Promise<string>) {
    const got = nextMessage();
    const sent = await post(`/chats/${chatId}/sendMessage`, { content, clientMessageId: `m-${randomBytes(6).toString("hex")}` }, { authorization: `Bearer ${token}`, ...headers });
    assert.equal(sent.status, 200, sent.body);
    assert.equal(await got, content, "the subscriber got the message");
    const traceId = await traceIdOf();
    const spans = await receiver.waitFor((all) => complete(all, traceId), 30_000).catch((err: Error) => {
      const mine = receiver.spans.filter((s) => s.traceId === traceId);
      throw new Error(`${err.message.slice(0, 200)}…\ntrace ${traceId} has: ${mine.map((s) => `${s.service} ${s.kind}:${s.scope}:${s.name}`).join(", ")}`);
    });
    const trace = spans.filter((s) => s.traceId === traceId);
    const byId = new Map(trace.map((s) => [s.spanId, s]));
    const names = trace.map((s) => `${s.service} ${s.kind}:${s.scope}:${s.name}`).join(", ");
    const under = (s: ReceivedSpan, ancestor: ReceivedSpan) => {
      for (let p: ReceivedSpan | undefined = s; p; p = byId.get(p.parentSpanId)) if (p.spanId === ancestor.spanId) return true;
      return false;
    };
    const { send, dbClient, dbServer, pgSpans, producer, consumer } = chainOf(trace);
    assert.ok(send && dbClient && dbServer && producer && consumer, names);
    assert.equal(dbClient.parentSpanId, send.spanId, "chats' call to dbservice is a child of SendMessage");
    assert.equal(dbServer.parentSpanId, dbClient.spanId, "dbservice continues chats' client span (traceparent over mTLS HTTP/2)");
    assert.ok(pgSpans.some((s) => under(s, dbServer) && /INSERT|SELECT|WITH|BEGIN|COMMIT|query/i.test(`${s.name} ${String(s.attributes["db.statement"] ?? s.attributes["db.query.text"] ?? "")}`)), `pg spans under dbservice's server span: ${names}`);
    assert.ok(pgSpans.every((s) => under(s, dbServer)), `every pg span of this trace descends from dbservice's server span: ${names}`);
    assert.ok(under(producer, send), "the relay's publish descends from SendMessage (trace context stored with the outbox row)");
    assert.equal(consumer.parentSpanId, producer.spanId, "the chats subscriber's span is the publish span's child");
    assert.ok(!byId.has(send.parentSpanId), "SendMessage's parent is the caller's (client or gateway) span, outside the services");
    return send;
  }

  it("continues the client's traceparent through every hop", async () => {
    const traceId = randomBytes(16).toString("hex");
    const callerSpan = randomBytes(8).toString("hex");
    const send = await sendAndTrace("follow me", { traceparent: `00-${traceId}-${callerSpan}-01` }, async () => traceId);
    assert.equal(send.parentSpanId, callerSpan, "the gateway passed the client's traceparent unchanged");
  });

  it("without a client traceparent, the gateway's trace (id = its request id) is the one through every hop", async () => {
    const uri = `/chats/${chatId}/sendMessage`;
    const before = (await accessLog(uri, 0)).length;
    const known = new Set(receiver.spans.map((s) => s.traceId));
    let gatewayTrace = "";
    await sendAndTrace("no traceparent", {}, async () => {
      const entries = await accessLog(uri, before + 1);
      gatewayTrace = entries[before]!.request_id;
      return gatewayTrace;
    });
    assert.match(gatewayTrace, /^[0-9a-f]{32}$/);
    assert.ok(!known.has(gatewayTrace), "a new trace");
  });
});

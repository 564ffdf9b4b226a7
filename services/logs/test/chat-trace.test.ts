/**
 * One SendMessage is ONE trace through every hop that carries it: chats SERVER span → CLIENT span
 * to dbservice → dbservice SERVER span → pg (message + outbox row in one transaction) → the outbox
 * relay's RabbitMQ publish (PRODUCER, in the request's trace from the row's stored traceparent) →
 * the chats subscriber's CONSUMER span → the event on a live Subscribe stream.
 * All-in-one in this process on the real PostgreSQL and RabbitMQ (the network hops of the cluster
 * add client/server spans of the same kind; the gateway hop belongs to the cluster tests).
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { startOtlpReceiver, type ReceivedSpan } from "@crm/testkit/otlp-receiver";

const receiver = await startOtlpReceiver();
process.env.OTEL_EXPORTER_OTLP_ENDPOINT = receiver.url;
process.env.OTEL_BSP_SCHEDULE_DELAY = "50";
const { startTelemetry } = await import("@crm/kit/telemetry");
const telemetry = await startTelemetry("crm-chat-trace");
const { TEST_AMQP_URL, freshDatabase, installHint, need, postgresUp, rabbitUp } = await import("@crm/testkit");
const { startTestApp } = await import("@crm/all/test-app");
const { ChatService } = await import("@crm/gen/crm/chat/v1/chat_pb");
const { newCompany } = await import("./app.js");

const skip = need("PostgreSQL", await postgresUp(), installHint.postgres) || need("RabbitMQ", await rabbitUp(), installHint.rabbitmq);

let db: Awaited<ReturnType<typeof freshDatabase>> | undefined;
let app: Awaited<ReturnType<typeof startTestApp>> | undefined;
before(async () => {
  if (skip) return;
  db = await freshDatabase();
  app = await startTestApp({ DATABASE_URL: db.url, AMQP_URL: TEST_AMQP_URL });
});
after(async () => {
  await app?.close();
  await db?.drop();
  await telemetry.shutdown();
  await receiver.close();
});

const hex = (n: number) => [...crypto.getRandomValues(new Uint8Array(n))].map((b) => b.toString(16).padStart(2, "0")).join("");
const SERVER = 2;
const CLIENT = 3;
const PRODUCER = 4;
const CONSUMER = 5;

test("SendMessage → dbservice → PostgreSQL → outbox relay → RabbitMQ → subscriber is one trace", { skip, timeout: 60_000 }, async () => {
  const owner = await newCompany(app!);
  const chat = app!.client(ChatService, { token: owner.token });
  const { chat: created } = await chat.createChat({ name: "traced", memberIds: [] });
  const chatId = created!.chatId;

  // A live subscriber, so the chats hub consumes this chat's events from RabbitMQ.
  const ac = new AbortController();
  const received: string[] = [];
  let live!: () => void;
  const isLive = new Promise<void>((r) => (live = r));
  let got!: () => void;
  const gotMessage = new Promise<void>((r) => (got = r));
  const stream = (async () => {
    try {
      for await (const ev of chat.subscribe({ chatId }, { signal: ac.signal })) {
        if (ev.event.case === "heartbeat") live();
        if (ev.event.case === "message") {
          received.push(ev.event.value.content);
          got();
        }
      }
    } catch {
      // aborted at the end
    }
  })();
  await isLive;

  const traceId = hex(16);
  const callerSpan = hex(8);
  await chat.sendMessage({ chatId, content: "follow me", clientMessageId: `t-${traceId}` }, { headers: { traceparent: `00-${traceId}-${callerSpan}-01` } });
  await Promise.race([gotMessage, new Promise((_, rej) => setTimeout(() => rej(new Error("no live event within 15 s")), 15_000))]);
  assert.deepEqual(received, ["follow me"]);
  ac.abort();
  await stream;

  await telemetry.flush();
  // The publish span ends on the broker's confirm, which may come after the subscriber's delivery:
  // wait for both kinds rather than for whichever batch happens to be exported first.
  const spans = await receiver.waitFor((all) => [PRODUCER, CONSUMER].every((kind) => all.some((s) => s.traceId === traceId && s.kind === kind)), 20_000);
  const trace = spans.filter((s) => s.traceId === traceId);
  const byId = new Map(trace.map((s) => [s.spanId, s]));
  const names = trace.map((s) => `${s.kind}:${s.scope}:${s.name}`).join(", ");
  const under = (s: ReceivedSpan, ancestor: ReceivedSpan) => {
    for (let p: ReceivedSpan | undefined = s; p; p = byId.get(p.parentSpanId)) if (p.spanId === ancestor.spanId) return true;
    return false;
  };

  const send = trace.find((s) => s.kind === SERVER && s.name === "crm.chat.v1.ChatService/SendMessage");
  assert.ok(send, `chats server span: ${names}`);
  assert.equal(send.parentSpanId, callerSpan, "continues the caller's traceparent");
  const dbClient = trace.find((s) => s.kind === CLIENT && s.name.startsWith("crm.db.v1.DbChatService/") && s.parentSpanId === send.spanId);
  assert.ok(dbClient, `client span to dbservice: ${names}`);
  const dbServer = trace.find((s) => s.kind === SERVER && s.parentSpanId === dbClient.spanId);
  assert.ok(dbServer, `dbservice server span: ${names}`);
  const pgSpans = trace.filter((s) => s.scope.includes("pg"));
  assert.ok(pgSpans.length > 0 && pgSpans.every((s) => under(s, dbServer)), `pg spans under dbservice: ${names}`);
  const producer = trace.find((s) => s.kind === PRODUCER);
  assert.ok(producer, `RabbitMQ publish span in the request's trace: ${names}`);
  assert.ok(under(producer, send), "the relay's publish descends from SendMessage (trace context stored with the outbox row)");
  const consumer = trace.find((s) => s.kind === CONSUMER);
  assert.ok(consumer, `RabbitMQ consumer span: ${names}`);
  assert.equal(consumer.parentSpanId, producer.spanId, "the subscriber's span is the publish span's child");
  assert.equal(new Set(trace.map((s) => s.traceId)).size, 1);
});

/**
 * A cluster's chats: the all-in-one (replica A, with auth, admin and dbservice) and two `main.ts
 * chats` processes (B and C, calling `main.ts dbservice`), sharing PostgreSQL, RabbitMQ and the
 * Redis revocation list. A live stream on every replica ends within 1 s of Logout, RevokeSession,
 * LogoutAll, DeactivateUser, RevokeUserSession and RevokeUserSessions (their revocations reach B
 * and C over Redis pub/sub) and RemoveMember (its members_removed event over chat.events), idle or
 * busy; heartbeats are a minute, so nothing but those pushed events can end them in time. SIGTERM to a chats process ends its open streams
 * with unavailable. Table and assertions: stream-ends.ts.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { Code, createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { ChatService } from "@crm/gen/crm/chat/v1/chat_pb";
import { TEST_AMQP_URL, TEST_REDIS_URL, freshDatabase, installHint, need, postgresUp, rabbitUp, redisUp, type TestApp, type TestDatabase } from "@crm/testkit";
import { startTestApp } from "@crm/all/test-app";
import { company, watch } from "./helpers.js";
import { startService, type ServiceProcess } from "./processes.js";
import { endings, runEnding, type StreamSetup } from "./stream-ends.js";

const skip = need("PostgreSQL", await postgresUp(), installHint.postgres) || need("RabbitMQ", await rabbitUp(), installHint.rabbitmq) || need("Redis", await redisUp(), installHint.redis);

let db: TestDatabase;
let app: TestApp;
let shared: Record<string, string>;
let dbservice: ServiceProcess | undefined;
const chatsProcesses: ServiceProcess[] = [];
let setup: StreamSetup;

const bearer = (token: string): Interceptor => (next) => (req) => (req.header.set("authorization", `Bearer ${token}`), next(req));
const grpcOn = (url: string) => (token: string) => createClient(ChatService, createGrpcTransport({ baseUrl: url, interceptors: [bearer(token)] }));
const connectOn = (url: string) => (token: string) => createClient(ChatService, createConnectTransport({ baseUrl: url, httpVersion: "1.1", interceptors: [bearer(token)] }));

before(async () => {
  if (skip) return;
  db = await freshDatabase();
  app = await startTestApp({ DATABASE_URL: db.url, AMQP_URL: TEST_AMQP_URL, REDIS_URL: TEST_REDIS_URL, CHAT_HEARTBEAT_MS: "60000" });
  shared = { AMQP_URL: TEST_AMQP_URL, REDIS_URL: TEST_REDIS_URL, JWT_PUBLIC_KEYS_FILE: join(app.dataDir, "keys", "jwks.json"), TLS_CLIENT_AUTH: "off" };
  dbservice = await startService("dbservice", { ...shared, DATABASE_URL: db.url });
  for (let i = 0; i < 2; i++) chatsProcesses.push(await startService("chats", { ...shared, DBSERVICE_URL: dbservice.url, CHAT_HEARTBEAT_MS: "60000" }));
  const [b, c] = chatsProcesses;
  setup = {
    app,
    dbUrl: db.url,
    places: [
      { name: "replica A (all-in-one, gRPC)", chat: (token) => app.client(ChatService, { token, protocol: "grpc" }) },
      { name: "replica B (gRPC)", chat: grpcOn(b!.url) },
      { name: "replica C (Connect HTTP/1.1)", chat: connectOn(c!.url) },
    ],
  };
});
after(async () => {
  for (const p of chatsProcesses) await p.stop();
  await dbservice?.stop();
  await app?.close();
  await db?.drop();
});

for (const ending of endings) {
  for (const busy of [false, true]) {
    test(`replicas: ${ending.name} ends live streams on every replica (${busy ? "busy" : "idle"} chat) within 1 s with ${Code[ending.code]}`, { skip, timeout: 60_000 }, () => runEnding(setup, ending, busy));
  }
}

test("replicas: SIGTERM to a chats process ends its open streams with unavailable (gRPC and Connect), so clients reconnect", { skip, timeout: 60_000 }, async () => {
  const d = await startService("chats", { ...shared, DBSERVICE_URL: dbservice!.url, CHAT_HEARTBEAT_MS: "60000" });
  try {
    const { owner } = await company(app, db.url, 0);
    const { chat } = await owner.chat.createChat({ name: "Drained replica" });
    const streams = [watch(grpcOn(d.url)(owner.token), chat!.chatId), watch(connectOn(d.url)(owner.token), chat!.chatId)];
    for (const w of streams) await w.live();
    await d.stop(); // SIGTERM, and waits for the exit
    assert.equal(d.child.exitCode, 0, d.output.slice(-10).join("\n"));
    for (const w of streams) {
      await w.end(5_000);
      assert.equal(Code[w.error?.code ?? Code.Unknown], Code[Code.Unavailable], w.error?.rawMessage ?? "ended with OK");
      assert.equal(w.error?.rawMessage, "server is shutting down; reconnect");
    }
  } finally {
    await d.stop();
  }
});

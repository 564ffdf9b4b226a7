/**
 * Two chats replicas: the all-in-one in this process (chats A, with its dbservice and relay) and
 * `main.ts chats` as its own process (chats B, calling `main.ts dbservice` over gRPC), sharing
 * PostgreSQL and RabbitMQ. A subscriber on one replica receives what is sent through the other.
 * Heartbeats are set to a minute, so only live delivery through RabbitMQ can pass within the
 * waits (the heartbeat's database catch-up cannot).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { ChatService } from "@crm/gen/crm/chat/v1/chat_pb";
import { TEST_AMQP_URL, freshDatabase, installHint, need, postgresUp, rabbitUp, type TestApp, type TestDatabase } from "@crm/testkit";
import { startTestApp } from "@crm/all/test-app";
import { assertSeqs, company, watch } from "./helpers.js";
import { startService, type ServiceProcess } from "./processes.js";

const skip = need("PostgreSQL", await postgresUp(), installHint.postgres) || need("RabbitMQ", await rabbitUp(), installHint.rabbitmq);

let db: TestDatabase;
let app: TestApp;
let dbservice: ServiceProcess | undefined;
let chatsB: ServiceProcess | undefined;
before(async () => {
  if (skip) return;
  db = await freshDatabase();
  app = await startTestApp({ DATABASE_URL: db.url, AMQP_URL: TEST_AMQP_URL, CHAT_HEARTBEAT_MS: "60000" });
  const shared = { AMQP_URL: TEST_AMQP_URL, JWT_PUBLIC_KEYS_FILE: join(app.dataDir, "keys", "jwks.json"), TLS_CLIENT_AUTH: "off" };
  dbservice = await startService("dbservice", { ...shared, DATABASE_URL: db.url });
  chatsB = await startService("chats", { ...shared, DBSERVICE_URL: dbservice.url, CHAT_HEARTBEAT_MS: "60000" });
});
after(async () => {
  await chatsB?.stop();
  await dbservice?.stop();
  await app?.close();
  await db?.drop();
});

/** A ChatService client of replica B (gRPC over h2c), as `token`. */
function onB(token: string) {
  const auth: Interceptor = (next) => (req) => (req.header.set("authorization", `Bearer ${token}`), next(req));
  return createClient(ChatService, createGrpcTransport({ baseUrl: chatsB!.url, interceptors: [auth] }));
}

test("two chats processes: a subscriber on one receives messages sent through the other, both ways, in order", { skip, timeout: 120_000 }, async () => {
  const { owner, users } = await company(app, db.url, 1);
  const colleague = users[0]!;
  const { chat } = await owner.chat.createChat({ name: "Across replicas", memberIds: [colleague.userId] });
  const id = chat!.chatId;

  // Subscriber on B, sender on A.
  const onReplicaB = watch(onB(colleague.token), id);
  await onReplicaB.live();
  for (let i = 1; i <= 20; i++) await owner.chat.sendMessage({ chatId: id, content: `via A ${i}` });
  assertSeqs(await onReplicaB.count(20, 20_000), 1, 20);
  assert.equal(onReplicaB.messages[0]!.content, "via A 1");

  // Subscriber on A, sender on B (stored by the dbservice process, relayed by either relay).
  const onReplicaA = watch(owner.chat, id);
  await onReplicaA.live();
  const b = onB(colleague.token);
  for (let i = 1; i <= 20; i++) await b.sendMessage({ chatId: id, content: `via B ${i}` });
  assertSeqs(await onReplicaA.count(20, 20_000), 21, 40);
  assertSeqs(await onReplicaB.count(40, 20_000), 1, 40);
  assert.equal(onReplicaA.messages[0]!.senderId, colleague.userId);
  assert.equal(onReplicaB.heartbeats, 1, "only the going-live heartbeat: everything came live, not from a catch-up");
  await onReplicaA.close();
  await onReplicaB.close();
});

/**
 * Outages, on the real PostgreSQL and RabbitMQ. The app reaches the broker (or the database)
 * through a TCP proxy this test owns; stopping the proxy cuts every connection and refuses new
 * ones, which is what the app sees when the server stops, without disturbing the shared server.
 */
import assert from "node:assert/strict";
import { after, test } from "node:test";
import { fromBinary } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import amqp from "amqplib";
import { ChatEventSchema } from "@crm/gen/crm/chat/v1/chat_pb";
import { CHAT_EVENTS_EXCHANGE, chatRoutingKey } from "@crm/contracts";
import { TEST_AMQP_URL, TEST_PG_URL, freshDatabase, installHint, need, postgresUp, rabbitUp, tcpProxy, until, type TcpProxy, type TestApp, type TestDatabase } from "@crm/testkit";
import { startTestApp } from "@crm/all/test-app";
import { assertSeqs, company, counts, expectCode, sql, watch } from "./helpers.js";

const skip = need("PostgreSQL", await postgresUp(), installHint.postgres) || need("RabbitMQ", await rabbitUp(), installHint.rabbitmq);

const cleanup: (() => Promise<unknown>)[] = [];
after(async () => {
  for (const fn of cleanup.reverse()) await fn().catch(() => {});
});

async function setup(env: (db: TestDatabase) => Promise<Record<string, string>>): Promise<{ db: TestDatabase; app: TestApp }> {
  const db = await freshDatabase();
  cleanup.push(() => db.drop());
  const app = await startTestApp(await env(db));
  cleanup.push(() => app.close());
  return { db, app };
}

const pending = async (dbUrl: string) => Number((await sql<{ n: string }>(dbUrl, "SELECT count(*) AS n FROM outbox"))[0]!.n);

test("RabbitMQ stopped during sends: every send succeeds, the outbox keeps the events, all are published and delivered after it restarts", { skip, timeout: 120_000 }, async () => {
  let broker!: TcpProxy;
  const { db, app } = await setup(async (db) => {
    broker = await tcpProxy(TEST_AMQP_URL, 5672);
    cleanup.push(() => broker.close());
    return { DATABASE_URL: db.url, AMQP_URL: broker.via(TEST_AMQP_URL), CHAT_HEARTBEAT_MS: "60000" };
  });
  const { owner, users } = await company(app, db.url, 1);
  const { chat } = await owner.chat.createChat({ name: "Outage", memberIds: [users[0]!.userId] });
  const id = chat!.chatId;

  // A witness on the real broker (not through the proxy): what the relay actually published.
  const conn = await amqp.connect(TEST_AMQP_URL);
  cleanup.push(() => conn.close());
  const ch = await conn.createChannel();
  const { queue } = await ch.assertQueue("", { exclusive: true, autoDelete: true });
  await ch.bindQueue(queue, CHAT_EVENTS_EXCHANGE, chatRoutingKey(id));
  const published: number[] = [];
  await ch.consume(queue, (m) => {
    if (!m) return;
    const ev = fromBinary(ChatEventSchema, m.content); // every event is binary protobuf (@crm/contracts/events)
    if (ev.event.case === "message") published.push(Number(ev.event.value.seq));
  }, { noAck: true });

  const live = watch(users[0]!.chat, id, 0n);
  await live.live();
  for (let i = 1; i <= 10; i++) await owner.chat.sendMessage({ chatId: id, content: `before ${i}` });
  await live.count(10);
  await until("10 events on the broker", () => published.length === 10, 10_000);

  broker.stop();
  for (let i = 11; i <= 110; i++) {
    const r = await owner.chat.sendMessage({ chatId: id, content: `during ${i}` });
    assert.equal(r.message!.seq, BigInt(i));
  }
  assert.equal(await pending(db.url), 100, "the 100 events wait in the outbox");
  assert.equal(published.length, 10, "nothing was published while the broker was away");
  assert.equal(live.messages.length, 10);

  broker.start();
  await until("the relay to publish the backlog after the restart", () => published.length >= 110, 30_000);
  assert.deepEqual([...new Set(published)].sort((a, b) => a - b), Array.from({ length: 110 }, (_, i) => i + 1), "every event published");
  await until("the outbox to drain", async () => (await pending(db.url)) === 0, 10_000);
  assertSeqs(await live.count(110, 30_000), 1, 110);
  // Live delivery works again.
  await owner.chat.sendMessage({ chatId: id, content: "after" });
  assertSeqs(await live.count(111), 1, 111);
  await live.close();
});

test("PostgreSQL stopped: SendMessage fails with unavailable, nothing is half-written, and it works again afterwards", { skip, timeout: 120_000 }, async () => {
  let database!: TcpProxy;
  const { db, app } = await setup(async (db) => {
    database = await tcpProxy(TEST_PG_URL, 5432);
    cleanup.push(() => database.close());
    return { DATABASE_URL: database.via(db.url), AMQP_URL: TEST_AMQP_URL };
  });
  const { owner, users } = await company(app, db.url, 1);
  const { chat } = await owner.chat.createChat({ name: "DB outage", memberIds: [users[0]!.userId] });
  const id = chat!.chatId;
  for (let i = 1; i <= 3; i++) await owner.chat.sendMessage({ chatId: id, content: `m${i}` });
  await until("outbox drained", async () => (await pending(db.url)) === 0, 10_000);
  const before = await counts(db.url);

  database.stop();
  for (let i = 0; i < 5; i++) {
    await expectCode(owner.chat.sendMessage({ chatId: id, content: "lost?", clientMessageId: `k${i}` }), Code.Unavailable, /database unavailable/);
  }
  await expectCode(owner.chat.listMessages({ chatId: id }), Code.Unavailable);
  assert.deepEqual(await counts(db.url), before, "no message, seq or outbox row was written");

  database.start();
  const live = watch(users[0]!.chat, id, 3n);
  await live.live(20_000);
  const ok = await owner.chat.sendMessage({ chatId: id, content: "back", clientMessageId: "k0" });
  assert.equal(ok.replayed, false, "the failed attempt stored nothing to replay");
  assert.equal(ok.message!.seq, 4n, "no seq was lost to the failed attempts");
  assertSeqs(await live.count(1, 15_000), 4, 4);
  await live.close();
});

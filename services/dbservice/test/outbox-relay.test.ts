/**
 * The outbox and its relay on the real PostgreSQL and RabbitMQ: insert-only for requests, woken by
 * afterCommit (polling is set to a minute here, so only the wake-up can explain a quick publish),
 * no NOTIFY at commit, two relays on one database publish every row once, unroutable rows wait
 * with backoff.
 */
import assert from "node:assert/strict";
import { randomBytes, randomUUID } from "node:crypto";
import { after, before, test } from "node:test";
import amqp from "amqplib";
import type pg from "pg";
import { amqpBus, createLogger, type EventBus } from "@crm/kit";
import { TEST_AMQP_URL, installHint, need, postgresUp, rabbitUp, until } from "@crm/testkit";
import type { Db } from "../src/db.js";
import { enqueue } from "../src/outbox.js";
import { startRelay, type Relay } from "../src/relay.js";
import { migratedDatabase, type MigratedDatabase } from "./helpers.js";

const skip = need("PostgreSQL", await postgresUp(), installHint.postgres) || need("RabbitMQ", await rabbitUp(), installHint.rabbitmq);
const log = createLogger("test", process.env.TEST_LOG ?? "silent");
const run = randomBytes(4).toString("hex");
const exchange = `test.outbox.${run}`;

let m: MigratedDatabase;
let pool: pg.Pool;
let db: Db;
let companyId: string;
const closers: (() => Promise<unknown>)[] = [];
let witness: amqp.ChannelModel;
let channel: amqp.Channel;

before(async () => {
  if (skip) return;
  m = await migratedDatabase(10);
  ({ pool, db } = m);
  companyId = randomUUID();
  await pool.query("INSERT INTO companies (id, name) VALUES ($1, 'Outbox Co')", [companyId]);
  witness = await amqp.connect(TEST_AMQP_URL);
  channel = await witness.createChannel();
  await channel.assertExchange(exchange, "topic", { durable: true });
});
after(async () => {
  for (const c of closers.reverse()) await c().catch(() => {});
  if (skip) return;
  await channel.deleteExchange(exchange).catch(() => {});
  await witness.close();
  await m.drop();
});

async function bus(): Promise<EventBus> {
  const b = amqpBus({ url: TEST_AMQP_URL, log, name: `outbox-test-${run}` });
  closers.push(() => b.close());
  assert.ok(await b.waitConnected(10_000));
  return b;
}

async function relay(b: EventBus, pollMs = 60_000): Promise<Relay> {
  const r = await startRelay({ pool, bus: b, log, pollMs, batch: 50, exchanges: { [exchange]: "topic" } });
  closers.push(() => r.close());
  return r;
}

/** Collects message ids published to `key` on the test exchange. */
async function collect(key: string) {
  const { queue } = await channel.assertQueue("", { exclusive: true, autoDelete: true });
  await channel.bindQueue(queue, exchange, key);
  const ids: string[] = [];
  const at: number[] = [];
  await channel.consume(queue, (m) => m && (ids.push(m.properties.messageId as string), at.push(performance.now())), { noAck: true });
  return { ids, at };
}

const pending = async () => Number((await pool.query("SELECT count(*) AS n FROM outbox")).rows[0].n);

test("requests may only insert into the outbox; a rolled-back transaction leaves nothing", { skip }, async () => {
  await db.tenant(companyId, (sql) => enqueue(sql, { exchange, routingKey: "nowhere", payload: Buffer.from("x"), contentType: "text/plain" }));
  await assert.rejects(db.tenant(companyId, (sql) => sql.query("SELECT * FROM outbox")), /permission denied/);
  await assert.rejects(db.tenant(companyId, (sql) => sql.query("DELETE FROM outbox")), /permission denied/);
  const before = await pending();
  await assert.rejects(
    db.tenant(companyId, async (sql) => {
      await enqueue(sql, { exchange, routingKey: "nowhere", payload: Buffer.from("y"), contentType: "text/plain" });
      throw new Error("the change failed");
    }),
    /the change failed/,
  );
  assert.equal(await pending(), before);
  await pool.query("DELETE FROM outbox");
});

test("relay: afterCommit wakes it at once; rows are published with their id, type and headers, then deleted", { skip, timeout: 60_000 }, async () => {
  const seen = await collect("notify.*");
  const b = await bus();
  const r = await relay(b);
  await until("an idle relay", async () => (await pending()) === 0, 5_000);
  const started = performance.now();
  const ids: string[] = [];
  for (let i = 0; i < 20; i++) {
    const id = randomUUID();
    ids.push(id);
    await db.tenant(companyId, (sql) => enqueue(sql, { exchange, routingKey: `notify.${i}`, payload: Buffer.from(`p${i}`), contentType: "text/plain", messageId: id, headers: { "x-kind": "test" }, companyId }));
    r.afterCommit(); // as the dbservice stores do after each commit that enqueued
  }
  await until("20 messages published", () => seen.ids.length === 20, 10_000);
  assert.deepEqual(seen.ids, ids, "in commit order");
  assert.ok(seen.at[19]! - started < 10_000, "well before the 60 s poll: afterCommit woke the relay");
  await until("rows deleted after the confirm", async () => (await pending()) === 0, 5_000);
});

test("a pass is two round trips: the start with the claim, then the deletion with COMMIT (or COMMIT alone when nothing is due)", { skip, timeout: 60_000 }, async () => {
  const seen = await collect("trips.*");
  // The pool as the relay sees it, counting the connections it takes (one per pass) and the queries it sends on them.
  let passes = 0;
  let trips = 0;
  const counting = Object.create(pool, {
    connect: {
      value: async () => {
        const client = await pool.connect();
        passes++;
        const { query, release } = client;
        client.query = ((...args: Parameters<typeof query>) => (trips++, query.apply(client, args))) as typeof query;
        client.release = (...args: Parameters<typeof release>) => {
          Object.assign(client, { query, release }); // the pool's other users are not counted
          return release.apply(client, args);
        };
        return client;
      },
    },
  }) as pg.Pool;
  const b = await bus();
  const r = await startRelay({ pool: counting, bus: b, log, pollMs: 60_000, batch: 50, exchanges: { [exchange]: "topic" } });
  closers.push(() => r.close());
  assert.ok(await r.drained(5_000), "an idle relay");
  for (let i = 0; i < 3; i++) {
    await db.tenant(companyId, (sql) => enqueue(sql, { exchange, routingKey: `trips.${i}`, payload: Buffer.from(`t${i}`), contentType: "text/plain", messageId: `trip-${i}` }));
    r.afterCommit();
  }
  await until("3 messages published", () => seen.ids.length === 3, 10_000);
  assert.ok(await r.drained(5_000), "the outbox drained");
  await r.close();
  assert.equal(await pending(), 0);
  assert.ok(passes >= 2, `passes with rows and without: ${passes}`);
  assert.equal(trips, 2 * passes, `${trips} round trips in ${passes} passes`);
});

test("no NOTIFY at commit: it would serialise every outbox-writing commit database-wide (migration 0040)", { skip }, async () => {
  const { rows } = await pool.query("SELECT tgname FROM pg_trigger WHERE tgrelid = 'outbox'::regclass AND NOT tgisinternal");
  assert.deepEqual(rows, []);
});

test("two relays on one database (replicas): 600 rows, each published once", { skip, timeout: 120_000 }, async () => {
  const seen = await collect("replica.*");
  const b1 = await bus();
  const b2 = await bus();
  const [r1, r2] = [await relay(b1, 50), await relay(b2, 50)];
  const writers = Array.from({ length: 6 }, async (_, w) => {
    for (let i = 0; i < 100; i++) {
      await db.tenant(companyId, (sql) => enqueue(sql, { exchange, routingKey: `replica.${w}`, payload: Buffer.from("x"), contentType: "text/plain", messageId: `${w}-${i}` }));
    }
  });
  await Promise.all(writers);
  await until("600 messages", () => seen.ids.length >= 600, 60_000);
  await until("empty outbox", async () => (await pending()) === 0, 10_000);
  await new Promise((r) => setTimeout(r, 200)); // a duplicate would arrive right behind
  assert.equal(seen.ids.length, 600);
  assert.equal(new Set(seen.ids).size, 600, "no row was published twice");
  await r1.close();
  await r2.close();
});

test("a row for a queue that does not exist yet waits with backoff and its error, then goes out once the queue exists", { skip, timeout: 60_000 }, async () => {
  const b = await bus();
  const r = await relay(b, 100);
  const queue = `test.outbox.queue.${run}`;
  closers.push(() => channel.deleteQueue(queue).catch(() => {}));
  await db.tenant(companyId, (sql) => enqueue(sql, { exchange: "", routingKey: queue, payload: Buffer.from("task"), contentType: "text/plain", messageId: "task-1" }));
  await until("a failed attempt", async () => (await pool.query("SELECT attempts FROM outbox WHERE message_id = 'task-1'")).rows[0]?.attempts >= 1, 10_000);
  const row = (await pool.query("SELECT attempts, last_error, next_attempt_at > now() AS later FROM outbox WHERE message_id = 'task-1'")).rows[0];
  assert.match(row.last_error, /no queue receives/);
  assert.equal(row.later, true, "retried later, not in a hot loop");
  await channel.assertQueue(queue, { durable: true });
  await pool.query("UPDATE outbox SET next_attempt_at = now() WHERE message_id = 'task-1'"); // skip the backoff
  r.wake();
  await until("published once the queue exists", async () => (await pending()) === 0, 10_000);
  const got = await channel.get(queue, { noAck: true });
  assert.ok(got && got.properties.messageId === "task-1");
});

/** The real backing servers tests use: PostgreSQL, Redis, RabbitMQ on this machine (overridable by env). */
import net from "node:net";
import { randomBytes } from "node:crypto";
import pg from "pg";
import { until } from "./until.js";

export const TEST_PG_URL = process.env.TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
export const TEST_REDIS_URL = process.env.TEST_REDIS_URL ?? "redis://127.0.0.1:6379";
export const TEST_AMQP_URL = process.env.TEST_AMQP_URL ?? "amqp://guest:guest@127.0.0.1:5672";

export function portOpen(url: string, defaultPort: number): Promise<boolean> {
  const u = new URL(url);
  return new Promise((resolve) => {
    const socket = net.connect({ host: u.hostname, port: Number(u.port || defaultPort) });
    const done = (ok: boolean) => (socket.destroy(), resolve(ok));
    socket.setTimeout(1_000, () => done(false));
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
  });
}

/** `skip` options for tests that need each server. */
export const postgresUp = () => portOpen(TEST_PG_URL, 5432);
export const redisUp = () => portOpen(TEST_REDIS_URL, 6379);
export const rabbitUp = () => portOpen(TEST_AMQP_URL, 5672);

export const installHint = {
  postgres: "apt-get install postgresql (then: pg_ctlcluster 15 main start), or set TEST_DATABASE_URL",
  redis: "apt-get install redis-server (then: redis-server --daemonize yes), or set TEST_REDIS_URL",
  rabbitmq: "apt-get install rabbitmq-server (then: rabbitmq-server -detached), or set TEST_AMQP_URL",
};

const backing = { postgres: ["PostgreSQL", postgresUp], redis: ["Redis", redisUp], rabbitmq: ["RabbitMQ", rabbitUp] } as const;

/** The first of `needs` that does not answer, as "<name> is not reachable; <how to get it>"; undefined when all do. */
export async function unreachable(...needs: (keyof typeof installHint)[]): Promise<string | undefined> {
  for (const n of needs) {
    const [name, up] = backing[n];
    if (!(await up())) return `${name} is not reachable; ${installHint[n]}`;
  }
  return undefined;
}

export interface TestDatabase {
  url: string;
  drop(): Promise<void>;
}

/** A new, empty database on the test server, dropped by `drop()`. */
export async function freshDatabase(prefix = "crm_test"): Promise<TestDatabase> {
  const name = `${prefix}_${randomBytes(6).toString("hex")}`;
  const admin = new pg.Client({ connectionString: TEST_PG_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(TEST_PG_URL);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: () => dropDatabase(name, { strict: true }),
  };
}

/**
 * Drops a test's database on the test server (connections forced out; a missing one is fine).
 * Teardown use: a server that cannot be reached is ignored unless `strict`.
 */
export async function dropDatabase(name: string, o: { strict?: boolean } = {}): Promise<void> {
  const c = new pg.Client({ connectionString: TEST_PG_URL });
  try {
    await c.connect();
  } catch (err) {
    if (o.strict) throw err;
    return;
  }
  try {
    // A pool's end() resolves before its sockets close; forcing the DROP at once killed such a
    // closing connection, whose error then reached a pool with no listener (an uncaught
    // exception in the test). Wait for the database's sessions to leave first (up to 5 s), then
    // force out whatever stays.
    const gone = async () => (await c.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1", [name])).rows[0]!.n === 0;
    await until(`the sessions of ${name} to close`, gone, 5_000).catch(() => {});
    await c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  } finally {
    await c.end();
  }
}

/** Deletes a test's RabbitMQ queues and exchanges (missing ones are fine): one channel each, as a failed delete closes its channel. */
export async function removeRabbitObjects(o: { queues?: string[]; exchanges?: string[] }, url = TEST_AMQP_URL): Promise<void> {
  const { default: amqp } = await import("amqplib");
  const conn = await amqp.connect(url).catch(() => undefined);
  if (!conn) return;
  const each = async (fn: (ch: import("amqplib").Channel) => Promise<unknown>) => {
    const ch = await conn.createChannel();
    await fn(ch).catch(() => {});
    await ch.close().catch(() => {});
  };
  try {
    for (const q of o.queues ?? []) await each((ch) => ch.deleteQueue(q));
    for (const e of o.exchanges ?? []) await each((ch) => ch.deleteExchange(e));
  } finally {
    await conn.close().catch(() => {});
  }
}

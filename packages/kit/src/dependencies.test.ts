/**
 * Backing servers that are down or frozen: the errors their real clients (ioredis, pg, amqplib)
 * raise become `unavailable` naming the server, in every service (the error interceptor), and a
 * frozen server fails a call within its deadline instead of hanging it. The servers here are a
 * closed port, a socket that accepts and never answers, and a redis-server of the test's own
 * frozen with SIGSTOP (never the shared one).
 */
import assert from "node:assert/strict";
import net from "node:net";
import { after, test } from "node:test";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import pg from "pg";
import { CacheService } from "@crm/gen/crm/cache/v1/cache_pb";
import { amqpBus } from "./amqp.js";
import { BusUnavailableError } from "./bus.js";
import { addressOf, dependencyAt, dependencyError } from "./dependencies.js";
import { contextInterceptor, errorInterceptor } from "./interceptors.js";
import { createLogger } from "./logger.js";
import { redisClient } from "./runtime.js";
import { need, ownRedis, ownServersProblem, until } from "@crm/testkit";

const log = createLogger("test", process.env.TEST_LOG ?? "silent");

/** A port nothing listens on. */
async function closedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

/** A server that accepts connections and never sends a byte (a frozen process). */
async function silentServer(): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const s = net.createServer((c) => void sockets.add(c.on("error", () => {})));
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  return {
    port: (s.address() as net.AddressInfo).port,
    close: async () => {
      for (const c of sockets) c.destroy();
      await new Promise((r) => s.close(r));
    },
  };
}

const unavailableNaming = (name: RegExp) => (err: unknown) => {
  const e = dependencyError(err);
  assert.ok(e, `mapped: ${String(err)}`);
  assert.equal(e.reason, "unavailable");
  assert.match(e.message, name);
  assert.match(e.message, /try again shortly/);
  return true;
};

test("Redis down: ioredis's error (no offline queue) becomes unavailable naming Redis and its address", async () => {
  const port = await closedPort();
  const redis = redisClient(`redis://127.0.0.1:${port}`, log);
  after(() => redis.disconnect());
  await assert.rejects(redis.incr("k"), unavailableNaming(new RegExp(`^Redis at 127\\.0\\.0\\.1:${port} is not answering \\(Stream isn't writeable`)));
});

test("Redis frozen (SIGSTOP): a command fails within REDIS_COMMAND_TIMEOUT_MS with unavailable naming Redis, and works again after SIGCONT", { skip: need("redis-server", !ownServersProblem("redis"), ownServersProblem("redis") ?? "") }, async () => {
  const server = await ownRedis();
  after(() => server.close());
  const redis = redisClient(server.url, log, { REDIS_COMMAND_TIMEOUT_MS: 200, REDIS_CONNECT_TIMEOUT_MS: 200 });
  after(() => redis.disconnect());
  await until("connected", () => redis.status === "ready");
  assert.equal(await redis.incr("k"), 1);
  server.freeze();
  try {
    const started = performance.now();
    await assert.rejects(redis.incr("k"), unavailableNaming(new RegExp(`^Redis at 127\\.0\\.0\\.1:${server.port} is not answering \\(Command timed out\\)`)));
    const ms = performance.now() - started;
    assert.ok(ms >= 150 && ms < 2_000, `failed at its deadline (${Math.round(ms)} ms)`);
  } finally {
    server.thaw();
  }
  await until("answers again", async () => (await redis.get("k").catch(() => undefined)) !== undefined);
});

test("PostgreSQL down or frozen: pg's errors become unavailable naming PostgreSQL", async () => {
  const port = await closedPort();
  const url = `postgres://u:secret@127.0.0.1:${port}/db`;
  dependencyAt("PostgreSQL", addressOf(url));
  const down = new pg.Pool({ connectionString: url, connectionTimeoutMillis: 200 });
  await assert.rejects(down.query("SELECT 1"), (err: unknown) => {
    const e = dependencyError(err);
    assert.ok(e, `mapped: ${String(err)}`);
    assert.match(e.message, /ECONNREFUSED|PostgreSQL/);
    assert.doesNotMatch(e.message, /secret/, "no credentials in the message");
    return true;
  });
  await down.end();
  const frozen = await silentServer();
  after(() => frozen.close());
  const pool = new pg.Pool({ connectionString: `postgres://u@127.0.0.1:${frozen.port}/db`, connectionTimeoutMillis: 200 });
  await assert.rejects(pool.query("SELECT 1"), unavailableNaming(/^PostgreSQL at 127\.0\.0\.1:\d+ is not answering \((timeout exceeded when trying to connect|Connection terminated due to connection timeout)\)/));
  await pool.end();
});

test("RabbitMQ down: a publish fails at once with unavailable naming RabbitMQ (the outbox keeps the message)", async () => {
  const port = await closedPort();
  const bus = amqpBus({ url: `amqp://guest:guest@127.0.0.1:${port}`, log, name: "test", confirmTimeoutMs: 200 });
  after(() => bus.close());
  await assert.rejects(bus.publish("x", "k", new Uint8Array([1])), (err) => err instanceof BusUnavailableError && unavailableNaming(/RabbitMQ.*not connected/)(err));
});

test("the error interceptor answers a dependency failure with unavailable naming it, not internal", async () => {
  const port = await closedPort();
  const redis = redisClient(`redis://127.0.0.1:${port}`, log);
  after(() => redis.disconnect());
  const transport = createRouterTransport(
    (router) =>
      router.service(CacheService, {
        async get() {
          await redis.get("k"); // as a handler (or the login throttle) meets Redis down
          return {};
        },
      }),
    { router: { interceptors: [contextInterceptor(), errorInterceptor(log)] } },
  );
  await assert.rejects(createClient(CacheService, transport).get({ key: "k" }), (err) => {
    assert.ok(err instanceof ConnectError);
    assert.equal(Code[err.code], Code[Code.Unavailable]);
    assert.match(err.rawMessage, new RegExp(`^Redis at 127\\.0\\.0\\.1:${port} is not answering .*; try again shortly$`));
    assert.equal(err.metadata.get("crm-error"), "unavailable");
    return true;
  });
});

test("errors that are not a dependency's stay unmapped (they are bugs: internal)", () => {
  assert.equal(dependencyError(new TypeError("cannot read properties of undefined")), undefined);
  assert.equal(dependencyError(Object.assign(new Error("duplicate key"), { code: "23505" })), undefined);
  assert.equal(dependencyError("a string"), undefined);
});

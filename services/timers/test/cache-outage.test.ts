/**
 * The running-timer cache when Redis fails. The timers service is wired here as in its own
 * process (runService): its module, dbservice in-process, token checks with in-memory revocations,
 * and a Redis of its own — a redis-server this test starts on a free port and stops, or a port
 * where nothing listens. The machine's shared Redis is never touched. The all-in-one app is used
 * only to register companies and log in.
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import pg from "pg";
import { Redis } from "ioredis";
import {
  createLogger, createTokenVerifier, inProcessPeer, loadConfig, memoryRevocations, newInternalIdentity, readJwks, redisClient, startServer, type RunningServer,
} from "@crm/kit";
import { DbTimerService } from "@crm/gen/crm/db/v1/db_timer_pb";
import { TimerService } from "@crm/gen/crm/timer/v1/timer_pb";
import { createDb } from "@crm/dbservice/db";
import { createDbModule } from "@crm/dbservice/module";
import { TEST_REDIS_URL, freshDatabase, installHint, need, postgresUp, redisUp, until, type TestApp, type TestDatabase } from "@crm/testkit";
import { startTestApp } from "@crm/all/test-app";
import { timersEnv } from "../src/config.js";
import { createTimersModule } from "../src/module.js";
import { newCompany, query } from "./helpers.js";

const redisServerInstalled = await new Promise<boolean>((resolve) => {
  const p = spawn("redis-server", ["--version"], { stdio: "ignore" });
  p.on("error", () => resolve(false));
  p.on("exit", (code) => resolve(code === 0));
});
const skip =
  need("PostgreSQL", await postgresUp(), installHint.postgres) ||
  need("Redis", await redisUp(), installHint.redis) ||
  need("redis-server binary", redisServerInstalled, installHint.redis);

const log = createLogger("timers-test", "silent");
let db: TestDatabase;
let app: TestApp;
let pool: pg.Pool;
const cleanups: (() => Promise<unknown>)[] = [];

before(async () => {
  if (skip) return;
  db = await freshDatabase();
  app = await startTestApp({ DATABASE_URL: db.url, REDIS_URL: TEST_REDIS_URL });
  pool = new pg.Pool({ connectionString: db.url, max: 4 });
});
after(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {});
  await pool?.end();
  await app?.close();
  await db?.drop();
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/** A redis-server of this test's own, keeping its dump in `dir`. */
async function startRedis(port: number, dir: string): Promise<ChildProcess> {
  const child = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir, "--dbfilename", "dump.rdb"], { stdio: ["ignore", "pipe", "pipe"] });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("redis-server did not start within 10 s")), 10_000);
    let out = "";
    child.stdout!.on("data", (b: Buffer) => {
      out += b.toString();
      if (out.includes("Ready to accept connections")) (clearTimeout(timer), resolve());
    });
    child.once("exit", (code) => (clearTimeout(timer), reject(new Error(`redis-server exited with ${code}: ${out}`))));
  });
  return child;
}

/** The timers service with its cache on `redisUrl`, as its own server. */
async function timersServer(redisUrl: string, token: string): Promise<{ client: Client<typeof TimerService>; redis: Redis; server: RunningServer }> {
  const jwks = readJwks(join(app.dataDir, "keys", "jwks.json"));
  const verifier = createTokenVerifier({ jwks, issuer: "crm-auth", audience: "crm-api", revocations: memoryRevocations() });
  const dbModule = createDbModule({ db: createDb(pool) });
  const redis = redisClient(redisUrl, log);
  const module = createTimersModule({
    cfg: loadConfig(timersEnv, {}),
    db: createClient(DbTimerService, inProcessPeer("timers", dbModule, { log, verifier, internal: newInternalIdentity() })),
    redis,
    log,
    sweep: false,
  });
  const server = await startServer({ modules: [module], port: 0, host: "127.0.0.1", log, verifier, readMaxBytes: 1 << 20, shutdownTimeoutMs: 1_000 });
  cleanups.push(() => server.close(), async () => redis.disconnect());
  const transport = createConnectTransport({
    baseUrl: `http://127.0.0.1:${server.port}`,
    httpVersion: "1.1",
    interceptors: [(next) => (req) => (req.header.set("authorization", `Bearer ${token}`), next(req))],
  });
  return { client: createClient(TimerService, transport), redis, server };
}

const description = async (c: Client<typeof TimerService>) => (await c.getWorkingTimer({})).timer?.description;

test("Redis stopped: every answer comes from the database and is right; back up, stale values are never served", { skip }, async () => {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "crm-redis-"));
  cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
  let redisProcess = await startRedis(port, dir);
  cleanups.push(async () => redisProcess.kill("SIGKILL"));
  const me = await newCompany(app);
  const { client: c, redis } = await timersServer(`redis://127.0.0.1:${port}`, me.token);
  const peek = new Redis(port, "127.0.0.1", { lazyConnect: true, maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => null });
  cleanups.push(async () => peek.disconnect());
  await until("the service's Redis connection", () => redis.status === "ready");

  const one = (await c.startTimer({ description: "one" })).timer!;
  assert.equal(await description(c), "one");
  await peek.connect();
  await until("the cached value", async () => (await peek.keys(`crm:timer:v:*:${me.userId}:*`)).length === 1);
  // Prove the read is a cache hit: a change behind the service's back is not seen.
  await query(db.url, "UPDATE timers SET description = 'behind its back' WHERE id = $1", [one.timerId]);
  assert.equal(await description(c), "one");
  await query(db.url, "UPDATE timers SET description = 'one' WHERE id = $1", [one.timerId]);

  // Redis goes down, keeping a snapshot that says "one is running".
  const exited = new Promise((r) => redisProcess.once("exit", r));
  await peek.call("SHUTDOWN", "SAVE").catch(() => {}); // the connection drops as the server exits
  await exited;
  peek.disconnect();

  // Writes and reads keep working and stay right, from the database.
  const stopped = await c.endTimer({ description: "one, done" });
  assert.equal(stopped.timer?.timerId, one.timerId);
  assert.equal(await description(c), undefined);
  const two = (await c.startTimer({ description: "two" })).timer!;
  assert.equal(await description(c), "two");
  await c.changeTimer({ timerId: two.timerId, description: "three" });
  assert.equal(await description(c), "three");

  // Redis comes back from its snapshot, which still holds "one" under the old version.
  redisProcess = await startRedis(port, dir);
  await peek.connect();
  assert.equal((await peek.keys(`crm:timer:v:*:${me.userId}:*`)).length, 1, "the stale value is back in Redis");
  await until("the service to reconnect", () => redis.status === "ready");
  // Never the stale "one": the replica that missed invalidations retires every cached value first.
  await until("the cache to be filled again", async () => {
    assert.equal(await description(c), "three");
    return (await peek.keys(`crm:timer:v:*:${me.userId}:*`)).length === 2;
  });
  // …and the cache serves again (a change behind its back is not seen), then follows a real change.
  await query(db.url, "UPDATE timers SET description = 'behind its back' WHERE id = $1", [two.timerId]);
  assert.equal(await description(c), "three");
  await c.changeTimer({ timerId: two.timerId, description: "four" });
  assert.equal(await description(c), "four");
});

test("Redis hung (CLIENT PAUSE): calls time out to the database instead of waiting", { skip }, async () => {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "crm-redis-"));
  cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
  const redisProcess = await startRedis(port, dir);
  cleanups.push(async () => redisProcess.kill("SIGKILL"));
  const me = await newCompany(app);
  const { client: c, redis } = await timersServer(`redis://127.0.0.1:${port}`, me.token);
  await until("the service's Redis connection", () => redis.status === "ready");
  await c.startTimer({ description: "before the pause" });
  assert.equal(await description(c), "before the pause");
  const admin = new Redis(port, "127.0.0.1");
  cleanups.push(async () => admin.disconnect());
  await admin.call("CLIENT", "PAUSE", "3000", "ALL");
  await c.endTimer({});
  assert.equal(await description(c), undefined);
  await c.startTimer({ description: "during the pause" });
  assert.equal(await description(c), "during the pause");
  await admin.call("CLIENT", "UNPAUSE");
  assert.equal(await description(c), "during the pause");
});

test("a Redis that refuses connections from the start: the service works from the database", { skip }, async () => {
  const me = await newCompany(app);
  const { client: c } = await timersServer(`redis://127.0.0.1:${await freePort()}`, me.token);
  assert.equal(await description(c), undefined);
  const t = (await c.startTimer({ description: "no redis" })).timer!;
  assert.equal(await description(c), "no redis");
  await c.changeTimer({ timerId: t.timerId, description: "still no redis" });
  assert.equal(await description(c), "still no redis");
  await c.endTimer({});
  assert.equal(await description(c), undefined);
});

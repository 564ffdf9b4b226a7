/**
 * Faults on the backing servers, against a small cluster of real service processes (dbservice,
 * auth, chats; mTLS as in production) pointed at a PostgreSQL, Redis and RabbitMQ this test owns
 * and starts, freezes (SIGSTOP), stops and restarts (packages/testkit own-servers.ts); the
 * machine's shared servers are never touched. Issue 14, items 4, 5 and 6:
 * - Redis restarted empty: no revoked token is accepted by a running process while the list is
 *   rebuilt, nor afterwards, nor by a process started afterwards (4);
 * - Redis, PostgreSQL or RabbitMQ frozen: calls fail fast with unavailable (or still work where
 *   they do not need the frozen server), never hang, and work again after SIGCONT (5);
 * - Redis stopped: Login is unavailable naming Redis (6);
 * - nothing lost: chat messages sent while RabbitMQ is frozen or restarted all arrive, once each;
 * - the all-in-one with REDIS_URL keeps the list itself (item 4 there too).
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type { DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Redis } from "ioredis";
import { AuthService } from "@crm/gen/crm/auth/v1/auth_pb";
import { ChatService } from "@crm/gen/crm/chat/v1/chat_pb";
import { need, ownPostgres, ownRabbitMq, ownRedis, ownServersProblem, until, type OwnServer } from "@crm/testkit";
import { startTestApp } from "@crm/all/test-app";
import { startCluster } from "../../scripts/cluster/lib.mjs";
import { assertSeqs, watch } from "../../services/chats/test/helpers.ts";

const problem = ownServersProblem("postgres", "redis", "rabbitmq");
const skip = need("PostgreSQL, Redis and RabbitMQ server binaries (this test runs its own)", !problem, problem ?? "");

/** Deadlines the cluster runs with (short, so the test is quick; the defaults are in the README). */
const deadlines = { REDIS_COMMAND_TIMEOUT_MS: "500", REDIS_CONNECT_TIMEOUT_MS: "500", DB_QUERY_TIMEOUT_MS: "1000", DB_CONNECT_TIMEOUT_MS: "1000", AMQP_CONFIRM_TIMEOUT_MS: "1000" };
/** A call that took longer than this hung: the deadlines above plus a loaded CI box's slack. */
const FAST_MS = 4_000;

type Cluster = Awaited<ReturnType<typeof startCluster>>;
let pg: OwnServer;
let redis: OwnServer & { restart(): Promise<void> };
let rabbit: OwnServer;
let cluster: Cluster;
let dataDir: string;
const logs: string[] = [];

before(async () => {
  if (skip) return;
  [pg, redis, rabbit] = await Promise.all([ownPostgres(), ownRedis(), ownRabbitMq()]);
  dataDir = mkdtempSync(join(tmpdir(), "crm-faults-"));
  cluster = await startCluster({
    dataDir,
    ports: "free",
    only: ["dbservice", "auth", "chats"],
    gateway: false,
    databaseUrl: pg.url.replace(/\/postgres$/, "/crm"),
    redisUrl: redis.url,
    amqpUrl: rabbit.url,
    env: { ...deadlines, LOG_LEVEL: "info", LOGS_REPORT_ERRORS: "false", CHAT_HEARTBEAT_MS: "60000" },
    onLog: (name: string, line: string) => void logs.push(`${name}: ${line}`),
    readyTimeoutMs: 120_000,
  });
});

after(async () => {
  redis?.thaw();
  pg?.thaw();
  rabbit?.thaw();
  await cluster?.stop();
  await Promise.all([pg?.close(), redis?.close(), rabbit?.close()]);
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

function client<S extends DescService>(service: S, name: "auth" | "chats", token?: string): Client<S> {
  const auth: Interceptor = (next) => (req) => {
    if (token) req.header.set("authorization", `Bearer ${token}`);
    return next(req);
  };
  const nodeOptions = { ca: readFileSync(cluster.pki.ca), cert: readFileSync(cluster.pki.cert("gateway")), key: readFileSync(cluster.pki.key("gateway")) };
  return createClient(service, createGrpcTransport({ baseUrl: `https://127.0.0.1:${cluster.ports[name]}`, nodeOptions, interceptors: [auth] }));
}

const PASSWORD = "correct horse battery staple";
let n = 0;
async function register() {
  const email = `owner-${process.pid}-${++n}@faults.example`;
  const r = await client(AuthService, "auth").registerCompany({ companyName: `Faults ${n}`, email, password: PASSWORD, ownerName: "Owner" }, { timeoutMs: 30_000 });
  return { email, token: r.accessToken, sessionId: r.sessionId };
}

/** The outcome of a call: "ok", or the Connect code's name, and how long it took. */
async function outcome(call: () => Promise<unknown>): Promise<{ code: string; message: string; ms: number }> {
  const started = performance.now();
  try {
    await call();
    return { code: "ok", message: "", ms: performance.now() - started };
  } catch (err) {
    const e = ConnectError.from(err);
    return { code: Code[e.code], message: e.rawMessage, ms: performance.now() - started };
  }
}

const callOpts = { timeoutMs: 15_000 };

test("Redis restarted empty: no process accepts a logged-out token, not while the list is rebuilt from PostgreSQL, not after, not a process started afterwards", { skip, timeout: 180_000 }, async () => {
  const out = await register();
  const kept = await register();
  await client(AuthService, "auth", out.token).logout({}, callOpts);
  const checks = {
    auth: (token: string) => client(AuthService, "auth", token).check({}, callOpts),
    chats: (token: string) => client(ChatService, "chats", token).listChats({}, callOpts),
  };
  for (const [name, check] of Object.entries(checks)) {
    assert.equal((await outcome(() => check(out.token))).code, "Unauthenticated", `${name} refuses the logged-out token before the fault`);
    assert.equal((await outcome(() => check(kept.token))).code, "ok", `${name} accepts the other session`);
  }

  // Check the logged-out token in a loop on both running processes while Redis restarts empty and after.
  const seen: Record<string, Record<string, number>> = { auth: {}, chats: {} };
  let stop = false;
  const loops = Object.entries(checks).map(async ([name, check]) => {
    while (!stop) {
      const o = await outcome(() => check(out.token));
      seen[name]![o.code] = (seen[name]![o.code] ?? 0) + 1;
      if (o.code === "ok") assert.fail(`${name} accepted the logged-out token during the fault`);
      if (o.code !== "Unauthenticated" && o.code !== "Unavailable") assert.fail(`${name} answered ${o.code}: ${o.message}`);
    }
  });
  await until("some checks before the restart", () => (seen.auth!.Unauthenticated ?? 0) > 5 && (seen.chats!.Unauthenticated ?? 0) > 5);
  await redis.restart();
  // Rebuilt: the other session works again everywhere, the logged-out one is refused as ended.
  await until("dbservice to rebuild the list and every process to trust it again", async () => {
    const a = await outcome(() => checks.auth(kept.token));
    const c = await outcome(() => checks.chats(kept.token));
    return a.code === "ok" && c.code === "ok";
  }, 30_000);
  const loopsAfter = { auth: seen.auth!.Unauthenticated ?? 0, chats: seen.chats!.Unauthenticated ?? 0 };
  await until("more checks after the rebuild", () => (seen.auth!.Unauthenticated ?? 0) > loopsAfter.auth + 20 && (seen.chats!.Unauthenticated ?? 0) > loopsAfter.chats + 20);
  stop = true;
  await Promise.all(loops);
  assert.equal(seen.auth!.ok ?? 0, 0);
  assert.equal(seen.chats!.ok ?? 0, 0);

  // The entry is back in Redis with what is left of its time (auth wrote ACCESS_TOKEN_TTL + 60 = 960 s).
  const r = new Redis(redis.url);
  try {
    const ttl = await r.ttl(`crm:revoked:${out.sessionId}`);
    assert.ok(ttl > 800 && ttl <= 960, `restored with its remaining TTL (${ttl} s)`);
    assert.ok(await r.get("crm:revoked:generation"), "marked complete");
  } finally {
    r.disconnect();
  }

  // A process started after the loss.
  await cluster.restartService("chats");
  assert.equal((await outcome(() => checks.chats(out.token))).code, "Unauthenticated", "the new chats process refuses it");
  assert.equal((await outcome(() => checks.chats(kept.token))).code, "ok");
});

test("Redis stopped: Login answers unavailable naming Redis (not internal), token checks fail closed, and everything works again when it is back", { skip, timeout: 120_000 }, async () => {
  const user = await register();
  await redis.stop();
  try {
    const login = await outcome(() => client(AuthService, "auth").login({ email: user.email, password: PASSWORD }, callOpts));
    assert.equal(login.code, "Unavailable", login.message);
    assert.match(login.message, new RegExp(`Redis at 127\\.0\\.0\\.1:${redis.port} is not answering .*try again shortly`));
    await until("the mirrors' lease to end (3 heartbeats)", async () => (await outcome(() => client(ChatService, "chats", user.token).listChats({}, callOpts))).code === "Unavailable", 10_000);
    const check = await outcome(() => client(AuthService, "auth", user.token).check({}, callOpts));
    assert.equal(check.code, "Unavailable", "fail closed: no session can be proven unrevoked");
    assert.match(check.message, /Redis/);
  } finally {
    await redis.start();
  }
  await until("login to work again", async () => (await outcome(() => client(AuthService, "auth").login({ email: user.email, password: PASSWORD }, callOpts))).code === "ok", 30_000);
  await until("token checks to work again", async () => (await outcome(() => client(ChatService, "chats", user.token).listChats({}, callOpts))).code === "ok", 30_000);
});

test("Redis frozen (SIGSTOP) 10 s: every call answers within its deadline, none hangs; Login and, after the lease, token checks are unavailable; all work again after SIGCONT", { skip, timeout: 120_000 }, async () => {
  const user = await register();
  const calls = {
    login: () => client(AuthService, "auth").login({ email: user.email, password: PASSWORD }, callOpts),
    check: () => client(AuthService, "auth", user.token).check({}, callOpts),
    listChats: () => client(ChatService, "chats", user.token).listChats({}, callOpts),
  };
  for (const [name, call] of Object.entries(calls)) assert.equal((await outcome(call)).code, "ok", `${name} before the freeze`);
  redis.freeze();
  const frozenAt = performance.now();
  const seen: Record<string, Record<string, number>> = {};
  try {
    while (performance.now() - frozenAt < 10_000) {
      for (const [name, call] of Object.entries(calls)) {
        const o = await outcome(call);
        assert.ok(o.ms < FAST_MS, `${name} answered within its deadline (${Math.round(o.ms)} ms: ${o.code} ${o.message})`);
        assert.ok(o.code === "ok" || o.code === "Unavailable", `${name}: ${o.code} ${o.message}`);
        if (o.code === "Unavailable") assert.match(o.message, /Redis|revocation list/, `${name} names the cause`);
        (seen[name] ??= {})[o.code] = (seen[name]![o.code] ?? 0) + 1;
      }
    }
  } finally {
    redis.thaw();
  }
  assert.ok(seen.login!.Unavailable, "Login needs Redis (throttling): unavailable");
  assert.ok(seen.check!.Unavailable && seen.listChats!.Unavailable, "token checks fail closed once the mirrors cannot prove they are current");
  for (const [name, call] of Object.entries(calls)) await until(`${name} to work again after SIGCONT`, async () => (await outcome(call)).code === "ok", 20_000);
});

test("PostgreSQL frozen (SIGSTOP): calls that need it fail within DB_QUERY_TIMEOUT_MS with unavailable, nothing half-written or doubled; they work again after SIGCONT", { skip, timeout: 120_000 }, async () => {
  const user = await register();
  const chat = client(ChatService, "chats", user.token);
  const { chat: created } = await chat.createChat({ name: "Frozen database", memberIds: [] }, callOpts);
  const chatId = created!.chatId;
  await chat.sendMessage({ chatId, content: "before" }, callOpts);
  pg.freeze();
  try {
    for (let i = 0; i < 3; i++) {
      const o = await outcome(() => chat.sendMessage({ chatId, content: `during ${i}`, clientMessageId: `frozen-${i}` }, callOpts));
      assert.equal(o.code, "Unavailable", o.message);
      assert.match(o.message, /database unavailable: PostgreSQL/);
      assert.ok(o.ms < FAST_MS, `failed fast (${Math.round(o.ms)} ms)`);
    }
    const list = await outcome(() => chat.listMessages({ chatId }, callOpts));
    assert.equal(list.code, "Unavailable", list.message);
    assert.ok(list.ms < FAST_MS);
  } finally {
    pg.thaw();
  }
  // A statement past its deadline may still commit when the server wakes up (it had the whole
  // transaction in its socket): `unavailable` means "not known", and a retry with the same
  // clientMessageId replays the stored message instead of storing it twice.
  await until("SendMessage to work again", async () => (await outcome(() => chat.sendMessage({ chatId, content: "during 0", clientMessageId: "frozen-0" }, callOpts))).code === "ok", 20_000);
  for (let i = 1; i < 3; i++) await chat.sendMessage({ chatId, content: `during ${i}`, clientMessageId: `frozen-${i}` }, callOpts);
  await chat.sendMessage({ chatId, content: "after" }, callOpts);
  const { messages } = await chat.listMessages({ chatId }, callOpts);
  assert.deepEqual(
    messages.map((m) => [Number(m.seq), m.content]),
    [[1, "before"], [2, "during 0"], [3, "during 1"], [4, "during 2"], [5, "after"]],
    "each message once, whole (with its seq), no seq lost",
  );
});

test("RabbitMQ frozen, then restarted: every send succeeds (the outbox keeps the events) and every message reaches the live subscriber once, in order, when the broker is back", { skip, timeout: 240_000 }, async () => {
  const user = await register();
  const chat = client(ChatService, "chats", user.token);
  const { chat: created } = await chat.createChat({ name: "Broker faults", memberIds: [] }, callOpts);
  const chatId = created!.chatId;
  const live = watch(chat, chatId, 0n);
  await live.live(30_000);
  let seq = 0;
  const send = async (label: string) => {
    const o = await outcome(() => chat.sendMessage({ chatId, content: `${label} ${seq + 1}` }, callOpts));
    assert.equal(o.code, "ok", `${label}: ${o.message}`);
    assert.ok(o.ms < FAST_MS, `${label} did not wait for the broker (${Math.round(o.ms)} ms)`);
    seq++;
  };
  for (let i = 0; i < 5; i++) await send("before");
  assertSeqs(await live.count(seq, 20_000), 1, seq);

  rabbit.freeze();
  try {
    for (let i = 0; i < 20; i++) await send("frozen");
  } finally {
    rabbit.thaw();
  }
  assertSeqs(await live.count(seq, 60_000), 1, seq);

  await rabbit.stop();
  for (let i = 0; i < 20; i++) await send("stopped");
  await rabbit.start();
  assertSeqs(await live.count(seq, 90_000), 1, seq);
  await send("after");
  assertSeqs(await live.count(seq, 30_000), 1, seq);
  await live.close();
});

test("all-in-one with REDIS_URL: Redis restarted empty, a logged-out token stays refused (its own keeper rebuilds the list)", { skip, timeout: 120_000 }, async () => {
  const { default: pgClient } = await import("pg");
  const admin = new pgClient.Client({ connectionString: pg.url });
  await admin.connect();
  await admin.query("CREATE DATABASE crm_all_in_one");
  await admin.end();
  // A Redis of its own: the cluster's dbservice above keeps the list on the shared one from ITS
  // database, and two deployments on one Redis would each take the other's rebuild for complete.
  const redis = await ownRedis();
  const app = await startTestApp({ DATABASE_URL: pg.url.replace(/\/postgres$/, "/crm_all_in_one"), REDIS_URL: redis.url, AMQP_URL: rabbit.url, ...deadlines });
  try {
    const auth = (token?: string) => app.client(AuthService, token ? { token } : {});
    const reg = await auth().registerCompany({ companyName: "All in one", email: `aio-${process.pid}@faults.example`, password: PASSWORD, ownerName: "Owner" });
    const other = await auth().login({ email: `aio-${process.pid}@faults.example`, password: PASSWORD });
    await auth(reg.accessToken).logout({});
    assert.equal((await outcome(() => auth(reg.accessToken).check({}))).code, "Unauthenticated");
    await redis.restart();
    const seen: Record<string, number> = {};
    await until("the list rebuilt (the other session works again)", async () => {
      const o = await outcome(() => auth(reg.accessToken).check({}));
      seen[o.code] = (seen[o.code] ?? 0) + 1;
      return (await outcome(() => auth(other.accessToken).check({}))).code === "ok";
    }, 30_000);
    for (let i = 0; i < 20; i++) {
      const o = await outcome(() => auth(reg.accessToken).check({}));
      seen[o.code] = (seen[o.code] ?? 0) + 1;
    }
    assert.equal(seen.ok ?? 0, 0, `the logged-out token was never accepted: ${JSON.stringify(seen)}`);
    assert.ok((seen.Unauthenticated ?? 0) >= 20);
    const r = new Redis(redis.url);
    try {
      const ttl = await r.ttl(`crm:revoked:${reg.sessionId}`);
      assert.ok(ttl > 800 && ttl <= 960, `restored in Redis with its remaining TTL (${ttl} s), so processes started now refuse it too`);
    } finally {
      r.disconnect();
    }
  } finally {
    await app.close();
    await redis.stop();
  }
});

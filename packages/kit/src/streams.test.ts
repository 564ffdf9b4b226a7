/**
 * Long-lived streams end with an error when their session is revoked (unauthenticated,
 * session_ended) or the server drains (unavailable), on the fast path and on connect-node's, for
 * gRPC, Connect and gRPC-Web, pushed by the revocation list's events: the revoke resolves and the
 * client sees the error well within a second, idle or busy. The registry itself in memory first;
 * last, on the real Redis, a revocation this process missed while cut off ends the stream on reload.
 */
import assert from "node:assert/strict";
import { randomBytes, randomUUID } from "node:crypto";
import { once } from "node:events";
import { after, test } from "node:test";
import { Redis } from "ioredis";
import { Code, ConnectError, createClient, type HandlerContext, type Interceptor, type Transport } from "@connectrpc/connect";
import { compressionGzip, createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { ChatService, type SubscribeResponseSchema } from "@crm/gen/crm/chat/v1/chat_pb";
import { Health } from "@crm/gen/grpc/health/v1/health_pb";
import { TEST_REDIS_URL, installHint, need, redisUp, tcpProxy, until } from "@crm/testkit";
import type { Principal, TokenVerifier } from "./auth.js";
import { AppError } from "./errors.js";
import { createLogger } from "./logger.js";
import { memoryRevocations, redisRevocations, revocationKeys, type Revocations } from "./revocations.js";
import { redisClient } from "./runtime.js";
import { startServer, type ServiceModule } from "./server.js";
import { SESSION_ENDED_MESSAGE, SHUTTING_DOWN_MESSAGE, createStreamRegistry } from "./streams.js";

const log = createLogger("test", "silent");

test("stream registry: a revoked session ends its streams only; the drain ends every stream; unregistered ones hear nothing", async () => {
  const revocations = memoryRevocations();
  const shutdown = new AbortController();
  const registry = createStreamRegistry({ revocations, shutdownSignal: shutdown.signal });
  const ended = new Map<string, AppError[]>();
  const track = (name: string, sid: string | undefined) => registry.add(sid, (e) => ended.set(name, [...(ended.get(name) ?? []), e]));
  track("a1", "sa");
  track("a2", "sa");
  track("b", "sb");
  track("public", undefined);
  const gone = track("gone", "sa");
  gone();
  assert.equal(registry.size, 4);

  await revocations.revokeSessions(["sa", "unknown"], 60);
  assert.deepEqual([...ended.keys()].sort(), ["a1", "a2"], "synchronously, as the revoke resolves");
  for (const name of ["a1", "a2"]) {
    assert.equal(ended.get(name)!.length, 1);
    assert.equal(ended.get(name)![0]!.reason, "session_ended");
    assert.equal(ended.get(name)![0]!.message, SESSION_ENDED_MESSAGE);
  }
  assert.equal(registry.size, 2);

  shutdown.abort();
  assert.deepEqual([...ended.keys()].sort(), ["a1", "a2", "b", "public"]);
  assert.equal(ended.get("b")![0]!.reason, "unavailable");
  assert.equal(ended.get("public")![0]!.message, SHUTTING_DOWN_MESSAGE);
  assert.equal(registry.size, 0);
  await revocations.revokeSessions(["sb"], 60);
  assert.equal(ended.get("b")!.length, 1, "each stream ends once");
  registry.close();
});

test("stream registry: a stream registered after its session was revoked (the revocation fell between the token check and the registration) ends at once; after the drain, at once with unavailable", async () => {
  const revocations = memoryRevocations();
  const shutdown = new AbortController();
  const registry = createStreamRegistry({ revocations, shutdownSignal: shutdown.signal });
  await revocations.revokeSessions(["late"], 60);
  const reasons: string[] = [];
  registry.add("late", (e) => reasons.push(e.reason));
  await until("the re-check to end it", () => reasons.length === 1);
  assert.deepEqual(reasons, ["session_ended"]);
  shutdown.abort();
  registry.add("other", (e) => reasons.push(e.reason));
  assert.deepEqual(reasons, ["session_ended", "unavailable"]);

  const failing: Revocations = { ...memoryRevocations(), isSessionRevoked: () => Promise.reject(new Error("redis down")) };
  const closed = createStreamRegistry({ revocations: failing, shutdownSignal: new AbortController().signal });
  const why: string[] = [];
  closed.add("s", (e) => why.push(e.reason));
  await until("fail closed", () => why.length === 1);
  assert.deepEqual(why, ["unavailable"]);
  registry.close();
  closed.close();
});

/** A server with one streaming method: "idle" streams wait for their signal, "busy" ones yield every 2 ms. */
async function streamServer(revocations: Revocations = memoryRevocations(), fastPath = true) {
  const finished: string[] = []; // chat ids whose implementation ran its finally block
  // Tokens are "token-<session id>"; any other token is refused.
  const verifier: TokenVerifier = {
    async verify(token) {
      const raw = /^token-(.+)$/.exec(token)?.[1];
      const sid = raw && decodeURIComponent(raw);
      if (!sid) throw new AppError("token_invalid", "bad token");
      if (await revocations.isSessionRevoked(sid)) throw new AppError("session_ended", "ended");
      return { userId: "u", companyId: "c", role: "member", sessionId: sid, expiresAt: 2e9, token } satisfies Principal;
    },
  };
  const module: ServiceModule = {
    name: "streams",
    services: [ChatService],
    routes(router) {
      async function* events(req: { chatId: string }, ctx: HandlerContext): AsyncGenerator<MessageInitShape<typeof SubscribeResponseSchema>> {
        try {
          yield { event: { case: "heartbeat", value: { lastSeq: 0n } } };
          for (let i = 1n; !ctx.signal.aborted; i++) {
            if (req.chatId.startsWith("busy")) {
              await new Promise((r) => setTimeout(r, 2));
              yield { event: { case: "heartbeat", value: { lastSeq: i } } };
            } else {
              await new Promise<void>((resolve) => ctx.signal.addEventListener("abort", () => resolve(), { once: true }));
            }
          }
        } finally {
          finished.push(req.chatId);
        }
      }
      router.service(ChatService, {
        subscribe(req, ctx) {
          // Refused before it returns a stream, as a handler validating its request does.
          if (req.chatId === "invalid") throw new AppError("invalid_argument", "invalid request: chatId: must be a UUID");
          return events(req, ctx);
        },
      });
    },
  };
  const server = await startServer({ modules: [module], port: 0, host: "127.0.0.1", log, verifier, revocations, readMaxBytes: 1 << 20, shutdownTimeoutMs: 5_000, fastPath });
  const url = `http://127.0.0.1:${server.port}`;
  const as = (sid: string): Interceptor => (next) => (req) => (req.header.set("authorization", `Bearer token-${encodeURIComponent(sid)}`), next(req));
  const variants: [string, (i: Interceptor[]) => Transport][] = [
    ["gRPC (fast path)", (interceptors) => createGrpcTransport({ baseUrl: url, interceptors })],
    ["Connect binary h2 (fast path)", (interceptors) => createConnectTransport({ baseUrl: url, httpVersion: "2", useBinaryFormat: true, interceptors })],
    ["Connect JSON HTTP/1.1 (connect-node)", (interceptors) => createConnectTransport({ baseUrl: url, httpVersion: "1.1", interceptors })],
    ["gRPC gzip (connect-node)", (interceptors) => createGrpcTransport({ baseUrl: url, sendCompression: compressionGzip, interceptors })],
    ["gRPC-Web (connect-node)", (interceptors) => createGrpcWebTransport({ baseUrl: url, httpVersion: "1.1", interceptors })],
  ];
  return { server, revocations, finished, variants, as, url };
}

/** Opens Subscribe and records how it ends. */
function open(transport: Transport, chatId: string) {
  const s = { events: 0, error: undefined as ConnectError | undefined, ended: false, endedAt: 0 };
  const done = (async () => {
    try {
      for await (const _ of createClient(ChatService, transport).subscribe({ chatId })) s.events++;
    } catch (err) {
      s.error = ConnectError.from(err);
    } finally {
      s.ended = true;
      s.endedAt = performance.now();
    }
  })();
  return Object.assign(s, { done });
}

// With the fast path off (RPC_FAST_PATH=off), connect-node serves every stream: the same endings.
for (const fastPath of [true, false]) {
  const on = fastPath ? "on" : "off";
  test(`RPC_FAST_PATH=${on}: server streams end with unauthenticated (session_ended) within 1 s of their session's revocation, idle or busy, on every path and protocol; other sessions' streams go on`, { timeout: 60_000 }, async () => {
    const { server, revocations, finished, variants, as } = await streamServer(undefined, fastPath);
    try {
      for (const [name, transport] of variants) {
        for (const kind of ["idle", "busy"]) {
          const sid = `${kind}-${name}`;
          const mine = open(transport([as(sid)]), `${kind}-${name}`);
          const other = open(transport([as(`other-${sid}`)]), `${kind}-other-${name}`);
          await until(`${name} ${kind}: both streams live`, () => (mine.events > 0 && other.events > 0) || mine.ended || other.ended);
          await revocations.revokeSessions([sid], 60);
          const revokedAt = performance.now();
          await until(`${name} ${kind}: the stream to end`, () => mine.ended, 5_000);
          const ms = mine.endedAt - revokedAt;
          assert.ok(ms < 1_000, `${name} ${kind}: ended ${ms.toFixed(0)} ms after the revoke`);
          assert.equal(mine.error?.code, Code.Unauthenticated, `${name} ${kind}: ${mine.error?.message ?? "ended with OK"}`);
          assert.equal(mine.error?.rawMessage, SESSION_ENDED_MESSAGE, name);
          assert.equal(mine.error?.metadata.get("crm-error"), "session_ended", name);
          await until(`${name} ${kind}: the implementation to stop`, () => finished.includes(`${kind}-${name}`));
          assert.equal(other.ended, false, `${name} ${kind}: another session's stream goes on`);
          await revocations.revokeSessions([`other-${sid}`], 60);
          await other.done;
        }
      }
    } finally {
      await server.close();
    }
  });

  test(`RPC_FAST_PATH=${on}: a stream refused by its handler before the first message gets the handler's code on every path`, { timeout: 30_000 }, async () => {
    const { server, variants, as } = await streamServer(undefined, fastPath);
    try {
      for (const [name, transport] of variants) {
        const s = open(transport([as("any")]), "invalid");
        await s.done;
        assert.equal(s.error?.code, Code.InvalidArgument, `${name}: ${s.error?.message ?? "ended with OK"}`);
        assert.equal(s.error?.metadata.get("crm-error"), "invalid_argument", name);
        assert.equal(s.events, 0, name);
      }
    } finally {
      await server.close();
    }
  });

  test(`RPC_FAST_PATH=${on}: SIGTERM's drain ends open streams with unavailable (\"server is shutting down; reconnect\"), not OK, on every path and protocol, health Watch included`, { timeout: 60_000 }, async () => {
    const { server, variants, as, url, finished } = await streamServer(undefined, fastPath);
    const open1 = variants.flatMap(([name, transport]) => ["idle", "busy"].map((kind) => [`${name} ${kind}`, open(transport([as(`${kind}-${name}`)]), `${kind}-${name}`)] as const));
    const health = { error: undefined as ConnectError | undefined, ended: false, events: 0 };
    const watching = (async () => {
      try {
        for await (const _ of createClient(Health, createGrpcTransport({ baseUrl: url })).watch({ service: "" })) health.events++;
      } catch (err) {
        health.error = ConnectError.from(err);
      } finally {
        health.ended = true;
      }
    })();
    await until("every stream live", () => open1.every(([, s]) => s.events > 0 || s.ended) && (health.events > 0 || health.ended));
    const closing = server.close();
    await Promise.all(open1.map(([, s]) => s.done));
    await watching;
    for (const [name, s] of open1) {
      assert.equal(s.error?.code, Code.Unavailable, `${name}: ${s.error?.message ?? "ended with OK"}`);
      assert.equal(s.error?.rawMessage, SHUTTING_DOWN_MESSAGE, name);
    }
    assert.equal(health.error?.code, Code.Unavailable, `health Watch: ${health.error?.message ?? "ended with OK"}`);
    await closing;
    assert.equal(finished.length, open1.length, "every implementation stopped");
  });
}

test("with Redis: a revocation made while this process's subscriber was cut off ends the session's stream when the list is reloaded", { skip: need("Redis", await redisUp(), installHint.redis), timeout: 60_000 }, async () => {
  const run = randomBytes(4).toString("hex");
  const namespace = `streamtest:${run}`; // this test's own list on the shared Redis
  const names = revocationKeys(namespace);
  const admin = new Redis(TEST_REDIS_URL);
  const proxy = await tcpProxy(TEST_REDIS_URL, 6379);
  const clients: Redis[] = [];
  const client = async (name: string, url = TEST_REDIS_URL) => {
    const c = redisClient(url, log);
    c.options.connectionName = `streamtest-${run}-${name}`; // read by duplicate(): names the subscriber
    clients.push(c);
    if (c.status !== "ready") await once(c, "ready");
    return c;
  };
  after(async () => {
    const keys = await admin.keys(`${names.prefix}*`);
    if (keys.length) await admin.del(...keys);
    for (const c of clients) c.disconnect();
    admin.disconnect();
    await proxy.close();
  });
  // As dbservice's keeper does after a rebuild: the list is complete under this Redis run.
  const runId = /^run_id:(\w+)/m.exec(await admin.info("server"))![1]!;
  await admin.set(names.generation, `${runId} ${new Date().toISOString()} test`);
  const elsewhere = redisRevocations(await client("a"), { log, namespace }); // auth, in another process
  const here = redisRevocations(await client("b", proxy.via(TEST_REDIS_URL)), { log, namespace, heartbeatMs: 600_000 });
  const { server, variants, as } = await streamServer(here);
  try {
    await until("both mirrors live", () => elsewhere.live && here.live);
    const sid = randomUUID();
    const s = open(variants[0]![1]([as(sid)]), "idle-redis");
    await until("the stream to go live", () => s.events > 0 || s.ended);
    const subscriber = String(await admin.client("LIST"))
      .split("\n")
      .map((line) => /\bid=(\d+)\b.*\bname=(\S*)/.exec(line))
      .find((m) => m?.[2] === `streamtest-${run}-b-revocations`);
    assert.ok(subscriber, "this process's subscriber is in CLIENT LIST");
    proxy.hold(); // established connections go on; the subscriber cannot come back until start()
    await admin.client("KILL", "ID", subscriber[1]!);
    await until("this process to notice its subscriber is gone", () => !here.live);
    await elsewhere.revokeSessions([sid], 60); // published while nobody here listens
    assert.equal(s.ended, false, "nothing here has heard of it yet");
    proxy.start();
    const restored = performance.now();
    await until("the stream to end once the list is reloaded", () => s.ended, 10_000);
    assert.equal(s.error?.code, Code.Unauthenticated, s.error?.message ?? "ended with OK");
    assert.equal(s.error?.metadata.get("crm-error"), "session_ended");
    assert.ok(s.endedAt - restored < 5_000, `ended ${(s.endedAt - restored).toFixed(0)} ms after Redis was reachable again`);
  } finally {
    await server.close();
    await here.close();
    await elsewhere.close();
  }
});

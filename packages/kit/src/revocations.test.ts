/**
 * The Redis revocation list against the real server: a local mirror kept by pub/sub, EXISTS whenever
 * the mirror is not live. Each instance has its own ioredis clients, as separate processes would;
 * a proxy this test owns keeps a subscriber away from Redis for as long as the test needs.
 */
import assert from "node:assert/strict";
import { randomBytes, randomUUID } from "node:crypto";
import { once } from "node:events";
import net from "node:net";
import { after, test } from "node:test";
import { Redis } from "ioredis";
import { TEST_REDIS_URL, installHint, need, redisUp, tcpProxy, until } from "@crm/testkit";
import { createLogger } from "./logger.js";
import { keepRevocationList, memoryRevocations, redisRevocations, revocationKeys, type RedisRevocations, type RedisRevocationsOptions, type RevokedEntry } from "./revocations.js";
import { redisClient } from "./runtime.js";

const skip = need("Redis", await redisUp(), installHint.redis);
const log = createLogger("test", process.env.TEST_LOG ?? "silent");
const run = randomBytes(4).toString("hex");
// This file's own list on the shared Redis (other files' processes use crm:revoked).
const namespace = `revtest:${run}`;
const names = revocationKeys(namespace);

const clients: Redis[] = [];
const lists: RedisRevocations[] = [];
const sids: string[] = [];
let control: Redis | undefined;
after(async () => {
  await Promise.all(lists.map((l) => l.close()));
  if (control) {
    const keys = await control.keys(`${names.prefix}*`);
    if (keys.length) await control.del(...keys);
  }
  for (const c of clients) if (c.status !== "end") c.disconnect();
  control?.disconnect();
});

const newSid = () => (sids.push(randomUUID()), sids.at(-1)!);
const admin = () => (control ??= new Redis(TEST_REDIS_URL));
const runIdOf = async (r: Redis) => /^run_id:(\w+)/m.exec(await r.info("server"))![1]!;
/** What dbservice's keeper does after a rebuild: the list is complete under this server's run. */
const markComplete = async () => void (await admin().set(names.generation, `${await runIdOf(admin())} ${new Date().toISOString()} test`));
if (!skip) await markComplete();

/** A process's view: its own main client (as runtime.ts makes it) and revocation list; `exists` counts EXISTS calls. */
async function instance(name: string, { url, ...opts }: { url?: string } & RedisRevocationsOptions = {}) {
  const client = redisClient(url ?? TEST_REDIS_URL, log);
  client.options.connectionName = `revtest-${run}-${name}`; // read by duplicate(): names the subscriber
  clients.push(client);
  if (client.status !== "ready") await once(client, "ready");
  // Counts the checks that went to Redis (EXISTS, in a MULTI with the generation).
  const exists = { calls: 0 };
  const multi = client.multi.bind(client) as () => ReturnType<Redis["multi"]>;
  client.multi = (() => {
    const m = multi();
    const real = m.exists.bind(m) as (...args: unknown[]) => unknown;
    m.exists = ((...args: unknown[]) => (exists.calls++, real(...args))) as typeof m.exists;
    return m;
  }) as typeof client.multi;
  const list = redisRevocations(client, { log, namespace, ...opts });
  lists.push(list);
  return { client, list, exists, subscriberName: `revtest-${run}-${name}-revocations` };
}

/** The CLIENT LIST entries whose name is `name`. */
async function clientsNamed(name: string): Promise<{ id: string; name: string }[]> {
  const text = String(await admin().client("LIST"));
  return text
    .split("\n")
    .map((line) => Object.fromEntries(line.trim().split(" ").map((kv) => kv.split("=", 2) as [string, string])) as { id: string; name: string })
    .filter((c) => c.name === name);
}

test("redis revocations: until the mirror is live every check is EXISTS; then a revocation through A reaches B without EXISTS", { skip }, async () => {
  const a = await instance("a");
  const early = newSid();
  await a.list.revokeSessions([early], 60);
  const ttl = await admin().pttl(names.key(early));
  assert.ok(ttl > 59_000 && ttl <= 60_000, `SET ... EX 60 (PTTL ${ttl})`);

  const b = await instance("b");
  assert.equal(b.list.live, false, "just created: not subscribed nor loaded yet");
  assert.equal(await b.list.isSessionRevoked(early), true);
  assert.equal(b.exists.calls, 1, "answered by EXISTS");

  await until("both mirrors live", () => a.list.live && b.list.live);
  const calls = b.exists.calls;
  assert.equal(await b.list.isSessionRevoked(early), true, "loaded from Redis when B subscribed");
  const sid = newSid();
  assert.equal(await b.list.isSessionRevoked(sid), false, "never revoked");
  await a.list.revokeSessions([sid], 60);
  assert.equal(await a.list.isSessionRevoked(sid), true, "A knows at once");
  await until("B to learn of the revocation from pub/sub", () => b.list.isSessionRevoked(sid));
  assert.equal(b.exists.calls, calls, "no EXISTS once live");
  assert.equal(a.exists.calls, 0);
});

test("redis revocations: a revocation made while B's subscriber is cut off is answered by EXISTS, then loaded when B resubscribes", { skip }, async () => {
  const p = await tcpProxy(TEST_REDIS_URL, 6379);
  after(() => p.close());
  const a = await instance("gap-a");
  // A heartbeat far beyond the test's waits: only the subscriber's close event can end the mirror's lease here.
  const b = await instance("gap-b", { url: p.via(TEST_REDIS_URL), heartbeatMs: 600_000 });
  await until("B live", () => b.list.live);
  const [sub] = await clientsNamed(b.subscriberName);
  assert.ok(sub, `B's subscriber ${b.subscriberName} is in CLIENT LIST`);

  p.hold(); // B's main connection stays; its subscriber cannot come back until start()
  await admin().client("KILL", "ID", sub.id);
  await until("B to notice its subscriber is gone", () => !b.list.live);
  const sid = newSid();
  await a.list.revokeSessions([sid], 60); // B hears nothing of this one
  const calls = b.exists.calls;
  assert.equal(await b.list.isSessionRevoked(sid), true, "EXISTS during the gap");
  assert.equal(await b.list.isSessionRevoked(newSid()), false);
  assert.equal(b.exists.calls, calls + 2);

  p.start();
  await until("B resubscribed and reloaded", () => b.list.live);
  assert.equal(await b.list.isSessionRevoked(sid), true, "the reload brought the gap's revocation");
  assert.equal(b.exists.calls, calls + 2, "from the mirror");
  await b.list.close();
  await b.client.quit(); // before the proxy goes (its after hook runs when this test ends)
});

test("redis revocations: a subscriber whose PINGs go unanswered for 3 heartbeats is not trusted (EXISTS) until an answered PING renews the lease", { skip }, async () => {
  let clock = 0;
  const a = await instance("lease-a");
  const b = await instance("lease-b", { heartbeatMs: 50, monotonic: () => clock });
  await until("B live", () => b.list.live);
  const sid = newSid();
  await a.list.revokeSessions([sid], 60);
  await until("B to learn of the revocation", () => b.list.isSessionRevoked(sid));
  const calls = b.exists.calls;
  clock += 150; // as if the subscriber had been silent for 3 heartbeats: it may have missed messages
  assert.equal(b.list.live, false);
  assert.equal(await b.list.isSessionRevoked(sid), true, "what it learnt stays true (revocations are never undone)");
  assert.equal(await b.list.isSessionRevoked(newSid()), false);
  assert.equal(b.exists.calls, calls + 1, "EXISTS while the lease is over, for what it does not know");
  await until("a PING answered after the silence (or a reconnect) to renew it", () => b.list.live);
  assert.equal(await b.list.isSessionRevoked(sid), true);
  assert.equal(b.exists.calls, calls + 1, "from the mirror again");
});

test("redis revocations: entries expire with their TTL (pub/sub and loaded ones alike)", { skip }, async () => {
  let clock = Date.now();
  const now = () => clock;
  const a = await instance("ttl-a");
  const b = await instance("ttl-b", { now });
  await until("B live", () => b.list.live);
  const short = newSid();
  await a.list.revokeSessions([short], 1);
  await until("B to learn of the revocation", () => b.list.isSessionRevoked(short));
  clock += 999;
  assert.equal(await b.list.isSessionRevoked(short), true);
  clock += 2;
  assert.equal(await b.list.isSessionRevoked(short), false, "expired after 1 s");

  const loaded = newSid();
  await a.list.revokeSessions([loaded], 60);
  const c = await instance("ttl-c", { now });
  await until("C live (loaded with PTTL)", () => c.list.live);
  assert.equal(await c.list.isSessionRevoked(loaded), true);
  clock += 60_001;
  assert.equal(await c.list.isSessionRevoked(loaded), false, "expired after its PTTL");
  assert.equal(b.exists.calls + c.exists.calls, 0, "all from the mirrors");
});

test("redis revocations: Redis unreachable and the mirror not live → the check rejects (the verifier fails closed)", async () => {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise((r) => server.close(r)); // nothing listens there now
  const client = redisClient(`redis://127.0.0.1:${port}`, log);
  const list = redisRevocations(client, { log, namespace });
  try {
    assert.equal(list.live, false);
    await assert.rejects(list.isSessionRevoked(randomUUID()), /writeable|ECONNREFUSED|closed/i);
  } finally {
    await list.close();
    client.disconnect();
  }
});

test("redis revocations: close() ends the subscriber, and so does quitting the main client", { skip }, async () => {
  const a = await instance("close-a");
  const b = await instance("close-b");
  await until("both live", () => a.list.live && b.list.live);
  assert.equal((await clientsNamed(a.subscriberName)).length, 1);
  await a.list.close();
  assert.equal(a.list.live, false);
  await until("A's subscriber gone from CLIENT LIST", async () => (await clientsNamed(a.subscriberName)).length === 0);
  await b.client.quit();
  await until("B's subscriber gone from CLIENT LIST", async () => (await clientsNamed(b.subscriberName)).length === 0);
  assert.equal(b.list.live, false);
});

test("memory revocations: onRevoked tells each listener of the sessions revoked, a throwing listener does not stop the others, and unsubscribing stops it", async () => {
  const list = memoryRevocations();
  const heard: string[][] = [];
  list.onRevoked(() => {
    throw new Error("listener bug");
  });
  const off = list.onRevoked((ids) => heard.push(ids));
  await list.revokeSessions(["s1", "s2"], 60);
  assert.deepEqual(heard, [["s1", "s2"]]);
  off();
  await list.revokeSessions(["s3"], 60);
  assert.deepEqual(heard, [["s1", "s2"]], "no call after unsubscribing");
});

test("redis revocations: onRevoked fires for a local revoke, for ids arriving over pub/sub, and for ids first seen on a reload", { skip }, async () => {
  const p = await tcpProxy(TEST_REDIS_URL, 6379);
  after(() => p.close());
  const a = await instance("events-a");
  const b = await instance("events-b", { url: p.via(TEST_REDIS_URL), heartbeatMs: 600_000 });
  await until("both live", () => a.list.live && b.list.live); // their first loads report earlier tests' ids
  const heardA: string[] = [];
  const heardB: string[] = [];
  a.list.onRevoked((ids) => heardA.push(...ids));
  b.list.onRevoked((ids) => heardB.push(...ids));

  const local = newSid();
  await a.list.revokeSessions([local], 60);
  assert.deepEqual(heardA, [local], "the revoking process hears its own revoke when revokeSessions resolves");
  await until("B to hear it over pub/sub", () => heardB.includes(local));

  const [sub] = await clientsNamed(b.subscriberName);
  assert.ok(sub);
  p.hold();
  await admin().client("KILL", "ID", sub.id);
  await until("B's subscriber gone", () => !b.list.live);
  const missed = newSid();
  await a.list.revokeSessions([missed], 60);
  assert.ok(!heardB.includes(missed), "B cannot have heard it yet");
  p.start();
  await until("B to hear the missed revoke from its reload", () => heardB.includes(missed));
  await until("B live", () => b.list.live);
  assert.deepEqual(heardB.filter((id) => id === local || id === missed), [local, missed], "each once: the reload does not repeat known ids");
  assert.equal(heardA.filter((id) => id === local).length, 1, "A's own pub/sub message does not repeat it");
  await b.list.close();
  await b.client.quit();
});

/** A list of its own (namespace), as a fresh Redis would hold it: nothing, no generation. */
function isolated(label: string) {
  const ns = `revtest:${run}:${label}`;
  const n = revocationKeys(ns);
  after(async () => {
    const keys = await admin().keys(`${n.prefix}*`);
    if (keys.length) await admin().del(...keys);
  });
  const open = async (name: string, opts: RedisRevocationsOptions = {}) => {
    const client = redisClient(TEST_REDIS_URL, log);
    clients.push(client);
    if (client.status !== "ready") await once(client, "ready");
    const list = redisRevocations(client, { log, namespace: ns, ...opts });
    lists.push(list);
    return { client, list, name };
  };
  return { ns, n, open };
}

const rejectsUnavailable = (p: Promise<unknown>) =>
  assert.rejects(p, (err: Error & { reason?: string }) => (assert.equal(err.reason, "unavailable"), assert.match(err.message, /revocation list in Redis at 127\.0\.0\.1:\d+ is not complete.*try again shortly/), true));

test("redis revocations: a list without a valid generation (Redis lost its data) is never trusted: every check fails closed until the keeper rebuilt it from PostgreSQL, with each entry's remaining TTL", { skip }, async () => {
  const { ns, n, open } = isolated("lost");
  const revokedLongAgo = newSid(); // 100 s of its window left
  const revokedJustNow = newSid(); // 959 s left
  const stillInRedis = newSid(); // a key that survived (e.g. written after the loss): still refused
  await admin().set(n.key(stillInRedis), "1", "EX", 60);
  const b = await open("b");
  assert.equal(b.list.live, false);
  await rejectsUnavailable(b.list.isSessionRevoked(revokedLongAgo));
  await rejectsUnavailable(b.list.isSessionRevoked(newSid()));
  assert.equal(await b.list.isSessionRevoked(stillInRedis), true, "a listed key is refused as revoked even then");

  // A generation of another Redis run (a restored snapshot, a lagging replica) is no better than none.
  await admin().set(n.generation, `0000000000000000000000000000000000000000 ${new Date().toISOString()} old`);
  await rejectsUnavailable(b.list.isSessionRevoked(revokedJustNow));
  assert.equal(b.list.live, false, "the mirror does not load an unproven list");

  const recent: RevokedEntry[] = [
    { sessionId: revokedLongAgo, ttlSeconds: 100 },
    { sessionId: revokedJustNow, ttlSeconds: 959.2 },
    { sessionId: stillInRedis, ttlSeconds: 500 },
  ];
  const keeper = keepRevocationList(b.client, { recent: async () => recent, log, namespace: ns, checkMs: 20, reconcileMs: 60_000 });
  after(() => keeper.close());
  await until("the keeper's rebuild and B's mirror live", () => b.list.live, 15_000);
  assert.equal(await b.list.isSessionRevoked(revokedLongAgo), true);
  assert.equal(await b.list.isSessionRevoked(revokedJustNow), true);
  assert.equal(await b.list.isSessionRevoked(newSid()), false, "a session never revoked passes once the list is proven complete");
  const pttl = async (sid: string) => admin().pttl(n.key(sid));
  assert.ok((await pttl(revokedLongAgo)) > 98_000 && (await pttl(revokedLongAgo)) <= 100_000, `restored with what is left of its window (PTTL ${await pttl(revokedLongAgo)})`);
  assert.ok((await pttl(revokedJustNow)) > 958_000 && (await pttl(revokedJustNow)) <= 960_000, `rounded up (PTTL ${await pttl(revokedJustNow)})`);
  assert.ok((await pttl(stillInRedis)) <= 60_000, "an entry already listed keeps its TTL");
  const generation = await admin().get(n.generation);
  assert.ok(generation?.startsWith(`${await runIdOf(admin())} `), `the generation names this Redis run: ${generation}`);
  assert.equal(await admin().exists(n.rebuilding), 0, "the rebuild marker is gone");

  // A process started afterwards loads the rebuilt list.
  const c = await open("c");
  await until("C live", () => c.list.live);
  assert.equal(await c.list.isSessionRevoked(revokedLongAgo), true);
});

test("redis revocations: the keeper's reconciliation restores an entry a writer failed to write to Redis, and live mirrors learn it without a reload", { skip }, async () => {
  const { ns, n, open } = isolated("reconcile");
  const recent: RevokedEntry[] = [];
  const b = await open("b");
  const keeper = keepRevocationList(b.client, { recent: async () => recent, log, namespace: ns, checkMs: 20, reconcileMs: 50 });
  after(() => keeper.close());
  await until("B live", () => b.list.live, 15_000);
  const lost = newSid(); // committed in PostgreSQL; its Redis write failed
  recent.push({ sessionId: lost, ttlSeconds: 300 });
  assert.equal(await b.list.isSessionRevoked(lost), false, "not in Redis yet");
  await until("B to learn it from the keeper's message", () => b.list.isSessionRevoked(lost), 10_000);
  assert.ok((await admin().pttl(n.key(lost))) > 290_000);
  assert.equal(b.list.live, true, "no reload was needed");
});

test("redis revocations: a rebuild that Redis loses again midway (the marker is gone) does not mark the list complete", { skip }, async () => {
  const { ns, n, open } = isolated("midway");
  const b = await open("b");
  let flushes = 1;
  const keeper = keepRevocationList(b.client, {
    // While the keeper reads PostgreSQL, Redis loses its data once more (as FLUSHALL would, for this list).
    recent: async () => {
      if (flushes-- > 0) await admin().del(n.rebuilding);
      return [{ sessionId: newSid(), ttlSeconds: 60 }];
    },
    log,
    namespace: ns,
    checkMs: 600_000,
  });
  after(() => keeper.close());
  await assert.rejects(keeper.sync(), /lost the list again/);
  assert.equal(await admin().get(n.generation), null, "no generation after an interrupted rebuild");
  assert.equal(await keeper.sync(), 1, "the next attempt completes");
  assert.ok(await admin().get(n.generation));
});

/** The cache service on the real Redis: SET NX + TTL, Get/Delete, tenant namespacing, expiry, bad input. */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { Code } from "@connectrpc/connect";
import { Redis } from "ioredis";
import { TEST_REDIS_URL, installHint, need, redisUp, until, type TestApp } from "@crm/testkit";
import { badInput, basicFlow, bytes, expectCode, newCompany, quotaEnv, quotaFlow, startApp } from "./flow.js";

const skip = need("Redis", await redisUp(), installHint.redis);

let app: TestApp;
let redis: Redis;
before(async () => {
  if (skip) return;
  app = await startApp({ REDIS_URL: TEST_REDIS_URL, ...quotaEnv });
  redis = new Redis(TEST_REDIS_URL);
});
after(async () => {
  await app?.close();
  redis?.disconnect();
});

test("SET NX, Get, Delete; each company has its own namespace in Redis", { skip }, async () => {
  const { a, b } = await basicFlow(app);
  assert.equal(await redis.exists(`crm:cache:${a.companyId}:greeting`), 0, "deleted");
  assert.equal(await redis.get(`crm:cache:${b.companyId}:greeting`), "bonjour", "stored under the caller's company, from the token");
  assert.equal(await redis.exists(`crm:cache:${a.companyId}:bin`), 1);
});

test("the TTL is set in Redis, and an expired key is not_found and may be saved again", { skip }, async () => {
  const a = await newCompany(app);
  const key = `crm:cache:${a.companyId}:short`;
  assert.equal((await a.cache.save({ key: "short", value: bytes("soon gone"), ttlSeconds: 1 })).stored, true);
  const pttl = await redis.pttl(key);
  assert.ok(pttl > 0 && pttl <= 1000, `PTTL ${pttl}`);
  assert.equal((await a.cache.save({ key: "short", value: bytes("again"), ttlSeconds: 1 })).stored, false);
  await until("Redis to expire the key", async () => (await redis.exists(key)) === 0, 5_000);
  await expectCode(a.cache.get({ key: "short" }), Code.NotFound);
  assert.equal((await a.cache.save({ key: "short", value: bytes("again"), ttlSeconds: 300 })).stored, true);
  const ttl = await redis.ttl(key);
  assert.ok(ttl > 290 && ttl <= 300, `TTL ${ttl}`);
  assert.equal((await a.cache.get({ key: "short" })).ttlSeconds, ttl);
});

test("per-company quotas in Redis: counted atomically beside the values, the same answers as in memory", { skip }, async () => {
  const { a, c } = await quotaFlow(app);
  const sizes = `crm:cache:quota:${a.companyId}:sizes`;
  assert.deepEqual(Object.keys(await redis.hgetall(sizes)).sort(), ["k2", "k3", "k4", "k5"]);
  assert.equal(await redis.get(`crm:cache:quota:${a.companyId}:bytes`), "12");
  assert.deepEqual((await redis.zrange(`crm:cache:quota:${a.companyId}:expiries`, "0", "-1")).sort(), ["k2", "k3", "k4", "k5"]);
  assert.equal(await redis.get(`crm:cache:quota:${c.companyId}:bytes`), "2003");
  assert.ok((await redis.ttl(sizes)) > 290, "the bookkeeping expires with the values it counts");
  // Concurrent saves of one company never get past its quota.
  const e = await newCompany(app);
  const results = await Promise.allSettled(Array.from({ length: 20 }, (_, i) => e.cache.save({ key: `c${i}`, value: bytes("v"), ttlSeconds: 300 })));
  assert.equal(results.filter((r) => r.status === "fulfilled").length, 4);
  assert.equal((await redis.keys(`crm:cache:${e.companyId}:*`)).length, 4);
});

test("bad input: invalid_argument / resource_exhausted naming the field; Redis unchanged", { skip }, async () => {
  const a = await badInput(app);
  assert.deepEqual(await redis.keys(`crm:cache:${a.companyId}:*`), []);
});

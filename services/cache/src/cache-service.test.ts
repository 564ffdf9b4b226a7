/**
 * CacheService's handlers in memory: the service built by its factory, served through the kit's
 * interceptors, over the in-memory store the all-in-one uses (store.ts, on a test clock). The
 * store's own rules: store.test.ts; Redis and the whole app: ../test/cache-*.test.ts.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Code } from "@connectrpc/connect";
import { AppError, type Principal } from "@crm/kit";
import { CacheService } from "@crm/gen/crm/cache/v1/cache_pb";
import { expectError, inMemory } from "@crm/testkit";
import { cacheService } from "./cache-service.js";
import { memoryStore, type CacheStore } from "./store.js";

const bytes = (s: string) => new TextEncoder().encode(s);
const text = (b: Uint8Array) => new TextDecoder().decode(b);
const limits = { maxTtlSeconds: 3600, maxValueBytes: 1024 };

function setup(quota = { maxKeys: 100, maxBytes: 64 * 1024 }) {
  const clock = { now: Date.parse("2026-03-04T12:00:00.000Z") };
  const world = inMemory();
  const store = memoryStore({ maxBytes: 1 << 20, quota, now: () => clock.now });
  /** Set to make every store call fail as a store that lost its Redis would. */
  const failing: { err?: unknown } = {};
  const guarded: CacheStore = {
    save: (...a) => (failing.err ? Promise.reject(failing.err) : store.save(...a)),
    get: (...a) => (failing.err ? Promise.reject(failing.err) : store.get(...a)),
    delete: (...a) => (failing.err ? Promise.reject(failing.err) : store.delete(...a)),
    ready: () => store.ready(),
  };
  const api = world.serve((r) => r.service(CacheService, cacheService({ store: guarded, limits })));
  const a = world.user();
  const a2 = world.user({ companyId: a.companyId });
  const b = world.user();
  const cache = (p?: Principal) => world.client(CacheService, api, p ? { user: p } : {});
  return { clock, store, failing, a, a2, b, cache };
}

test("Save stores only when the key is absent; Get answers the value and the seconds left; Delete removes it", async () => {
  const s = setup();
  const c = s.cache(s.a);
  assert.equal((await c.save({ key: "greeting", value: bytes("hello"), ttlSeconds: 60 })).stored, true);
  assert.equal((await c.save({ key: "greeting", value: bytes("other"), ttlSeconds: 600 })).stored, false, "SET NX: the first value stays");
  s.clock.now += 10_500;
  const got = await c.get({ key: "greeting" });
  assert.deepEqual([text(got.value), got.ttlSeconds], ["hello", 50], "seconds left, rounded up");
  assert.equal((await c.delete({ key: "greeting" })).deleted, true);
  assert.equal((await c.delete({ key: "greeting" })).deleted, false);
  await expectError(c.get({ key: "greeting" }), Code.NotFound, { reason: "not_found", message: /never saved, has expired or was deleted/ });

  await c.save({ key: "short", value: new Uint8Array([0, 255]), ttlSeconds: 1 });
  assert.deepEqual([...(await c.get({ key: "short" })).value], [0, 255], "binary values round-trip");
  s.clock.now += 1_000;
  await expectError(c.get({ key: "short" }), Code.NotFound, { message: /has expired/ });
  assert.equal((await c.save({ key: "short", value: bytes("again"), ttlSeconds: 5 })).stored, true, "an expired key is absent");
});

test("keys live in the caller's company only: another company never sees, changes or deletes them", async () => {
  const s = setup();
  await s.cache(s.a).save({ key: "k", value: bytes("a's"), ttlSeconds: 60 });
  assert.equal(text((await s.cache(s.a2).get({ key: "k" })).value), "a's", "a colleague shares the company's keys");
  await expectError(s.cache(s.b).get({ key: "k" }), Code.NotFound);
  await expectError(s.cache(s.b).get({ key: `${s.a.companyId}:k` }), Code.NotFound);
  assert.equal((await s.cache(s.b).delete({ key: "k" })).deleted, false);
  assert.equal((await s.cache(s.b).save({ key: "k", value: bytes("b's"), ttlSeconds: 60 })).stored, true);
  assert.deepEqual([text((await s.cache(s.a).get({ key: "k" })).value), text((await s.cache(s.b).get({ key: "k" })).value)], ["a's", "b's"]);
  await expectError(s.cache().get({ key: "k" }), Code.Unauthenticated, { reason: "unauthenticated" });
});

test("bad keys and TTLs are invalid_argument naming every field; a value over the limit is too_large; nothing is stored", async () => {
  const s = setup();
  const c = s.cache(s.a);
  await expectError(c.save({ key: "", value: bytes("v"), ttlSeconds: 0 }), Code.InvalidArgument, { reason: "invalid_argument", fields: ["key", "ttlSeconds"] });
  await expectError(c.save({ key: "é".repeat(257), value: bytes("v"), ttlSeconds: 3601 }), Code.InvalidArgument, { fields: ["key", "ttlSeconds"], message: /514 bytes; at most 512.*at most 3600 seconds/ });
  await expectError(c.save({ key: "tab\there", value: bytes("v"), ttlSeconds: 5 }), Code.InvalidArgument, { fields: ["key"], message: /control character U\+0009/ });
  await expectError(c.get({ key: "" }), Code.InvalidArgument, { fields: ["key"] });
  await expectError(c.delete({ key: "x".repeat(513) }), Code.InvalidArgument, { fields: ["key"] });
  const big = await expectError(c.save({ key: "big", value: new Uint8Array(1025), ttlSeconds: 5 }), Code.ResourceExhausted, { reason: "too_large", fields: ["value"] });
  assert.match(big.rawMessage, /is 1025 bytes; at most 1024/);
  assert.equal(s.store.size, 0);
  assert.equal((await c.save({ key: "é".repeat(256), value: new Uint8Array(1024), ttlSeconds: 3600 })).stored, true, "exactly at the limits");
});

test("a company past its quota gets quota_exceeded and nothing changes; another company is not affected", async () => {
  const s = setup({ maxKeys: 2, maxBytes: 1024 });
  const c = s.cache(s.a);
  await c.save({ key: "one", value: bytes("1"), ttlSeconds: 60 });
  await c.save({ key: "two", value: bytes("2"), ttlSeconds: 60 });
  await expectError(c.save({ key: "three", value: bytes("3"), ttlSeconds: 60 }), Code.ResourceExhausted, { reason: "quota_exceeded", message: /quota of 2 keys/ });
  await expectError(c.get({ key: "three" }), Code.NotFound);
  assert.equal((await s.cache(s.b).save({ key: "three", value: bytes("3"), ttlSeconds: 60 })).stored, true);
  await c.delete({ key: "one" });
  assert.equal((await c.save({ key: "three", value: bytes("3"), ttlSeconds: 60 })).stored, true, "room again after a delete");
});

test("store failures reach the caller with their code; a store bug is internal and says nothing of it", async () => {
  const s = setup();
  s.failing.err = new AppError("unavailable", "the cache store (Redis) did not answer: connect ECONNREFUSED; try again shortly");
  await expectError(s.cache(s.a).get({ key: "k" }), Code.Unavailable, { reason: "unavailable", message: /did not answer/ });
  s.failing.err = new TypeError("Cannot read properties of null (reading 'evalsha')");
  const e = await expectError(s.cache(s.a).save({ key: "k", value: bytes("v"), ttlSeconds: 5 }), Code.Internal);
  assert.doesNotMatch(e.message, /evalsha/);
});

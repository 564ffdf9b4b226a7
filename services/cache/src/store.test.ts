/** The in-memory store (all-in-one without REDIS_URL) keeps Redis' semantics: NX, expiry, delete; per-tenant quotas; bounded memory without cross-tenant eviction. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { AppError } from "@crm/kit";
import { memoryStore } from "./store.js";
import { validateKey, validateSave } from "./validation.js";

const bytes = (s: string) => new TextEncoder().encode(s);
const text = (b: Uint8Array | undefined) => (b ? new TextDecoder().decode(b) : undefined);
const T = "tenant-a";
const roomy = { maxKeys: 1_000, maxBytes: 1 << 20 };

/** The reason of an AppError thrown by `p`, with its message. */
async function refused(p: Promise<unknown>): Promise<[string, string]> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof AppError, String(err));
    return [err.reason, err.message];
  }
  assert.fail("expected a refusal");
}

test("SET NX: the first value stays, with its TTL", async () => {
  let now = 1_000_000;
  const s = memoryStore({ maxBytes: 1 << 20, quota: roomy, now: () => now });
  assert.equal(await s.save(T, "k", bytes("one"), 10), true);
  now += 4_000;
  assert.equal(await s.save(T, "k", bytes("two"), 100), false);
  const hit = await s.get(T, "k");
  assert.equal(text(hit?.value), "one");
  assert.equal(hit?.ttlMs, 6_000);
});

test("expired keys are gone, and may be saved again", async () => {
  let now = 0;
  const s = memoryStore({ maxBytes: 1 << 20, quota: roomy, now: () => now });
  await s.save(T, "k", bytes("v"), 2);
  now = 1_999;
  assert.equal(text((await s.get(T, "k"))?.value), "v");
  now = 2_000;
  assert.equal(await s.get(T, "k"), undefined);
  assert.equal(await s.delete(T, "k"), false);
  assert.equal(await s.save(T, "k", bytes("w"), 2), true);
});

test("delete answers whether the key existed", async () => {
  const s = memoryStore({ maxBytes: 1 << 20 , quota: roomy});
  await s.save(T, "k", bytes("v"), 60);
  assert.equal(await s.delete(T, "k"), true);
  assert.equal(await s.delete(T, "k"), false);
  assert.equal(await s.get(T, "k"), undefined);
});

test("stored values are copies: the caller mutating its buffer changes nothing", async () => {
  const s = memoryStore({ maxBytes: 1 << 20 , quota: roomy});
  const v = bytes("abc");
  await s.save(T, "k", v, 60);
  v[0] = 0x7a;
  const got = await s.get(T, "k");
  got!.value[1] = 0x7a;
  assert.equal(text((await s.get(T, "k"))?.value), "abc");
});

test("a tenant over its key quota gets quota_exceeded; others are untouched; delete and expiry make room", async () => {
  let now = 0;
  const s = memoryStore({ maxBytes: 1 << 20, quota: { maxKeys: 3, maxBytes: 1 << 20 }, now: () => now });
  await s.save("B", "b1", bytes("theirs"), 100);
  for (const k of ["k1", "k2", "k3"]) assert.equal(await s.save(T, k, bytes("v"), k === "k1" ? 10 : 100), true);
  const [reason, message] = await refused(s.save(T, "k4", bytes("v"), 100));
  assert.equal(reason, "quota_exceeded");
  assert.match(message, /^cache quota of 3 keys \/ 1048576 bytes for your company is full \(in use: 3 keys, 9 bytes; this value needs 3\); delete keys or wait for TTLs$/);
  assert.equal(await s.get(T, "k4"), undefined, "nothing stored");
  assert.equal(await s.save("B", "b2", bytes("still fine"), 100), true, "another tenant is not limited by it");
  assert.equal(text((await s.get("B", "b1"))?.value), "theirs");
  assert.equal(await s.delete(T, "k2"), true);
  assert.equal(await s.save(T, "k4", bytes("v"), 100), true, "a delete made room");
  now = 10_000; // k1 expired
  assert.equal(await s.save(T, "k5", bytes("v"), 100), true, "an expired key made room");
});

test("a tenant over its byte quota (key + value bytes) gets quota_exceeded", async () => {
  const s = memoryStore({ maxBytes: 1 << 20, quota: { maxKeys: 100, maxBytes: 1_000 }, now: () => 0 });
  assert.equal(await s.save(T, "a", new Uint8Array(600), 100), true); // 601 bytes
  const [reason, message] = await refused(s.save(T, "b", new Uint8Array(399), 100)); // 400 more: 1,001
  assert.equal(reason, "quota_exceeded");
  assert.match(message, /1000 bytes for your company is full \(in use: 1 keys, 601 bytes; this value needs 400\)/);
  assert.equal(await s.save(T, "b", new Uint8Array(398), 100), true, "exactly the quota fits");
});

test("a full pool never evicts another tenant's keys: the saver's own oldest go, else quota_exceeded", async () => {
  let now = 0;
  const cost = 1000 + 2 + 64; // one-letter key, 1,000-byte value, overhead
  const s = memoryStore({ maxBytes: 3 * cost, quota: roomy, now: () => now });
  await s.save("B", "x", new Uint8Array(1000), 100);
  await s.save("B", "y", new Uint8Array(1000), 100);
  await s.save(T, "a", new Uint8Array(1000), 100);
  assert.equal(await s.save(T, "b", new Uint8Array(1000), 100), true, "A made room by evicting its own oldest key");
  assert.equal(await s.get(T, "a"), undefined);
  assert.ok(await s.get("B", "x"));
  assert.ok(await s.get("B", "y"));
  const [reason, message] = await refused(s.save("C", "c", new Uint8Array(1000), 100));
  assert.equal(reason, "quota_exceeded", "C has nothing of its own to evict");
  assert.match(message, /the cache of this server is full \(CACHE_MEMORY_MAX_BYTES=3198/);
  assert.ok(await s.get("B", "x"), "B's keys are untouched");
  assert.ok(await s.get(T, "b"), "A's key is untouched");
  now = 100_000; // everything expired
  assert.equal(await s.save("C", "c", new Uint8Array(1000), 100), true, "expired keys are dropped first");
  assert.ok(s.bytes <= 3 * cost);
});

test("validation: key 1..512 bytes without control characters; ttl required and capped; value bounded", () => {
  const limits = { maxTtlSeconds: 3600, maxValueBytes: 10 };
  const fields = (fn: () => unknown) => {
    try {
      fn();
    } catch (err) {
      assert.ok(err instanceof AppError);
      return [err.reason, ...err.violations.map((v) => v.field)];
    }
    return [];
  };
  assert.deepEqual(fields(() => validateSave({ key: "", value: new Uint8Array(), ttlSeconds: 0 }, limits)), ["invalid_argument", "key", "ttlSeconds"]);
  assert.deepEqual(fields(() => validateSave({ key: "k", value: new Uint8Array(), ttlSeconds: 3601 }, limits)), ["invalid_argument", "ttlSeconds"]);
  assert.deepEqual(fields(() => validateSave({ key: "k", value: new Uint8Array(11), ttlSeconds: 1 }, limits)), ["too_large", "value"]);
  assert.deepEqual(fields(() => validateKey("x".repeat(513))), ["invalid_argument", "key"]);
  assert.deepEqual(fields(() => validateKey("я".repeat(257))), ["invalid_argument", "key"], "bytes, not characters");
  assert.deepEqual(fields(() => validateKey("a\nb")), ["invalid_argument", "key"]);
  assert.deepEqual(fields(() => validateKey("a\u0000b")), ["invalid_argument", "key"]);
  assert.deepEqual(fields(() => validateKey("\uD800x")), ["invalid_argument", "key"]);
  assert.deepEqual(fields(() => validateKey("user:42:profile é 😀")), []);
  assert.deepEqual(fields(() => validateKey("я".repeat(256))), []);
});

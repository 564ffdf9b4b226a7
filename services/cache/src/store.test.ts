/** The in-memory store (all-in-one without REDIS_URL) keeps Redis' semantics: NX, expiry, delete; bounded memory. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { AppError } from "@crm/kit";
import { memoryStore } from "./store.js";
import { validateKey, validateSave } from "./validation.js";

const bytes = (s: string) => new TextEncoder().encode(s);
const text = (b: Uint8Array | undefined) => (b ? new TextDecoder().decode(b) : undefined);

test("SET NX: the first value stays, with its TTL", async () => {
  let now = 1_000_000;
  const s = memoryStore({ maxBytes: 1 << 20, now: () => now });
  assert.equal(await s.save("k", bytes("one"), 10), true);
  now += 4_000;
  assert.equal(await s.save("k", bytes("two"), 100), false);
  const hit = await s.get("k");
  assert.equal(text(hit?.value), "one");
  assert.equal(hit?.ttlMs, 6_000);
});

test("expired keys are gone, and may be saved again", async () => {
  let now = 0;
  const s = memoryStore({ maxBytes: 1 << 20, now: () => now });
  await s.save("k", bytes("v"), 2);
  now = 1_999;
  assert.equal(text((await s.get("k"))?.value), "v");
  now = 2_000;
  assert.equal(await s.get("k"), undefined);
  assert.equal(await s.delete("k"), false);
  assert.equal(await s.save("k", bytes("w"), 2), true);
});

test("delete answers whether the key existed", async () => {
  const s = memoryStore({ maxBytes: 1 << 20 });
  await s.save("k", bytes("v"), 60);
  assert.equal(await s.delete("k"), true);
  assert.equal(await s.delete("k"), false);
  assert.equal(await s.get("k"), undefined);
});

test("stored values are copies: the caller mutating its buffer changes nothing", async () => {
  const s = memoryStore({ maxBytes: 1 << 20 });
  const v = bytes("abc");
  await s.save("k", v, 60);
  v[0] = 0x7a;
  const got = await s.get("k");
  got!.value[1] = 0x7a;
  assert.equal(text((await s.get("k"))?.value), "abc");
});

test("past maxBytes, expired keys go first, then the oldest", async () => {
  let now = 0;
  const s = memoryStore({ maxBytes: 3 * (1000 + 64 + 2) + 10, now: () => now });
  await s.save("a", new Uint8Array(1000), 1);
  await s.save("b", new Uint8Array(1000), 100);
  await s.save("c", new Uint8Array(1000), 100);
  now = 1_000; // a expired
  await s.save("d", new Uint8Array(1000), 100);
  assert.deepEqual([!!(await s.get("b")), !!(await s.get("c")), !!(await s.get("d"))], [true, true, true]);
  await s.save("e", new Uint8Array(1000), 100); // evicts b, the oldest
  assert.equal(await s.get("b"), undefined);
  assert.ok(s.bytes <= 3 * 1066 + 10);
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

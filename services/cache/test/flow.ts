/** Cache behaviour shared by the Redis and the in-memory runs, through the all-in-one app. */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";
import { AuthService } from "@crm/gen/crm/auth/v1/auth_pb";
import { CacheService } from "@crm/gen/crm/cache/v1/cache_pb";
import { freshDatabase, postgresUp, until, type TestApp } from "@crm/testkit";
import { startTestApp } from "@crm/all/test-app";

/** The all-in-one app: on the local PostgreSQL when it runs (fast), else embedded PGlite. */
export async function startApp(env: Record<string, string> = {}): Promise<TestApp> {
  const db = (await postgresUp()) ? await freshDatabase() : undefined;
  const app = await startTestApp({ ...env, ...(db ? { DATABASE_URL: db.url } : {}) });
  const close = app.close.bind(app);
  app.close = async () => {
    await close();
    await db?.drop();
  };
  return app;
}

export async function newCompany(app: TestApp) {
  const tag = randomBytes(4).toString("hex");
  const r = await app.client(AuthService).registerCompany({ companyName: `Cache ${tag}`, email: `cache-${tag}@example.com`, password: "correct horse battery", ownerName: "Owner" });
  return { token: r.accessToken, companyId: r.companyId, cache: app.client(CacheService, { token: r.accessToken }) };
}

export const bytes = (s: string) => new TextEncoder().encode(s);
export const text = (b: Uint8Array) => new TextDecoder().decode(b);

export async function expectCode(p: Promise<unknown>, code: Code, re?: RegExp) {
  await assert.rejects(p, (err) => {
    assert.ok(err instanceof ConnectError, String(err));
    assert.equal(err.code, code, `${Code[err.code]}: ${err.message}`);
    if (re) assert.match(err.message, re);
    return true;
  });
}

/** SET NX, Get, Delete and tenant isolation. */
export async function basicFlow(app: TestApp) {
  const a = await newCompany(app);
  const b = await newCompany(app);
  assert.equal((await a.cache.save({ key: "greeting", value: bytes("hello"), ttlSeconds: 60 })).stored, true);
  assert.equal((await a.cache.save({ key: "greeting", value: bytes("other"), ttlSeconds: 600 })).stored, false, "SET NX: the key exists");
  const got = await a.cache.get({ key: "greeting" });
  assert.equal(text(got.value), "hello");
  assert.ok(got.ttlSeconds > 0 && got.ttlSeconds <= 60, `ttl ${got.ttlSeconds}`);

  // Another company sees nothing, and its own key of the same name is separate.
  await expectCode(b.cache.get({ key: "greeting" }), Code.NotFound, /never saved, has expired or was deleted/);
  await expectCode(b.cache.get({ key: `${a.companyId}:greeting` }), Code.NotFound);
  assert.equal((await b.cache.delete({ key: "greeting" })).deleted, false);
  assert.equal((await b.cache.save({ key: "greeting", value: bytes("bonjour"), ttlSeconds: 60 })).stored, true);
  assert.equal(text((await a.cache.get({ key: "greeting" })).value), "hello");
  assert.equal(text((await b.cache.get({ key: "greeting" })).value), "bonjour");

  // Binary values round-trip, over gRPC too.
  const binary = new Uint8Array(256).map((_, i) => i);
  const grpc = app.client(CacheService, { token: a.token, protocol: "grpc" });
  await grpc.save({ key: "bin", value: binary, ttlSeconds: 60 });
  assert.deepEqual((await grpc.get({ key: "bin" })).value, binary);

  assert.equal((await a.cache.delete({ key: "greeting" })).deleted, true);
  assert.equal((await a.cache.delete({ key: "greeting" })).deleted, false);
  await expectCode(a.cache.get({ key: "greeting" }), Code.NotFound);
  assert.equal(text((await b.cache.get({ key: "greeting" })).value), "bonjour", "b's key survives a's delete");
  return { a, b };
}

/** Bad input: a clear error naming the field; returns after checking nothing was stored via `get`. */
export async function badInput(app: TestApp) {
  const a = await newCompany(app);
  await expectCode(a.cache.save({ key: "", value: bytes("v"), ttlSeconds: 0 }), Code.InvalidArgument, /key: is required.*ttlSeconds: is required/);
  await expectCode(a.cache.save({ key: "x".repeat(513), value: bytes("v"), ttlSeconds: 1 }), Code.InvalidArgument, /key: is 513 bytes/);
  await expectCode(a.cache.save({ key: "line\nbreak", value: bytes("v"), ttlSeconds: 1 }), Code.InvalidArgument, /control characters/);
  await expectCode(a.cache.save({ key: "k", value: bytes("v"), ttlSeconds: 2_592_001 }), Code.InvalidArgument, /ttlSeconds: is 2592001; at most 2592000/);
  await expectCode(a.cache.save({ key: "k", value: bytes("v"), ttlSeconds: -5 }), Code.InvalidArgument, /ttlSeconds/);
  await expectCode(a.cache.save({ key: "big", value: new Uint8Array(1024 * 1024 + 1), ttlSeconds: 1 }), Code.ResourceExhausted, /value: is 1048577 bytes/);
  await expectCode(a.cache.get({ key: "" }), Code.InvalidArgument, /key/);
  await expectCode(a.cache.delete({ key: "a\tb" }), Code.InvalidArgument, /key/);
  await expectCode(app.client(CacheService).get({ key: "k" }), Code.Unauthenticated, /access token/);
  for (const key of ["k", "big", "x".repeat(513)].filter((k) => k.length <= 512)) await expectCode(a.cache.get({ key }), Code.NotFound);
  return a;
}

/** Small per-company quotas for the test apps (basicFlow and badInput stay well under them). */
export const quotaEnv = { CACHE_TENANT_MAX_KEYS: "4", CACHE_TENANT_MAX_BYTES: "2048" };

async function expectQuota(p: Promise<unknown>, re: RegExp) {
  await assert.rejects(p, (err) => {
    assert.ok(err instanceof ConnectError, String(err));
    assert.equal(err.code, Code.ResourceExhausted, `${Code[err.code]}: ${err.message}`);
    assert.equal(err.metadata.get("crm-error"), "quota_exceeded");
    assert.match(err.message, re);
    return true;
  });
}

/**
 * Quotas per company (quotaEnv): past its keys or bytes a company's Save is resource_exhausted
 * and stores nothing; another company is not affected and loses nothing; delete and expiry make room.
 */
export async function quotaFlow(app: TestApp) {
  const a = await newCompany(app);
  const b = await newCompany(app);
  for (const k of ["k1", "k2", "k3", "k4"]) assert.equal((await a.cache.save({ key: k, value: bytes("v"), ttlSeconds: 300 })).stored, true);
  await expectQuota(a.cache.save({ key: "k5", value: bytes("v"), ttlSeconds: 300 }), /^\[resource_exhausted\] cache quota of 4 keys \/ 2048 bytes for your company is full \(in use: 4 keys, 12 bytes; this value needs 3\); delete keys or wait for TTLs$/);
  await expectCode(a.cache.get({ key: "k5" }), Code.NotFound);
  assert.equal((await a.cache.save({ key: "k1", value: bytes("other"), ttlSeconds: 300 })).stored, false, "an existing key is still just not stored");

  for (const k of ["k1", "k2", "k3", "k4"]) assert.equal((await b.cache.save({ key: k, value: bytes("b"), ttlSeconds: 300 })).stored, true, "b has its own quota");
  for (const k of ["k1", "k2", "k3", "k4"]) assert.equal(text((await a.cache.get({ key: k })).value), "v", "a lost nothing");

  assert.equal((await a.cache.delete({ key: "k1" })).deleted, true);
  assert.equal((await a.cache.save({ key: "k5", value: bytes("v"), ttlSeconds: 300 })).stored, true, "a delete made room");

  const c = await newCompany(app);
  assert.equal((await c.cache.save({ key: "big", value: new Uint8Array(2000), ttlSeconds: 300 })).stored, true); // 2,003 bytes
  await expectQuota(c.cache.save({ key: "more", value: new Uint8Array(100), ttlSeconds: 300 }), /2048 bytes for your company is full \(in use: 1 keys, 2003 bytes; this value needs 104\)/);

  const d = await newCompany(app);
  for (const k of ["t1", "t2", "t3", "t4"]) await d.cache.save({ key: k, value: bytes("v"), ttlSeconds: 1 });
  await expectQuota(d.cache.save({ key: "t5", value: bytes("v"), ttlSeconds: 300 }), /4 keys/);
  await until("the short TTLs to run out", async () => {
    try {
      await d.cache.get({ key: "t4" });
      return false;
    } catch {
      return true;
    }
  }, 5_000);
  for (const k of ["n1", "n2", "n3", "n4"]) assert.equal((await d.cache.save({ key: k, value: bytes("v"), ttlSeconds: 300 })).stored, true, "expired keys made room");
  return { a, b, c, d };
}

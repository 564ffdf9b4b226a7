/** Auth end to end on the real PostgreSQL (and Redis for revocations and throttling). */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, test } from "node:test";
import { Code } from "@connectrpc/connect";
import pg from "pg";
import { AuthService } from "@crm/gen/crm/auth/v1/auth_pb";
import { TEST_REDIS_URL, freshDatabase, installHint, need, postgresUp, redisUp, type TestApp, type TestDatabase } from "@crm/testkit";
import { startTestApp } from "@crm/all/test-app";
import { badRegistrations, expectCode, fullFlow, owner } from "./flow.js";

const skip = need("PostgreSQL", await postgresUp(), installHint.postgres) || need("Redis", await redisUp(), installHint.redis);

let db: TestDatabase;
let app: TestApp;
before(async () => {
  if (skip) return;
  db = await freshDatabase();
  app = await startTestApp({ DATABASE_URL: db.url, REDIS_URL: TEST_REDIS_URL });
});
after(async () => {
  await app?.close();
  await db?.drop();
});

const count = async (table: string) => {
  const c = new pg.Client({ connectionString: db.url });
  await c.connect();
  try {
    return Number((await c.query(`SELECT count(*) FROM ${table}`)).rows[0].count);
  } finally {
    await c.end();
  }
};

test("register → login → refresh → reuse revokes the family → check → logout", { skip }, async () => {
  await fullFlow(app, `pg${Date.now() % 10000}`);
});

test("20 bad registrations: invalid_argument naming the field, nothing stored", { skip }, async () => {
  const auth = app.client(AuthService);
  const before = [await count("companies"), await count("users"), await count("sessions")];
  for (const [field, patch] of badRegistrations) {
    await expectCode(auth.registerCompany({ ...owner(`bad${field}`), ...patch }), Code.InvalidArgument, new RegExp(`${field}: `));
  }
  assert.deepEqual([await count("companies"), await count("users"), await count("sessions")], before);
});

test("row-level security: tenant A cannot read tenant B's users even without a company filter", { skip }, async () => {
  const auth = app.client(AuthService);
  const a = await auth.registerCompany(owner("rls-a"));
  const b = await auth.registerCompany(owner("rls-b"));
  const c = new pg.Client({ connectionString: db.url });
  await c.connect();
  try {
    // Exactly what dbservice does per request (db.ts), then a query that forgets WHERE company_id.
    await c.query(`BEGIN; SET LOCAL ROLE crm_app; SELECT set_config('app.company_id', '${a.companyId}', true)`);
    const users = await c.query("SELECT id, company_id FROM users");
    assert.deepEqual(users.rows.map((r) => r.id), [a.userId]);
    assert.equal((await c.query("SELECT count(*) FROM sessions WHERE company_id = $1", [b.companyId])).rows[0].count, "0");
    assert.equal((await c.query("SELECT count(*) FROM companies")).rows[0].count, "1");
    // Writing into another tenant is refused too.
    await assert.rejects(c.query("UPDATE users SET name = 'x' WHERE id = $1 RETURNING id", [b.userId]).then((r) => assert.equal(r.rowCount, 0)).then(() => c.query("INSERT INTO companies (id, name) VALUES ($1, 'evil')", [b.companyId])), /row-level security/);
    await c.query("ROLLBACK");
    // With no tenant set, the app role sees nothing at all.
    await c.query(`BEGIN; SET LOCAL ROLE crm_app`);
    assert.equal((await c.query("SELECT count(*) FROM users")).rows[0].count, "0");
    await c.query("ROLLBACK");
  } finally {
    await c.end();
  }
});

test("migrations are idempotent and safe when two replicas start at once", { skip }, async () => {
  const { migrate } = await import("@crm/dbservice/migrate");
  const { createLogger } = await import("@crm/kit");
  const pools = [0, 1].map(() => new pg.Pool({ connectionString: db.url, max: 1 }));
  try {
    const runs = await Promise.all(pools.map((p) => migrate(p, createLogger("test", "silent"))));
    assert.deepEqual(runs, [[], []], "already migrated by the app: nothing runs twice");
  } finally {
    await Promise.all(pools.map((p) => p.end()));
  }
  const fresh = await freshDatabase();
  const pools2 = [0, 1, 2].map(() => new pg.Pool({ connectionString: fresh.url, max: 1 }));
  try {
    const runs = await Promise.all(pools2.map((p) => migrate(p, createLogger("test", "silent"))));
    assert.equal(runs.flat().length, runs.find((r) => r.length)!.length, "each migration ran exactly once across replicas");
  } finally {
    await Promise.all(pools2.map((p) => p.end()));
    await fresh.drop();
  }
});

test("login failures are throttled per account and address", { skip }, async () => {
  const auth = app.client(AuthService);
  const who = owner(`throttle-${randomUUID()}`); // counters live in the shared Redis: a fresh account per run
  await auth.registerCompany(who);
  for (let i = 0; i < 10; i++) await expectCode(auth.login({ email: who.email, password: "wrong wrong wrong" }), Code.Unauthenticated);
  await expectCode(auth.login({ email: who.email, password: who.password }), Code.ResourceExhausted, /too many failed logins/);
});

/** The forgotten-timer job as several replicas run it: each timer stopped once, each user's cache entry invalidated. */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, test } from "node:test";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import pg from "pg";
import { createLogger, newInternalIdentity, inProcessPeer, type TokenVerifier } from "@crm/kit";
import { DbTimerService } from "@crm/gen/crm/db/v1/db_timer_pb";
import { createDb } from "@crm/dbservice/db";
import { migrate } from "@crm/dbservice/migrate";
import { createDbModule } from "@crm/dbservice/module";
import { freshDatabase, installHint, need, postgresUp, type TestDatabase } from "@crm/testkit";
import type { RunningCache } from "../src/running-cache.js";
import { createSweeper } from "../src/sweeper.js";

const skip = need("PostgreSQL", await postgresUp(), installHint.postgres);
const log = createLogger("sweeper-test", "silent");
const noTokens: TokenVerifier = { verify: async () => Promise.reject(new Error("no user tokens in this test")) };
let db: TestDatabase;
let admin: pg.Pool;

before(async () => {
  if (skip) return;
  db = await freshDatabase();
  admin = new pg.Pool({ connectionString: db.url, max: 2 });
  await migrate(admin, log);
});
after(async () => {
  await admin?.end();
  await db?.drop();
});

/** One replica: its own pool, its own dbservice module, the timers service's identity. */
function replica(identity = "timers") {
  const pool = new pg.Pool({ connectionString: db.url, max: 2 });
  const dbModule = createDbModule({ db: createDb(pool) });
  return { client: createClient(DbTimerService, inProcessPeer(identity, dbModule, { log, verifier: noTokens, internal: newInternalIdentity() })), close: () => pool.end() };
}

test("three replicas sweep at once: 30 forgotten timers stopped once each at start + 12 h, every user invalidated", { skip }, async () => {
  const company = randomUUID();
  await admin.query("INSERT INTO companies (id, name) VALUES ($1, 'Sweep')", [company]);
  const users: string[] = [];
  for (let i = 0; i < 31; i++) {
    const { rows } = await admin.query<{ id: string }>("INSERT INTO users (company_id, email, name, role) VALUES ($1, $2, 'U', 'member') RETURNING id", [company, `${randomUUID()}@example.com`]);
    users.push(rows[0]!.id);
    const age = i === 30 ? "11 hours" : `${13 + i} hours`; // the last one is not overdue
    await admin.query(`INSERT INTO timers (company_id, user_id, start_time) VALUES ($1, $2, now() - interval '${age}')`, [company, rows[0]!.id]);
  }
  const invalidated: string[] = [];
  const cache: RunningCache = { lookup: async () => ({ hit: false, fill: () => {} }), invalidate: async (u) => void invalidated.push(u), invalidateAll: async () => {} };
  const replicas = [0, 1, 2].map(() => replica());
  try {
    const sweepers = replicas.map((r) => createSweeper({ db: r.client, cache, log, maxRunningMs: 12 * 3_600_000, intervalMs: 60_000, batch: 4 }));
    const counts = await Promise.all(sweepers.map((s) => s.runOnce()));
    assert.equal(counts.reduce((a, b) => a + b, 0), 30, `stopped per replica: ${counts}`);
    assert.deepEqual(new Set(invalidated), new Set(users.slice(0, 30)));
    assert.equal(invalidated.length, 30);
    assert.deepEqual(await Promise.all(sweepers.map((s) => s.runOnce())), [0, 0, 0], "a second pass finds nothing");
  } finally {
    await Promise.all(replicas.map((r) => r.close()));
  }
  const { rows } = await admin.query<{ stopped: string; running: string }>(
    `SELECT count(*) FILTER (WHERE end_time = start_time + interval '12 hours' AND auto_stopped) AS stopped,
            count(*) FILTER (WHERE end_time IS NULL) AS running FROM timers WHERE company_id = $1`,
    [company],
  );
  assert.deepEqual(rows[0], { stopped: "30", running: "1" });
});

test("StopForgottenTimersDB is refused to anyone but the timers service, and checks its arguments", { skip }, async () => {
  const chats = replica("chats");
  const timers = replica();
  try {
    await assert.rejects(chats.client.stopForgottenTimersDB({ maxRunning: { seconds: 43_200n, nanos: 0 } }), (e) => ConnectError.from(e).code === Code.PermissionDenied);
    await assert.rejects(timers.client.stopForgottenTimersDB({ maxRunning: { seconds: 60n, nanos: 0 } }), (e) => ConnectError.from(e).code === Code.InvalidArgument && /maxRunning/.test(String(e)));
    await assert.rejects(timers.client.stopForgottenTimersDB({ maxRunning: { seconds: 43_200n, nanos: 0 }, limit: 20_000 }), (e) => ConnectError.from(e).code === Code.InvalidArgument);
  } finally {
    await chats.close();
    await timers.close();
  }
});

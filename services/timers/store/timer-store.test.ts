/**
 * The timers schema on the real PostgreSQL, below the service: the invariants hold even for SQL
 * that skips the store's checks, and the forgotten-timer function is safe on several replicas.
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, test } from "node:test";
import pg from "pg";
import { installHint, need, postgresUp } from "@crm/testkit";
import { migratedDatabase, type MigratedDatabase } from "../../dbservice/test/helpers.js";

const skip = need("PostgreSQL", await postgresUp(), installHint.postgres);

let m: MigratedDatabase;
let pool: pg.Pool;
const companyId = randomUUID();
before(async () => {
  if (skip) return;
  m = await migratedDatabase();
  pool = m.pool;
  await pool.query("INSERT INTO companies (id, name) VALUES ($1, 'Schema test')", [companyId]);
});
after(async () => {
  await m?.drop();
});

async function newUser(): Promise<string> {
  const { rows } = await pool.query<{ id: string }>("INSERT INTO users (company_id, email, name, role) VALUES ($1, $2, 'U', 'member') RETURNING id", [companyId, `${randomUUID()}@example.com`]);
  return rows[0]!.id;
}

/** Runs fn as the app role in our tenant, in a transaction that is rolled back. */
async function asApp<T>(fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
  const c = await pool.connect();
  try {
    await c.query(`BEGIN; SET LOCAL ROLE crm_app; SELECT set_config('app.company_id', '${companyId}', true)`);
    return await fn(c);
  } finally {
    await c.query("ROLLBACK");
    c.release();
  }
}

const insert = (c: pg.PoolClient, user: string, start: string, end: string | null) =>
  c.query("INSERT INTO timers (company_id, user_id, start_time, end_time) VALUES ($1, $2, $3, $4)", [companyId, user, start, end]);

const code = (p: Promise<unknown>) => p.then(() => "ok", (e: { code?: string; constraint?: string }) => `${e.code} ${e.constraint ?? ""}`.trim());

test("schema: half-open ranges may touch, overlaps are refused by the exclusion constraint (btree_gist)", { skip }, async () => {
  const u = await newUser();
  const other = await newUser();
  await asApp(async (c) => {
    await insert(c, u, "2024-01-01T10:00Z", "2024-01-01T11:00Z");
    assert.equal(await code(insert(c, u, "2024-01-01T11:00Z", "2024-01-01T12:00Z")), "ok", "ends at 11:00, next starts at 11:00");
    assert.equal(await code(insert(c, u, "2024-01-01T09:00Z", "2024-01-01T10:00Z")), "ok");
    await c.query("SAVEPOINT s");
    assert.equal(await code(insert(c, u, "2024-01-01T10:30Z", "2024-01-01T10:31Z")), "23P01 timers_no_overlap");
    await c.query("ROLLBACK TO SAVEPOINT s");
    assert.equal(await code(insert(c, other, "2024-01-01T10:30Z", "2024-01-01T10:31Z")), "ok", "other users are independent");
  });
});

test("schema: one running timer per user (partial unique index); the running one blocks later entries", { skip }, async () => {
  const u = await newUser();
  await asApp(async (c) => {
    await insert(c, u, "2024-01-01T10:00Z", null);
    await c.query("SAVEPOINT s");
    // Far earlier, so only the unique index can refuse it.
    assert.equal(await code(insert(c, u, "2023-01-01T10:00Z", null)), "23505 timers_one_running");
    await c.query("ROLLBACK TO SAVEPOINT s");
    assert.equal(await code(insert(c, u, "2024-01-02T10:00Z", "2024-01-02T11:00Z")), "23P01 timers_no_overlap", "running = [start, ∞)");
    await c.query("ROLLBACK TO SAVEPOINT s");
    assert.equal(await code(insert(c, u, "2024-01-01T09:00Z", "2024-01-01T10:00Z")), "ok");
  });
});

test("schema: end must be after start; descriptions at most 1000 characters", { skip }, async () => {
  const u = await newUser();
  await asApp(async (c) => {
    await c.query("SAVEPOINT s");
    assert.equal(await code(insert(c, u, "2024-01-01T10:00Z", "2024-01-01T10:00Z")), "23514 timers_end_after_start");
    await c.query("ROLLBACK TO SAVEPOINT s");
    assert.equal(await code(c.query("INSERT INTO timers (company_id, user_id, start_time, description) VALUES ($1, $2, now(), repeat('x', 1001))", [companyId, u])), "23514 timers_description_check");
  });
});

test("crm_stop_forgotten_timers: replicas skip a batch another holds; each overdue timer stopped once, at start + max", { skip }, async () => {
  const overdue: string[] = [];
  for (let i = 0; i < 40; i++) {
    const u = await newUser();
    const { rows } = await pool.query<{ id: string }>("INSERT INTO timers (company_id, user_id, start_time) VALUES ($1, $2, now() - interval '13 hours' - $3 * interval '1 minute') RETURNING id", [companyId, u, i]);
    overdue.push(rows[0]!.id);
  }
  const young = await newUser();
  const { rows: y } = await pool.query<{ id: string }>("INSERT INTO timers (company_id, user_id, start_time) VALUES ($1, $2, now() - interval '11 hours') RETURNING id", [companyId, young]);

  const replicas = [0, 1, 2, 3].map(() => new pg.Pool({ connectionString: m.tdb.url, max: 1 }));
  // Exactly as dbservice's db.system(): the app role, no tenant. A lock_timeout turns "waited on
  // another replica" into an error instead of a hang.
  const begin = "BEGIN; SET LOCAL ROLE crm_app; SET LOCAL lock_timeout = '5s'; SELECT set_config('app.company_id', '', true)";
  const claim = "SELECT id FROM crm_stop_forgotten_timers(interval '12 hours', 3)";
  const holder = await replicas[0]!.connect();
  try {
    // One replica has claimed a batch and not committed yet: the others must neither wait for it
    // nor take its timers — the deterministic form of "the work is shared".
    await holder.query(begin);
    const held = (await holder.query<{ id: string }>(claim)).rows.map((r) => r.id);
    assert.equal(held.length, 3);
    const sweep = async (p: pg.Pool) => {
      const mine: string[] = [];
      for (;;) {
        const c = await p.connect();
        try {
          await c.query(begin);
          const { rows } = await c.query<{ id: string }>(claim);
          await c.query("COMMIT");
          mine.push(...rows.map((r) => r.id));
          if (rows.length < 3) return mine;
        } finally {
          c.release();
        }
      }
    };
    const results = await Promise.all(replicas.slice(1).map(sweep));
    const others = results.flat();
    assert.deepEqual(others.filter((id) => held.includes(id)), [], "no replica took a held timer");
    await holder.query("COMMIT");
    const all = [...held, ...others];
    assert.equal(all.length, overdue.length, "no timer stopped twice");
    assert.deepEqual(new Set(all), new Set(overdue));
  } finally {
    holder.release();
    await Promise.all(replicas.map((p) => p.end()));
  }
  const { rows } = await pool.query<{ n: string }>("SELECT count(*) AS n FROM timers WHERE id = ANY($1) AND end_time = start_time + interval '12 hours' AND auto_stopped", [overdue]);
  assert.equal(rows[0]!.n, "40");
  const { rows: still } = await pool.query("SELECT 1 FROM timers WHERE id = $1 AND end_time IS NULL", [y[0]!.id]);
  assert.equal(still.length, 1, "a timer under the maximum keeps running");
});

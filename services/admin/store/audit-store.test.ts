/**
 * The audit log's table on the real PostgreSQL, below the service: the application role can only
 * append and read its tenant's rows (an UPDATE, DELETE or TRUNCATE by it fails), every event goes
 * to the outbox in the same transaction, and only the retention job's role deletes old rows.
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, test } from "node:test";
import pg from "pg";
import { fromBinary } from "@bufbuild/protobuf";
import { AuditEventSchema } from "@crm/gen/crm/admin/v1/audit_pb";
import { AUDIT_QUEUE } from "@crm/contracts";
import { installHint, need, postgresUp } from "@crm/testkit";
import { migratedDatabase, type MigratedDatabase } from "../../dbservice/test/helpers.js";
import { auditLog, purgeAuditEvents } from "./audit-store.js";

const skip = need("PostgreSQL", await postgresUp(), installHint.postgres);

let m: MigratedDatabase;
let pool: pg.Pool;
const companyA = randomUUID();
const companyB = randomUUID();
let userA: string;

before(async () => {
  if (skip) return;
  m = await migratedDatabase();
  pool = m.pool;
  for (const id of [companyA, companyB]) await pool.query("INSERT INTO companies (id, name) VALUES ($1, 'Audit test')", [id]);
  userA = (await pool.query<{ id: string }>("INSERT INTO users (company_id, email, name, role) VALUES ($1, $2, 'Alice Admin', 'admin') RETURNING id", [companyA, `${randomUUID()}@example.com`])).rows[0]!.id;
});
after(async () => {
  await m?.drop();
});

/** Runs fn as the app role in `companyId`, as dbservice does (db.ts); committed unless fn throws. */
async function asApp<T>(companyId: string, fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
  return m.db.tenant(companyId, fn);
}

const code = (p: Promise<unknown>) => p.then(() => "ok", (e: { code?: string }) => e.code ?? String(e));

test("crm_app appends and reads its tenant's events; UPDATE, DELETE and TRUNCATE by it fail", { skip }, async () => {
  const audit = auditLog(m.db);
  await asApp(companyA, (sql) => audit.record(sql, [{ action: "auth.login", actor: { type: "user", id: userA, name: "", userId: userA }, target: { type: "session", id: randomUUID() }, ip: "192.0.2.1" }]));
  const rows = await asApp(companyA, async (sql) => (await sql.query<{ actor_name: string; user_id: string }>("SELECT actor_name, user_id FROM audit_events")).rows);
  assert.deepEqual(rows, [{ actor_name: "Alice Admin", user_id: userA }], "a user's name is looked up when written");
  assert.equal(await code(asApp(companyA, (sql) => sql.query("UPDATE audit_events SET action = 'auth.logout'"))), "42501", "UPDATE: permission denied");
  assert.equal(await code(asApp(companyA, (sql) => sql.query("DELETE FROM audit_events"))), "42501", "DELETE: permission denied");
  assert.equal(await code(asApp(companyA, (sql) => sql.query("TRUNCATE audit_events"))), "42501", "TRUNCATE: permission denied");
  // Another tenant sees nothing of it and cannot write into it.
  assert.equal((await asApp(companyB, (sql) => sql.query("SELECT * FROM audit_events"))).rowCount, 0);
  assert.equal(
    await code(asApp(companyB, (sql) => sql.query("INSERT INTO audit_events (company_id, action, actor_type) VALUES ($1, 'auth.login', 'system')", [companyA]))),
    "42501",
    "row-level security: not into another company",
  );
  assert.equal(Number((await pool.query("SELECT count(*) FROM audit_events")).rows[0].count), 1, "nothing changed");
});

test("each event goes to the outbox in the same transaction, or neither is written", { skip }, async () => {
  const audit = auditLog(m.db);
  const before = Number((await pool.query("SELECT count(*) FROM outbox WHERE routing_key = $1", [AUDIT_QUEUE])).rows[0].count);
  await asApp(companyA, (sql) =>
    audit.record(sql, [
      { action: "api_key.created", actor: { type: "user", id: userA, name: "", userId: userA }, target: { type: "api_key", id: randomUUID() }, details: { scopes: "deals:read" } },
      { action: "api_key.used", actor: { type: "api_key", id: randomUUID(), name: "API key ci", userId: userA } },
    ]),
  );
  const { rows } = await pool.query<{ payload: Buffer; message_id: string; exchange: string; company_id: string }>(
    "SELECT payload, message_id, exchange, company_id FROM outbox WHERE routing_key = $1 ORDER BY id",
    [AUDIT_QUEUE],
  );
  assert.equal(rows.length, before + 2);
  const [created, used] = rows.slice(-2).map((r) => ({ ...r, event: fromBinary(AuditEventSchema, r.payload) }));
  assert.deepEqual([created!.exchange, created!.company_id, created!.message_id], ["", companyA, created!.event.eventId]);
  assert.deepEqual([created!.event.action, created!.event.actorName, created!.event.details], ["api_key.created", "Alice Admin", { scopes: "deals:read" }]);
  assert.deepEqual([used!.event.action, used!.event.actorName, used!.event.userId], ["api_key.used", "API key ci", userA]);

  const events = Number((await pool.query("SELECT count(*) FROM audit_events")).rows[0].count);
  const outbox = Number((await pool.query("SELECT count(*) FROM outbox")).rows[0].count);
  await assert.rejects(
    asApp(companyA, async (sql) => {
      await audit.record(sql, [{ action: "auth.logout", actor: { type: "user", id: userA, name: "", userId: userA } }]);
      throw new Error("the action failed after its audit row");
    }),
  );
  assert.equal(Number((await pool.query("SELECT count(*) FROM audit_events")).rows[0].count), events);
  assert.equal(Number((await pool.query("SELECT count(*) FROM outbox")).rows[0].count), outbox);
});

test("retention: only events older than the kept days go, deleted as crm_retention", { skip }, async () => {
  // Old rows are made by the owner (the test's superuser connection), as a restore would.
  await pool.query(
    `INSERT INTO audit_events (company_id, action, actor_type, occurred_at)
     SELECT $1, 'auth.login', 'system', now() - make_interval(days => d) FROM unnest(ARRAY[1, 2, 4, 5, 6]) AS d`,
    [companyB],
  );
  const count = async () => Number((await pool.query("SELECT count(*) FROM audit_events WHERE company_id = $1", [companyB])).rows[0].count);
  assert.equal(await count(), 5);
  assert.equal(await purgeAuditEvents(pool, 3, 2), 3, "in batches of two: the rows 4, 5 and 6 days old");
  assert.equal(await count(), 2);
  assert.equal(await purgeAuditEvents(pool, 3), 0);
  assert.ok(Number((await pool.query("SELECT count(*) FROM audit_events WHERE company_id = $1", [companyA])).rows[0].count) > 0, "recent rows stay");
});

/**
 * Migrations at start: a new database gets every migration; a start with nothing to apply is one
 * query (node-pg-migrate is not run); anything else still goes to node-pg-migrate, which applies
 * what is missing or refuses a database whose history does not match the files.
 */
import assert from "node:assert/strict";
import { copyFileSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import pg from "pg";
import { createLogger } from "@crm/kit";
import { freshDatabase, installHint, need, postgresUp, type TestDatabase } from "@crm/testkit";
import { migrate, migrationDirs, migrationNames } from "../src/migrate.js";

const skip = need("PostgreSQL", await postgresUp(), installHint.postgres);
const log = createLogger("test", "silent");

let tdb: TestDatabase;
let pool: pg.Pool;

before(async () => {
  if (skip) return;
  tdb = await freshDatabase();
  pool = new pg.Pool({ connectionString: tdb.url, max: 1 });
});

after(async () => {
  if (skip) return;
  await pool.end();
  await tdb.drop();
});

test("a new database gets every migration, in file-name order across the folders", { skip }, async () => {
  const names = migrationNames(migrationDirs);
  assert.ok(names.length > 5);
  // dbservice's own folder is first, yet its later files run between the domains' earlier ones
  assert.deepEqual(await migrate(pool, log), names);
  const applied = await pool.query<{ name: string }>("SELECT name FROM crm_migrations ORDER BY run_on, id");
  assert.deepEqual(applied.rows.map((r) => r.name), names);
});

test("with nothing to apply, a start runs one query and no migration", { skip }, async () => {
  const queries: string[] = [];
  const seen = new pg.Pool({ connectionString: tdb.url, max: 1 });
  seen.on("connect", (client) => {
    const query = client.query.bind(client) as (...a: unknown[]) => unknown;
    client.query = ((...a: unknown[]) => (queries.push(typeof a[0] === "string" ? a[0] : String((a[0] as { text?: string })?.text)), query(...a))) as typeof client.query;
  });
  try {
    assert.deepEqual(await migrate(seen, log), []);
  } finally {
    await seen.end();
  }
  assert.equal(queries.length, 1, `one query, not node-pg-migrate's lock and table checks: ${queries.join(" | ")}`);
});

test("a missing migration is applied by node-pg-migrate", { skip }, async () => {
  const names = migrationNames(migrationDirs);
  const last = names.at(-1)!;
  // as if the database were one release behind: forget the last one (its objects stay; re-running
  // it would fail on them, so a stand-in folder with an empty file of the same name is used)
  await pool.query("DELETE FROM crm_migrations WHERE name = $1", [last]);
  const dir = mkdtempSync(join(tmpdir(), "crm-migrations-"));
  try {
    for (const d of migrationDirs) for (const f of readdirSync(d)) if (f.endsWith(".sql") && f !== `${last}.sql`) copyFileSync(join(d, f), join(dir, f));
    writeFileSync(join(dir, `${last}.sql`), "SELECT 1;\n");
    assert.deepEqual(await migrate(pool, log, [dir]), [last]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a history that does not match the files is refused, as before", { skip }, async () => {
  await pool.query("INSERT INTO crm_migrations (name, run_on) VALUES ('1600000000000_unknown', now() - interval '1 day')");
  try {
    await assert.rejects(migrate(pool, log), /preceding already run migration 1600000000000_unknown/);
  } finally {
    await pool.query("DELETE FROM crm_migrations WHERE name = '1600000000000_unknown'");
  }
});

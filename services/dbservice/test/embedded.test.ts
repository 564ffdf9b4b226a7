/**
 * The embedded database's template (pglite-template.ts, made by the build): a new data folder
 * starts from it with every migration applied, and a folder that holds data is never replaced
 * by it. PGlite runs in its own thread (embedded-worker.ts) with a small shared memory.
 */
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import pg from "pg";
import { createLogger } from "@crm/kit";
import { startEmbeddedPostgres, startEmbeddedPostgresEarly } from "../src/embedded.js";
import { migrate, migrationDirs, migrationNames } from "../src/migrate.js";
import { writePgliteTemplate } from "../src/pglite-template.js";

const log = createLogger("test", "silent");
const work = mkdtempSync(join(tmpdir(), "crm-embedded-test-"));
const template = join(work, "pgdata.tar.gz");
let applied: string[] = [];

before(async () => {
  applied = await writePgliteTemplate(template);
});

after(() => rmSync(work, { recursive: true, force: true }));

async function withDb<T>(dir: string, fn: (pool: pg.Pool) => Promise<T>): Promise<T> {
  const db = await startEmbeddedPostgres(dir, template);
  const pool = new pg.Pool({ connectionString: db.url, max: 1 });
  try {
    return await fn(pool);
  } finally {
    await pool.end();
    await db.close();
  }
}

test("the template holds every migration of this tree", () => {
  assert.deepEqual(applied, migrationNames(migrationDirs));
});

test("a new data folder starts from the template: nothing left to migrate", async () => {
  const dir = join(work, "new");
  await withDb(dir, async (pool) => {
    assert.deepEqual(await migrate(pool, log), []);
    const { rows } = await pool.query<{ n: number }>("SELECT count(*)::int AS n FROM crm_migrations");
    assert.equal(rows[0]!.n, applied.length);
  });
});

test("a folder with data is opened as it is, never replaced by the template", async () => {
  const dir = join(work, "kept");
  await withDb(dir, (pool) => pool.query("CREATE TABLE kept_here (x int); INSERT INTO kept_here VALUES (42)"));
  const rows = await withDb(dir, async (pool) => (await pool.query<{ x: number }>("SELECT x FROM kept_here")).rows);
  assert.deepEqual(rows, [{ x: 42 }]);
});

test("a copy of the template that was interrupted is made again, not opened", async () => {
  const dir = join(work, "interrupted");
  mkdirSync(dir, { recursive: true });
  // what a process killed while unpacking leaves: the marker, PG_VERSION (the tar's first file), little else
  writeFileSync(join(dir, ".unpacking-template"), "");
  writeFileSync(join(dir, "PG_VERSION"), "17\n");
  await withDb(dir, async (pool) => assert.deepEqual(await migrate(pool, log), []));
  assert.ok(!existsSync(join(dir, ".unpacking-template")));
});

test("without a template a new folder is initialised by initdb, as before", async () => {
  const dir = join(work, "plain");
  const db = await startEmbeddedPostgres(dir, join(work, "no-such-template.tar.gz"));
  const pool = new pg.Pool({ connectionString: db.url, max: 1 });
  try {
    const { rows } = await pool.query<{ t: string | null }>("SELECT to_regclass('crm_migrations')::text AS t");
    assert.equal(rows[0]!.t, null, "an empty database: the migrations run at start");
  } finally {
    await pool.end();
    await db.close();
  }
});

test("PGlite runs in its own thread: a slow query leaves this thread's event loop free", async () => {
  await withDb(join(work, "thread"), async (pool) => {
    await pool.query("SELECT 1"); // connected and warm
    const t0 = performance.now();
    let firedAt = 0;
    const timer = new Promise<void>((resolve) => setTimeout(() => ((firedAt = performance.now() - t0), resolve()), 20));
    await pool.query("SELECT pg_sleep(0.5)");
    await timer;
    // In this thread, PGlite's synchronous WebAssembly would hold the timer until the query ended.
    assert.ok(firedAt < 400, `a 20 ms timer fired after ${firedAt.toFixed(0)} ms, during a 500 ms query`);
  });
});

test("PGlite's shared memory is 16 MB, not initdb's 128 MB (zeroed at every start)", async () => {
  const rows = await withDb(join(work, "buffers"), async (pool) => (await pool.query<{ shared_buffers: string }>("SHOW shared_buffers")).rows);
  assert.deepEqual(rows, [{ shared_buffers: "16MB" }]);
});

test("a failure to start is an error of the start, not a thread left behind", async () => {
  const file = join(work, "a-file");
  writeFileSync(file, "");
  await assert.rejects(startEmbeddedPostgres(join(file, "pg"), template), /ENOTDIR/);
});

test("a thread started early is taken by the start of its folder; another folder's start closes it first", async () => {
  // The all-in-one's entry point starts PGlite before loading its code (main.ts); the start that
  // comes later takes that thread, for the same folder only.
  const early = join(work, "early");
  startEmbeddedPostgresEarly(early, template);
  await withDb(early, async (pool) => assert.deepEqual(await migrate(pool, log), []));

  const unused = join(work, "early-unused");
  startEmbeddedPostgresEarly(unused, template);
  await withDb(join(work, "early-other"), async (pool) => {
    assert.deepEqual(await migrate(pool, log), []);
    // PostgreSQL removes postmaster.pid when it shuts down: the unused thread was closed, not left
    // holding its folder (and the process) open.
    assert.ok(existsSync(join(unused, "PG_VERSION")), "the early thread had started");
    assert.ok(!existsSync(join(unused, "postmaster.pid")), "the early thread's PostgreSQL was shut down");
  });
});

/**
 * The all-in-one's first-start database, made once at build time (scripts/build.mjs runs
 * `node --conditions=source --import tsx services/dbservice/src/pglite-template.ts FILE`): a new
 * PGlite data folder (initdb), every migration of this tree applied, dumped as PGlite's tar and
 * gzipped. embedded.ts starts a new DATA_DIR from it (issue 21: first start ≤ 3 s; initdb and the
 * migrations alone took ≈ 4 s of it on 2 cores).
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import pg from "pg";
import { createLogger } from "@crm/kit";
import { startEmbeddedPostgres } from "./embedded.js";
import { migrate, migrationDirs } from "./migrate.js";

/** Writes the template to `file`; returns the migrations it holds. */
export async function writePgliteTemplate(file: string, dirs: readonly string[] = migrationDirs): Promise<string[]> {
  const dataDir = mkdtempSync(join(tmpdir(), "crm-pglite-template-"));
  try {
    const db = await startEmbeddedPostgres(dataDir, undefined);
    let tar: Buffer;
    let applied: string[];
    try {
      const pool = new pg.Pool({ connectionString: db.url, max: 1 });
      try {
        applied = await migrate(pool, createLogger("pglite-template", "warn"), dirs);
      } finally {
        await pool.end();
      }
      tar = await db.dump();
    } finally {
      await db.close();
    }
    writeFileSync(file, gzipSync(tar, { level: 9 }));
    return applied;
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const file = process.argv[2];
  if (!file) {
    process.stderr.write("usage: node --conditions=source --import tsx services/dbservice/src/pglite-template.ts FILE\n");
    process.exit(2);
  }
  const t0 = performance.now();
  const applied = await writePgliteTemplate(resolve(file));
  process.stdout.write(`PGlite template with ${applied.length} migrations: ${file} (${((performance.now() - t0) / 1000).toFixed(1)} s)\n`);
}

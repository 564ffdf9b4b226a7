/**
 * All-in-one default: PostgreSQL compiled to WASM (PGlite) with its data in a folder, served on a
 * loopback socket so dbservice uses the same `pg` code as with a real server. PGlite is one
 * backend: the pool must hold ONE connection, or transactions would interleave.
 *
 * A new data folder starts from the template the build made (pgdata.tar.gz beside the bundle,
 * pglite-template.ts: initdb and every migration, done once at build time): unpacking it takes a
 * fraction of a second where initdb and the migrations take seconds. Without a template (from
 * source, or a build without one) a new folder is initialised by PGlite's initdb as before.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { gunzipSync } from "node:zlib";
import { PGlite } from "@electric-sql/pglite";
import { btree_gist } from "@electric-sql/pglite/contrib/btree_gist";
import { pg_trgm } from "@electric-sql/pglite/contrib/pg_trgm";
import { unaccent } from "@electric-sql/pglite/contrib/unaccent";
import { PGLiteSocketServer } from "@electric-sql/pglite-socket";

export interface EmbeddedPostgres {
  url: string;
  /** The data folder as PGlite's tar (what a template is made of); nothing may be connected. */
  dump(): Promise<Buffer>;
  close(): Promise<void>;
}

/** Where the build puts the template: beside the bundle's code (dist/pgdata.tar.gz). */
export const templateFile = fileURLToPath(new URL("./pgdata.tar.gz", import.meta.url));

export async function startEmbeddedPostgres(dataDir: string, template: string | undefined = templateFile): Promise<EmbeddedPostgres> {
  // A folder PostgreSQL has not initialised yet (no PG_VERSION) starts as a copy of the template;
  // the marker is there until the copy is complete (an interrupted one is made again, not opened).
  const unpacking = join(dataDir, ".unpacking-template");
  if (existsSync(unpacking)) rmSync(dataDir, { recursive: true, force: true });
  mkdirSync(dataDir, { recursive: true });
  const fresh = !existsSync(join(dataDir, "PG_VERSION"));
  const loadDataDir = fresh && template && existsSync(template) ? new Blob([gunzipSync(readFileSync(template))]) : undefined;
  if (loadDataDir) writeFileSync(unpacking, "");
  // Extensions the migrations create (PGlite loads an extension only when registered here).
  const db = await PGlite.create(dataDir, { extensions: { btree_gist, pg_trgm, unaccent }, ...(loadDataDir ? { loadDataDir } : {}) });
  if (loadDataDir) rmSync(unpacking);
  const server = new PGLiteSocketServer({ db, port: 0, host: "127.0.0.1" });
  await server.start();
  const conn = server.getServerConn(); // "127.0.0.1:PORT"
  return {
    url: `postgres://postgres@${conn}/postgres`,
    async dump() {
      return Buffer.from(await (await db.dumpDataDir("none")).arrayBuffer());
    },
    async close() {
      await server.stop();
      await db.close();
    },
  };
}

/**
 * The embedded PostgreSQL's own thread (embedded.ts starts it): PGlite in the data folder, served
 * on a loopback socket. Booting PGlite is a second of CPU (its WebAssembly, its file bundle, the
 * postgres boot) that on the main thread held up everything else of the all-in-one's start; here
 * it runs beside it, and later every query runs off the event loop that serves the API.
 *
 * workerData: { dataDir, template? }. Posts { ready: url } once listening; answers "dump" with
 * the data folder as PGlite's tar ({ dump: ArrayBuffer }) and "close" with { closed: true } after
 * the socket and the database are closed. A failure to start is thrown: the parent's Worker emits
 * it as "error".
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parentPort, workerData } from "node:worker_threads";
import { gunzipSync } from "node:zlib";
import { PGlite } from "@electric-sql/pglite";
import { btree_gist } from "@electric-sql/pglite/contrib/btree_gist";
import { pg_trgm } from "@electric-sql/pglite/contrib/pg_trgm";
import { unaccent } from "@electric-sql/pglite/contrib/unaccent";
import { PGLiteSocketServer } from "@electric-sql/pglite-socket";

/**
 * initdb writes shared_buffers = 128MB, and PGlite's postgres zeroes its whole shared memory at
 * every boot in WebAssembly (≈ 0.4 s of a restart's CPU at 128 MB). 16 MB (2,048 pages) holds an
 * all-in-one's working set; a page not in it is read from the OS's file cache.
 */
const startParams = [...PGlite.defaultStartParams, "-c", "shared_buffers=16MB"];

const port = parentPort;
if (!port) throw new Error("embedded-worker.ts runs as a worker thread (embedded.ts starts it)");
const { dataDir, template } = workerData as { dataDir: string; template?: string };

// The thread's event loop must not run empty while PGlite boots: Node drains every pending V8
// background task whenever a loop has nothing left to wait for (NodePlatform::DrainTasks), and
// PGlite's boot leaves its WebAssembly's tier-up compiles running in the background; with the
// loop empty the thread stood idle 0.1–0.2 s for them (strace: a futex wait in DrainTasks; an
// open handle removes it). Listening for the parent's requests from the start keeps it open.
let serving: Promise<{ db: PGlite; server: PGLiteSocketServer }> | undefined;
port.on("message", async (msg: "dump" | "close") => {
  const { db, server } = await serving!;
  if (msg === "dump") {
    const tar = await (await db.dumpDataDir("none")).arrayBuffer();
    port.postMessage({ dump: tar }, [tar]);
  } else if (msg === "close") {
    await server.stop();
    await db.close();
    port.postMessage({ closed: true });
    port.close(); // nothing keeps the thread alive: it ends
  }
});

// A folder PostgreSQL has not initialised yet (no PG_VERSION) starts as a copy of the template;
// the marker is there until the copy is complete (an interrupted one is made again, not opened).
const unpacking = join(dataDir, ".unpacking-template");
if (existsSync(unpacking)) rmSync(dataDir, { recursive: true, force: true });
mkdirSync(dataDir, { recursive: true });
const fresh = !existsSync(join(dataDir, "PG_VERSION"));
const loadDataDir = fresh && template && existsSync(template) ? new Blob([gunzipSync(readFileSync(template))]) : undefined;
if (loadDataDir) writeFileSync(unpacking, "");
serving = (async () => {
  // Extensions the migrations create (PGlite loads an extension only when registered here).
  const db = await PGlite.create(dataDir, { extensions: { btree_gist, pg_trgm, unaccent }, startParams, ...(loadDataDir ? { loadDataDir } : {}) });
  if (loadDataDir) rmSync(unpacking);
  const server = new PGLiteSocketServer({ db, port: 0, host: "127.0.0.1" });
  await server.start();
  return { db, server };
})();
const { server } = await serving;
port.postMessage({ ready: `postgres://postgres@${server.getServerConn()}/postgres` });

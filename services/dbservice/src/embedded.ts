/**
 * All-in-one default: PostgreSQL compiled to WASM (PGlite) with its data in a folder, served on a
 * loopback socket so dbservice uses the same `pg` code as with a real server. PGlite is one
 * backend: the pool must hold ONE connection, or transactions would interleave.
 *
 * PGlite runs in its own worker thread (embedded-worker.ts): its boot (≈ 1 s of CPU) overlaps
 * the rest of the all-in-one's start, and its queries do not run on the API's event loop.
 *
 * A new data folder starts from the template the build made (pgdata.tar.gz beside the bundle,
 * pglite-template.ts: initdb and every migration, done once at build time): unpacking it takes a
 * fraction of a second where initdb and the migrations take seconds. Without a template (from
 * source, or a build without one) a new folder is initialised by PGlite's initdb as before.
 */
import { extname } from "node:path";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";

export interface EmbeddedPostgres {
  url: string;
  /** The data folder as PGlite's tar (what a template is made of); nothing may be connected. */
  dump(): Promise<Buffer>;
  close(): Promise<void>;
}

/** Where the build puts the template: beside the bundle's code (dist/pgdata.tar.gz). */
export const templateFile = fileURLToPath(new URL("./pgdata.tar.gz", import.meta.url));

/**
 * The thread, with its code beside this module's: embedded-worker.mjs in the bundle (an entry of
 * its own, scripts/build.mjs), embedded-worker.ts from source, where the thread registers tsx's
 * loader first (Node 20's worker threads do not inherit it).
 */
function startWorker(workerData: { dataDir: string; template: string | undefined }): Worker {
  const fromSource = extname(fileURLToPath(import.meta.url)) === ".ts";
  const file = new URL(`./embedded-worker.${fromSource ? "ts" : "mjs"}`, import.meta.url);
  if (!fromSource) return new Worker(file, { workerData });
  const tsx = JSON.stringify(import.meta.resolve("tsx/esm/api"));
  return new Worker(`import(${tsx}).then((tsx) => (tsx.register(), import(${JSON.stringify(file.href)})))`, { eval: true, workerData });
}

type Reply = { ready: string } | { dump: ArrayBuffer } | { closed: true };

/** A thread started before the process loaded its code (startEmbeddedPostgresEarly), not yet taken. */
let early: { dataDir: string; template: string | undefined; started: Promise<EmbeddedPostgres> } | undefined;

/**
 * Starts the thread at once, for the startEmbeddedPostgres(dataDir) that comes later to take: the
 * all-in-one's entry point calls it before importing anything else, so PGlite boots while the
 * process loads the kit and the services' code (≈ 0.8 s of CPU on the main thread).
 */
export function startEmbeddedPostgresEarly(dataDir: string, template: string | undefined = templateFile): void {
  if (early) return;
  const started = startThread(dataDir, template);
  started.catch(() => {}); // reported to whoever takes it
  early = { dataDir, template, started };
}

/**
 * The embedded PostgreSQL in dataDir: the thread started early for that folder (and template) if
 * there is one, else a new one. A thread started early for another folder is closed first (two PGlites must
 * never open one folder, and a thread nobody takes would hold the process open).
 */
export async function startEmbeddedPostgres(dataDir: string, template: string | undefined = templateFile): Promise<EmbeddedPostgres> {
  const taken = early;
  early = undefined;
  if (taken && taken.dataDir === dataDir && taken.template === template) return taken.started;
  if (taken) await taken.started.then((db) => db.close(), () => {});
  return startThread(dataDir, template);
}

async function startThread(dataDir: string, template: string | undefined): Promise<EmbeddedPostgres> {
  const worker = startWorker({ dataDir, template });
  // One request at a time (start, dump, close): the next reply answers it; the thread failing or
  // ending first fails it.
  let pending: { resolve(r: Reply): void; reject(e: unknown): void } | undefined;
  const next = () => new Promise<Reply>((resolve, reject) => void (pending = { resolve, reject }));
  const settle = (fn: (p: NonNullable<typeof pending>) => void) => {
    const p = pending;
    pending = undefined;
    if (p) fn(p);
  };
  let running = true;
  const exited = new Promise<void>((resolve) => worker.once("exit", () => ((running = false), resolve())));
  worker.on("message", (r: Reply) => settle((p) => p.resolve(r)));
  worker.on("error", (err) => {
    if (!pending) throw err; // the database failed with nothing waiting on it: as loud as a crash in this thread
    settle((p) => p.reject(err));
  });
  worker.on("exit", (code) => settle((p) => p.reject(new Error(`the embedded PostgreSQL's thread ended (exit code ${code})`))));
  const started = await next();
  if (!("ready" in started)) throw new Error("embedded PostgreSQL: unexpected first message");
  return {
    url: started.ready,
    async dump() {
      const reply = next();
      worker.postMessage("dump");
      const r = await reply;
      if (!("dump" in r)) throw new Error("embedded PostgreSQL: unexpected answer to dump");
      return Buffer.from(r.dump);
    },
    async close() {
      if (!running) return;
      const reply = next();
      worker.postMessage("close");
      await reply;
      await exited;
    },
  };
}

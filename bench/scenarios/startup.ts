/**
 * 8. Start-up and memory: the all-in-one production bundle (built like `npm run build`) from a
 * fresh DATA_DIR and again on the same DATA_DIR (restart), embedded PGlite and real PostgreSQL;
 * wall time from spawn to its "ready" line, the ms the line itself reports, RSS at ready and
 * idle, start-up CPU; the floor is bare `node` reaching its first line.
 */
import { mkdtempSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freshDatabase, postgresUp, type TestDatabase } from "@crm/testkit";
import { buildBundle, removeDir, startApp, type Entry } from "../lib/app.js";
import { benchReady, startChild } from "../lib/child.js";
import { mb, sample } from "../lib/proc.js";
import type { Check, Ctx, Scenario, Table } from "../lib/report.js";

interface StartRow {
  label: string;
  wallMs: number;
  selfMs?: number;
  cpuMs: number;
  readyRssMB: number;
  idleRssMB: number;
  peakMB: number;
  stopMs: number;
  /** SIGTERM → exit while one idle HTTP/1.1 keep-alive client stays connected. */
  stopKeepAliveMs?: number;
}

/** GET on a connection that closes after the answer (no keep-alive left behind). */
function getClosing(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false, headers: { connection: "close" } }, (res) => {
      res.resume();
      res.once("end", () => resolve(res.statusCode ?? 0));
    });
    req.setTimeout(10_000, () => req.destroy(new Error(`GET ${url} took over 10 s`)));
    req.once("error", reject);
  });
}

/** An HTTP/1.1 client that keeps its connection open after one answer, as browsers and fetch do. */
async function idleKeepAliveClient(url: string): Promise<() => void> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  await new Promise<void>((resolve, reject) => {
    http.get(url, { agent }, (res) => (res.resume(), res.once("end", resolve))).once("error", reject);
  });
  return () => agent.destroy();
}

const settle = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function once(label: string, entry: Entry, dataDir: string, env: Record<string, string>, idleMs: number, keepAliveStop = false): Promise<StartRow> {
  const app = await startApp({ entry, dataDir, env: { LOG_LEVEL: "info", ...env } });
  let release = () => {};
  try {
    const atReady = sample(app.pid);
    const status = await getClosing(`${app.value.url}/readyz`);
    if (status !== 200) throw new Error(`${label}: /readyz answered ${status} after the ready line`);
    await settle(idleMs);
    const idle = sample(app.pid);
    if (keepAliveStop) release = await idleKeepAliveClient(`${app.value.url}/healthz`);
    const t0 = performance.now();
    await app.stop(60_000);
    const stopMs = performance.now() - t0;
    return {
      label, wallMs: app.readyMs, selfMs: app.value.ms, cpuMs: atReady.cpuMs, readyRssMB: mb(atReady.rssBytes), idleRssMB: mb(idle.rssBytes), peakMB: mb(idle.peakBytes),
      ...(keepAliveStop ? { stopMs: NaN, stopKeepAliveMs: stopMs } : { stopMs }),
    };
  } finally {
    release();
    await app.stop();
  }
}

async function nodeFloor(idleMs: number): Promise<StartRow> {
  const child = await startChild({
    name: "bare node",
    cmd: process.execPath,
    args: ["-e", 'console.log(JSON.stringify({bench_ready:true,port:0})); setInterval(() => {}, 1000); process.on("SIGTERM", () => process.exit(0))'],
    ready: benchReady,
    timeoutMs: 30_000,
  });
  const atReady = sample(child.pid);
  await settle(idleMs);
  const idle = sample(child.pid);
  const t0 = performance.now();
  await child.stop();
  return { label: "**floor**: bare node to its first line", wallMs: child.readyMs, cpuMs: atReady.cpuMs, readyRssMB: mb(atReady.rssBytes), idleRssMB: mb(idle.rssBytes), peakMB: mb(idle.peakBytes), stopMs: performance.now() - t0 };
}

export const startup: Scenario = {
  name: "startup",
  title: "All-in-one start-up time and memory (first start and restart)",
  async run(ctx: Ctx) {
    const idleMs = ctx.quick ? 200 : 3_000;
    ctx.log("building the bundle (bench/.build/crm.mjs)");
    await buildBundle();
    const rows: StartRow[] = [await nodeFloor(idleMs)];
    const pgliteDir = mkdtempSync(join(tmpdir(), "crm-bench-start-"));
    let db: TestDatabase | undefined;
    try {
      rows.push(await once("bundle, embedded PGlite, first start (fresh DATA_DIR)", "bundle", pgliteDir, {}, idleMs));
      rows.push(await once("bundle, embedded PGlite, restart", "bundle", pgliteDir, {}, idleMs));
      if (await postgresUp()) {
        db = await freshDatabase("crm_bench");
        const pgDir = mkdtempSync(join(tmpdir(), "crm-bench-start-"));
        try {
          rows.push(await once("bundle, PostgreSQL, first start (empty database: migrations)", "bundle", pgDir, { DATABASE_URL: db.url }, idleMs));
          rows.push(await once("bundle, PostgreSQL, restart", "bundle", pgDir, { DATABASE_URL: db.url }, idleMs));
          rows.push(await once("bundle, PostgreSQL, restart; stopped with an idle HTTP/1.1 keep-alive client", "bundle", pgDir, { DATABASE_URL: db.url }, idleMs, true));
        } finally {
          removeDir(pgDir);
        }
      } else ctx.log("PostgreSQL is not reachable: only the embedded rows");
      if (!ctx.quick) rows.push(await once("source via tsx (npm start), embedded PGlite, restart", "source", pgliteDir, {}, idleMs));
    } finally {
      removeDir(pgliteDir);
      await db?.drop();
    }
    for (const r of rows) ctx.log(`${r.label}: ${r.wallMs.toFixed(0)} ms to ready, RSS ${r.readyRssMB.toFixed(0)} MB`);
    const table: Table = {
      title: "",
      columns: ["start", "spawn → ready ms", "app's own ready ms", "CPU ms to ready", "RSS at ready MB", `RSS idle ${idleMs / 1000}s later MB`, "peak RSS MB", "SIGTERM → exit ms", "SIGTERM → exit ms, idle keep-alive client"],
      rows: rows.map((r) => [r.label, r.wallMs, r.selfMs, r.cpuMs, r.readyRssMB, r.idleRssMB, r.peakMB, r.stopMs, r.stopKeepAliveMs]),
    };
    const restarts = rows.filter((r) => r.label.startsWith("bundle") && r.label.includes("restart"));
    const worstRestart = Math.max(...restarts.map((r) => r.wallMs));
    const worstRss = Math.max(...restarts.map((r) => Math.max(r.idleRssMB, r.peakMB)));
    const first = rows.filter((r) => r.label.startsWith("bundle") && r.label.includes("first start"));
    const checks: Check[] = [
      { label: "slowest bundle restart, spawn → ready", value: worstRestart, unit: "ms", target: "≤ 3000 ms", met: worstRestart <= 3000 },
      { label: "largest RSS of a restarted bundle (peak or idle)", value: worstRss, unit: "MB", target: "≤ 400 MB", met: worstRss <= 400 },
      { label: "largest peak RSS of a first start", value: Math.max(...first.map((r) => r.peakMB)), unit: "MB", target: "informational" },
    ];
    return { rows: [], tables: [table], checks, notes: ["the bundle is bench/.build/crm.mjs, built with scripts/build.mjs's esbuild options (dist/ is not touched)", "each start runs alone; /readyz must answer 200 right after the ready line"] };
  },
};

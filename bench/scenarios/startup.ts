/**
 * 8, 21. Start-up and memory: the all-in-one production bundle (built like `npm run build`) from a
 * fresh DATA_DIR and again on the same DATA_DIR (restart), embedded PGlite and real PostgreSQL,
 * in rounds; wall time from spawn to its "ready" line (median), the ms the line itself reports,
 * RSS at ready and idle, start-up CPU; the floor is bare `node` reaching its first line.
 * Targets (issue 21): the first start on PGlite ≤ 3 s, a restart ≤ 1 s.
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

/** The median of each field over the rounds of one kind of start (the row the table shows). */
function medianRow(runs: StartRow[]): StartRow {
  const med = (k: keyof StartRow) => {
    const xs = runs.map((r) => r[k]).filter((x): x is number => typeof x === "number" && !Number.isNaN(x)).sort((a, b) => a - b);
    if (!xs.length) return undefined;
    return xs.length % 2 ? xs[(xs.length - 1) / 2]! : (xs[xs.length / 2 - 1]! + xs[xs.length / 2]!) / 2;
  };
  const label = runs.length > 1 ? `${runs[0]!.label} (median of ${runs.length}: ${runs.map((r) => r.wallMs.toFixed(0)).join(", ")} ms)` : runs[0]!.label;
  return { label, wallMs: med("wallMs")!, selfMs: med("selfMs"), cpuMs: med("cpuMs")!, readyRssMB: med("readyRssMB")!, idleRssMB: med("idleRssMB")!, peakMB: med("peakMB")!, stopMs: med("stopMs") ?? NaN, stopKeepAliveMs: med("stopKeepAliveMs") };
}

export const startup: Scenario = {
  name: "startup",
  title: "All-in-one start-up time and memory (first start and restart)",
  async run(ctx: Ctx) {
    const idleMs = ctx.quick ? 200 : 3_000;
    // Rounds of each kind of start (a fresh DATA_DIR or database each round): medians, so one
    // start slowed by a load spike on a shared machine does not decide the check.
    const rounds = ctx.quick ? 1 : 3;
    ctx.log("building the bundle (bench/.build/crm.mjs, with the PGlite template)");
    await buildBundle();
    const runs = new Map<string, StartRow[]>();
    const add = (r: StartRow) => void (runs.get(r.label) ?? runs.set(r.label, []).get(r.label)!).push(r);
    add(await nodeFloor(idleMs));
    const dirs: string[] = [];
    const dbs: TestDatabase[] = [];
    const pgUp = await postgresUp();
    if (!pgUp) ctx.log("PostgreSQL is not reachable: only the embedded rows");
    try {
      for (let round = 1; round <= rounds; round++) {
        ctx.log(`round ${round}/${rounds}`);
        const pgliteDir = mkdtempSync(join(tmpdir(), "crm-bench-start-"));
        dirs.push(pgliteDir);
        add(await once("bundle, embedded PGlite, first start (fresh DATA_DIR)", "bundle", pgliteDir, {}, idleMs));
        add(await once("bundle, embedded PGlite, restart", "bundle", pgliteDir, {}, idleMs));
        if (pgUp) {
          const db = await freshDatabase("crm_bench");
          dbs.push(db);
          const pgDir = mkdtempSync(join(tmpdir(), "crm-bench-start-"));
          dirs.push(pgDir);
          add(await once("bundle, PostgreSQL, first start (empty database: migrations)", "bundle", pgDir, { DATABASE_URL: db.url }, idleMs));
          add(await once("bundle, PostgreSQL, restart", "bundle", pgDir, { DATABASE_URL: db.url }, idleMs));
          add(await once("bundle, PostgreSQL, restart; stopped with an idle HTTP/1.1 keep-alive client", "bundle", pgDir, { DATABASE_URL: db.url }, idleMs, true));
        }
        if (!ctx.quick && round === 1) add(await once("source via tsx (npm start), embedded PGlite, restart", "source", pgliteDir, {}, idleMs));
      }
    } finally {
      for (const d of dirs) removeDir(d);
      for (const db of dbs) await db.drop();
    }
    const rows = [...runs.values()].map(medianRow);
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
    const pgliteFirst = rows.find((r) => r.label.startsWith("bundle, embedded PGlite, first start"))!;
    const pgliteRestart = rows.find((r) => r.label.startsWith("bundle, embedded PGlite, restart"))!;
    const checks: Check[] = [
      { label: "bundle first start on PGlite (fresh DATA_DIR), spawn → ready, median", value: pgliteFirst.wallMs, unit: "ms", target: "≤ 3000 ms", met: pgliteFirst.wallMs <= 3000 },
      { label: "bundle restart on PGlite, spawn → ready, median", value: pgliteRestart.wallMs, unit: "ms", target: "≤ 1000 ms", met: pgliteRestart.wallMs <= 1000 },
      { label: "slowest bundle restart (any database), spawn → ready, median", value: worstRestart, unit: "ms", target: "informational" },
      { label: "CPU to ready, PGlite first start (every thread; a loaded machine inflates it less than wall time)", value: pgliteFirst.cpuMs, unit: "ms", target: "informational" },
      { label: "CPU to ready, PGlite restart", value: pgliteRestart.cpuMs, unit: "ms", target: "informational" },
      { label: "largest RSS of a restarted bundle (peak or idle)", value: worstRss, unit: "MB", target: "≤ 400 MB", met: worstRss <= 400 },
      { label: "largest peak RSS of a first start", value: Math.max(...first.map((r) => r.peakMB)), unit: "MB", target: "informational" },
    ];
    return {
      rows: [],
      tables: [table],
      checks,
      notes: [
        "the bundle is bench/.build/crm.mjs, built with scripts/build.mjs (dist/ is not touched), with the PGlite template a new DATA_DIR starts from (pgdata.tar.gz: initdb and the migrations done at build time)",
        `${rounds} round(s), each with a fresh DATA_DIR and a fresh PostgreSQL database; the rows are medians`,
        "each start runs alone; /readyz must answer 200 right after the ready line",
      ],
    };
  },
};

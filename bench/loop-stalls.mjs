/**
 * Opt-in diagnostic for any Node process the bench starts: every 5 s, one JSON line of its
 * event-loop delay (max, p99; perf_hooks.monitorEventLoopDelay at 10 ms), its turns that took over
 * 50 ms, how much of those the main thread spent running vs waiting for a CPU (the run queue, from
 * /proc/self/task/<pid>/schedstat; Linux only), and its GC (total, count, longest pause by kind).
 * A stall with more waiting than running is the machine's CPUs being busy elsewhere, not this
 * process's code. Loaded into every child through NODE_OPTIONS, one file per process:
 *   LOOP_STALLS_DIR=/tmp/stalls NODE_OPTIONS="--import=$PWD/bench/loop-stalls.mjs" npm run bench -- users
 * What ran in the long turns: `npm run bench -- --profile` and `bench/profile.ts --stalls`.
 */
import { appendFileSync, existsSync, readFileSync } from "node:fs";
import { monitorEventLoopDelay, performance, PerformanceObserver } from "node:perf_hooks";

const dir = process.env.LOOP_STALLS_DIR;
if (dir) {
  const script = process.argv.slice(1).find((a) => /\.(ts|mjs|js)$/.test(a)) ?? "node";
  const file = `${dir}/${script.split("/").pop()}-${process.pid}.log`;
  const stat = `/proc/self/task/${process.pid}/schedstat`;
  const hasStat = existsSync(stat);
  /** The main thread's time on a CPU and waiting for one, ms. */
  const sched = () => {
    if (!hasStat) return { run: 0, wait: 0 };
    const [run = 0, wait = 0] = readFileSync(stat, "utf8").split(" ").map(Number);
    return { run: run / 1e6, wait: wait / 1e6 };
  };
  const delay = monitorEventLoopDelay({ resolution: 10 });
  delay.enable();
  const gc = { ms: 0, n: 0, max: 0, maxByKind: {} };
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      gc.ms += e.duration;
      gc.n++;
      gc.max = Math.max(gc.max, e.duration);
      const kind = { 1: "scavenge", 2: "minor-mc", 4: "mark-compact", 8: "incremental", 16: "weak" }[e.detail?.kind] ?? String(e.detail?.kind);
      gc.maxByKind[kind] = Math.max(gc.maxByKind[kind] ?? 0, e.duration);
    }
  }).observe({ entryTypes: ["gc"] });
  // A 20 ms ticker: a gap over 70 ms between two ticks is a turn (or turns back to back) of over 50 ms.
  const long = { n: 0, max: 0, ms: 0, run: 0, wait: 0 };
  let tick = performance.now();
  let tickSched = sched();
  setInterval(() => {
    const now = performance.now();
    const s = sched();
    const over = now - tick - 20;
    if (over > 50) {
      long.n++;
      long.max = Math.max(long.max, over);
      long.ms += over;
      long.run += s.run - tickSched.run;
      long.wait += s.wait - tickSched.wait;
    }
    tick = now;
    tickSched = s;
  }, 20).unref();
  let cpu = process.cpuUsage();
  let t0 = performance.now();
  let s0 = sched();
  const round = (x) => Math.round(x);
  setInterval(() => {
    const c = process.cpuUsage(cpu);
    const t = performance.now();
    const s = sched();
    const line = {
      at: new Date().toISOString().slice(11, 19),
      cpuPct: round((c.user + c.system) / 10 / (t - t0)),
      mainRunMs: round(s.run - s0.run),
      mainWaitMs: round(s.wait - s0.wait),
      delayMaxMs: round(delay.max / 1e6),
      delayP99Ms: round(delay.percentile(99) / 1e6),
      turnsOver50: long.n,
      longestTurnMs: round(long.max),
      longTurnsMs: round(long.ms),
      longTurnsRunMs: round(long.run),
      longTurnsWaitMs: round(long.wait),
      gcMs: round(gc.ms),
      gcCount: gc.n,
      gcMaxMs: round(gc.max),
      gcMaxByKind: Object.fromEntries(Object.entries(gc.maxByKind).map(([k, v]) => [k, round(v)])),
    };
    appendFileSync(file, JSON.stringify(line) + "\n");
    delay.reset();
    Object.assign(gc, { ms: 0, n: 0, max: 0, maxByKind: {} });
    Object.assign(long, { n: 0, max: 0, ms: 0, run: 0, wait: 0 });
    cpu = process.cpuUsage();
    t0 = t;
    s0 = s;
  }, 5000).unref();
}

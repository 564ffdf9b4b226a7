/**
 * 21. Idle memory: each service of the cluster as its own process, run from the production bundle
 * as the image runs it (`node crm.mjs <service>`, built like `npm run build`
 * into bench/.build), and the all-in-one from the same bundle on PostgreSQL; RSS 10 s after each
 * process logged "ready", in rounds (restarts on a migrated database), median and largest.
 * Targets (issue 21): a service process ≤ 80 MB RSS, the all-in-one ≤ 300 MB.
 * Informational: private memory (anonymous pages: RSS without the node binary's code, which every
 * node process on a machine shares), the cluster as `npm run cluster -- --source` runs it
 * (through tsx), and the bundle with --enable-source-maps. Floor: bare `node` idle.
 */
import { readFileSync } from "node:fs";
import { freshDatabase, unreachable, type TestDatabase } from "@crm/testkit";
import { buildBundle, removeDir, startApp } from "../lib/app.js";
import { benchReady, startChild } from "../lib/child.js";
import { clusterProblem, startBenchCluster } from "../lib/cluster.js";
import { anonBytes, mb, sample } from "../lib/proc.js";
import type { Check, Ctx, Scenario, Table } from "../lib/report.js";

const settle = (ms: number) => new Promise((r) => setTimeout(r, ms));
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

interface Idle {
  rssMB: number;
  anonMB: number;
  peakMB: number;
}

const idleOf = (pid: number): Idle => {
  const s = sample(pid);
  return { rssMB: mb(s.rssBytes), anonMB: mb(anonBytes(pid)), peakMB: mb(s.peakBytes) };
};

/** Every service process of one cluster start, `idleMs` after the last one was ready. */
/** A cluster start; again (up to 3 times) when a free port it picked was taken meanwhile by another process. */
async function startCluster(o: Parameters<typeof startBenchCluster>[0]) {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startBenchCluster(o);
    } catch (err) {
      if (attempt >= 3 || !/already in use/.test(String(err))) throw err;
    }
  }
}

async function clusterIdle(databaseUrl: string, idleMs: number, bundle?: string, sourceMaps = false): Promise<Record<string, Idle>> {
  const bc = await startCluster({ databaseUrl, gateway: false, ...(bundle ? { bundle, sourceMaps } : {}) });
  try {
    // An older tree's cluster library (npm run bench -- --compare) may not know the bundle option.
    const pid = Object.values(bc.pids)[0]!;
    if (bundle && !readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(bundle)) throw new Error("this tree's scripts/cluster/lib.mjs cannot start services from a bundle (startCluster's bundle option)");
    await settle(idleMs);
    return Object.fromEntries(Object.entries(bc.pids).map(([name, pid]) => [name, idleOf(pid)]));
  } finally {
    await bc.stop();
  }
}

async function allInOneIdle(databaseUrl: string, idleMs: number): Promise<Idle> {
  const app = await startApp({ entry: "bundle", env: { DATABASE_URL: databaseUrl } });
  try {
    await settle(idleMs);
    return idleOf(app.pid);
  } finally {
    await app.stop();
    removeDir(app.dataDir);
  }
}

async function nodeFloor(idleMs: number): Promise<Idle> {
  const child = await startChild({
    name: "bare node",
    cmd: process.execPath,
    args: ["-e", 'console.log(JSON.stringify({bench_ready:true,port:0})); setInterval(() => {}, 1000); process.on("SIGTERM", () => process.exit(0))'],
    ready: benchReady,
    timeoutMs: 30_000,
  });
  try {
    await settle(idleMs);
    return idleOf(child.pid);
  } finally {
    await child.stop();
  }
}

const round1 = (x: number) => Math.round(x * 10) / 10;

export const idleMemory: Scenario = {
  name: "idle-memory",
  title: "Idle memory: each cluster service process and the all-in-one (PostgreSQL), RSS 10 s after ready",
  async missing() {
    return clusterProblem() ?? unreachable("postgres", "redis", "rabbitmq");
  },
  async run(ctx: Ctx) {
    const idleMs = ctx.quick ? 1_000 : 10_000;
    const rounds = ctx.quick ? 1 : 3;
    ctx.log("building the bundle (bench/.build/crm.mjs)");
    const bundle = await buildBundle();
    const dbs: TestDatabase[] = [];
    try {
      const clusterDb = await freshDatabase("crm_bench");
      dbs.push(clusterDb);
      const appDb = await freshDatabase("crm_bench");
      dbs.push(appDb);
      // Migrate both databases first: every measured start is a restart, as most starts of a pod are.
      ctx.log("first starts (migrations)");
      await startCluster({ databaseUrl: clusterDb.url, gateway: false, only: ["dbservice"], bundle }).then((bc) => bc.stop());
      await allInOneIdle(appDb.url, 0);

      const floor = await nodeFloor(idleMs);
      const services: Record<string, Idle[]> = {};
      const app: Idle[] = [];
      for (let r = 1; r <= rounds; r++) {
        ctx.log(`round ${r}/${rounds}: the cluster's services from the bundle, then the all-in-one`);
        for (const [name, idle] of Object.entries(await clusterIdle(clusterDb.url, idleMs, bundle))) (services[name] ??= []).push(idle);
        app.push(await allInOneIdle(appDb.url, idleMs));
      }
      ctx.log("the cluster's services from source (tsx), once");
      const fromSource = await clusterIdle(clusterDb.url, idleMs);
      ctx.log("the cluster's services from the bundle with --enable-source-maps, once");
      const withMaps = await clusterIdle(clusterDb.url, idleMs, bundle, true);

      const med = (xs: Idle[], k: keyof Idle) => median(xs.map((x) => x[k]));
      const rowOf = (label: string, xs: Idle[]): (string | number)[] => [label, xs.map((x) => x.rssMB.toFixed(0)).join(" / "), med(xs, "rssMB"), Math.max(...xs.map((x) => x.rssMB)), med(xs, "anonMB"), Math.max(...xs.map((x) => x.peakMB))];
      const rows: (string | number | undefined)[][] = [rowOf("**floor**: bare node", [floor])];
      for (const [name, xs] of Object.entries(services)) rows.push(rowOf(name, xs));
      rows.push(rowOf("all-in-one, PostgreSQL", app));
      const sourceRows: (string | number | undefined)[][] = Object.entries(fromSource).map(([name, x]) => [name, x.rssMB, x.anonMB, x.peakMB, withMaps[name]?.rssMB, withMaps[name]?.anonMB]);

      const worst = Object.entries(services).map(([name, xs]) => [name, med(xs, "rssMB")] as const).sort((a, b) => b[1] - a[1])[0]!;
      const total = Object.values(services).reduce((a, xs) => a + med(xs, "rssMB"), 0);
      const sourceWorst = Math.max(...Object.values(fromSource).map((x) => x.rssMB));
      const withMapsWorst = Object.entries(withMaps).sort((a, b) => b[1].rssMB - a[1].rssMB)[0]!;
      const appMedian = med(app, "rssMB");
      for (const [name, xs] of Object.entries(services)) ctx.log(`${name}: ${xs.map((x) => x.rssMB.toFixed(1)).join(" / ")} MB`);
      ctx.log(`all-in-one: ${app.map((x) => x.rssMB.toFixed(1)).join(" / ")} MB`);
      const checks: Check[] = [
        { label: `largest idle RSS of a cluster service process (${worst[0]}; bundle, median of ${rounds})`, value: round1(worst[1]), unit: "MB", target: "≤ 80 MB", met: worst[1] <= 80 },
        { label: `all-in-one idle RSS on PostgreSQL (bundle, median of ${rounds})`, value: round1(appMedian), unit: "MB", target: "≤ 300 MB", met: appMedian <= 300 },
        { label: "the cluster's service processes together (bundle, medians)", value: round1(total), unit: "MB", target: "informational" },
        { label: "largest idle RSS of a cluster service process from source (tsx)", value: round1(sourceWorst), unit: "MB", target: "informational (npm run cluster -- --source)" },
        { label: `largest idle RSS of a cluster service process from the bundle with --enable-source-maps (${withMapsWorst[0]}, one round)`, value: round1(withMapsWorst[1].rssMB), unit: "MB", target: "informational (see bench/README.md: source maps)" },
      ];
      const tables: Table[] = [
        { title: "", columns: ["process (bundle)", "RSS MB each round", "RSS MB median", "RSS MB largest", "private MB median", "peak RSS MB"], rows },
        { title: "The same services, one round each: from source (through tsx), and from the bundle with --enable-source-maps", columns: ["process", "source: RSS MB", "source: private MB", "source: peak RSS MB", "bundle, --enable-source-maps: RSS MB", "bundle, --enable-source-maps: private MB"], rows: sourceRows },
      ];
      return {
        rows: [],
        tables,
        checks,
        notes: [
          `${rounds} rounds; in each, every service of the cluster starts (TLS, mTLS, Redis, RabbitMQ; no gateway) and is sampled ${idleMs / 1000} s after the last "ready", then the all-in-one alone on PostgreSQL (REDIS_URL and AMQP_URL unset: its defaults)`,
          "every measured start is a restart: each database was migrated by a first start before the rounds",
          "RSS counts the node binary's resident code (≈ 35–45 MB, shared by every node process on the machine); private = anonymous pages (V8 heap, malloc)",
          "bundle: bench/.build/crm.mjs, built with scripts/build.mjs (one chunk per target), run as the image's entry point runs it (node crm.mjs <service>, no --enable-source-maps: the logger maps logged stacks, packages/kit/src/stack-maps.ts)",
        ],
      };
    } finally {
      for (const db of dbs) await db.drop();
    }
  },
};

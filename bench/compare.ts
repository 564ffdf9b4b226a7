/**
 * `npm run bench -- --compare REV [--rounds N] [--quick] SCENARIO…`: a change's effect in one run.
 * The scenarios run alternately on the working tree and on commit REV (checked out into a temporary
 * worktree, bench/lib/worktree.ts), N rounds (default 3), the order swapped every round (A B, B A,
 * A B …) so a load swing on the machine falls on both. Each run is a separate bench process with
 * BENCH_ROOT set to its tree: the servers, bundles and build script come from that tree, the
 * harness (this code, drivers, floors) from the working tree. Prints every numeric check and row
 * per round and the median of the per-round ratios (working tree ÷ REV); writes them to
 * bench/.tmp/compare/<time>.{json,md}. Results are never saved to bench/results.
 *
 * The two trees share PostgreSQL, Redis and RabbitMQ but not their state: each tree's runs get
 * their own RabbitMQ virtual host (two commits may declare a queue differently, e.g. a dead-letter
 * queue that became a quorum queue, and the broker refuses the second declaration) and their own
 * Redis database index (TEST_AMQP_URL and TEST_REDIS_URL of that run); every scenario already makes
 * its own PostgreSQL databases. The vhosts are made with `rabbitmqctl` on a local broker, else the
 * management API (port 15672), and deleted at the end.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import { TEST_AMQP_URL, TEST_REDIS_URL } from "@crm/testkit";
import { benchRoot } from "./lib/child.js";
import type { ScenarioResult } from "./lib/report.js";
import { commitTree, workingTree, type Tree } from "./lib/worktree.js";

interface Options {
  quick: boolean;
  rounds?: number | undefined;
  profile?: boolean;
}

/** One measured number of a run: a check, or a row's column. */
interface Metric {
  scenario: string;
  name: string;
  unit: string;
}

function metricsOf(results: ScenarioResult[]): Map<string, Metric & { value: number }> {
  const out = new Map<string, Metric & { value: number }>();
  const put = (scenario: string, name: string, unit: string, value: number | undefined) => {
    if (value === undefined || !Number.isFinite(value)) return;
    out.set(`${scenario}\u0000${name}`, { scenario, name, unit, value });
  };
  for (const r of results) {
    if (r.status !== "ok") continue;
    for (const c of r.checks) put(r.name, c.label, c.unit, c.value);
    for (const row of r.rows) {
      put(r.name, `${row.label}: req/s`, "req/s", row.rps);
      put(r.name, `${row.label}: p99`, "ms", row.p99Ms);
      put(r.name, `${row.label}: server CPU per request`, "ms", row.cpuMsPerReq);
    }
  }
  return out;
}

/** A RabbitMQ virtual host of its own for one tree: made now, deleted by `remove`. */
export interface Vhost {
  url: string;
  remove(): Promise<void>;
}

/**
 * Makes the virtual host `name` on the broker of `baseUrl` (its user gets every permission in it):
 * with `rabbitmqctl` when the broker is on this machine, else with the management API
 * (RABBITMQ_MANAGEMENT_URL, default http://<broker host>:15672, the AMQP URL's user). An old one of
 * the same name (a killed run) is deleted first, so every run starts from an empty vhost.
 */
export async function makeVhost(baseUrl: string, name: string): Promise<Vhost> {
  const base = new URL(baseUrl);
  const user = decodeURIComponent(base.username || "guest");
  const password = decodeURIComponent(base.password || "guest");
  const url = new URL(baseUrl);
  url.pathname = `/${encodeURIComponent(name)}`;
  const local = ["127.0.0.1", "localhost", "[::1]"].includes(base.hostname);
  const ctl = (args: string[]) => execFileSync("rabbitmqctl", args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], timeout: 60_000 });
  let useCtl = false;
  if (local) {
    try {
      ctl(["list_vhosts", "--quiet"]);
      useCtl = true;
    } catch {
      // not installed or not allowed (the Erlang cookie): the management API
    }
  }
  if (useCtl) {
    const remove = async () => {
      try {
        ctl(["delete_vhost", name]);
      } catch {
        // it did not exist
      }
    };
    await remove();
    ctl(["add_vhost", name]);
    ctl(["set_permissions", "-p", name, user, ".*", ".*", ".*"]);
    return { url: url.toString(), remove };
  }
  const api = process.env.RABBITMQ_MANAGEMENT_URL ?? `http://${base.hostname}:15672`;
  const auth = `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;
  const call = async (method: string, path: string, body?: unknown, okStatuses = [200, 201, 204]) => {
    let res: Response;
    try {
      res = await fetch(`${api}/api/${path}`, { method, headers: { authorization: auth, "content-type": "application/json" }, body: body === undefined ? undefined : JSON.stringify(body) });
    } catch (err) {
      throw new Error(`--compare needs a RabbitMQ vhost per tree: rabbitmqctl is not usable here and the management API at ${api} does not answer (${(err as Error).message}); run the bench on the broker's machine, or enable rabbitmq_management (rabbitmq-plugins enable rabbitmq_management) or set RABBITMQ_MANAGEMENT_URL`);
    }
    if (!okStatuses.includes(res.status)) throw new Error(`RabbitMQ management API ${method} ${path}: ${res.status} ${(await res.text()).slice(0, 200)}`);
  };
  const vhostPath = `vhosts/${encodeURIComponent(name)}`;
  const remove = () => call("DELETE", vhostPath, undefined, [200, 204, 404]);
  await remove();
  await call("PUT", vhostPath, {});
  await call("PUT", `permissions/${encodeURIComponent(name)}/${encodeURIComponent(user)}`, { configure: ".*", write: ".*", read: ".*" });
  return { url: url.toString(), remove };
}

/** `baseUrl` with the Redis database index `db` (redis://host:port/<db>). */
export function redisDbUrl(baseUrl: string, db: number): string {
  const url = new URL(baseUrl);
  url.pathname = `/${db}`;
  return url.toString();
}

/** Empties Redis database `db` of the server at `baseUrl` (the tree's cache from an earlier run). */
async function flushRedisDb(url: string): Promise<void> {
  const { Redis } = await import("ioredis");
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1, connectTimeout: 5_000 });
  try {
    await redis.connect();
    await redis.flushdb();
  } catch {
    // Redis is not running: the scenarios that need it are skipped on both trees alike
  } finally {
    redis.disconnect();
  }
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const fmt = (x: number) => (Math.abs(x) >= 100 ? x.toFixed(0) : Math.abs(x) >= 1 ? x.toFixed(2) : x.toPrecision(3));

export async function compare(rev: string, names: string[], o: Options): Promise<void> {
  if (!names.length) throw new Error("--compare needs the scenarios to run, e.g. npm run bench -- --compare HEAD~1 startup");
  const rounds = o.rounds ?? (o.quick ? 1 : 3);
  if (!Number.isInteger(rounds) || rounds < 1) throw new Error("--rounds must be a whole number ≥ 1");
  const stamp = new Date().toISOString().replace(/[:.]/g, "-");
  const dir = join(benchRoot, "bench", ".tmp", "compare", stamp);
  mkdirSync(dir, { recursive: true });
  const a = workingTree();
  const b = commitTree(rev, (msg) => console.log(`compare: ${msg}`));
  const runs: { round: number; tree: Tree; results: ScenarioResult[]; load: number[] }[] = [];
  // Each tree's own broker vhost and Redis database (see the file's comment).
  const [redisA, redisB] = (process.env.BENCH_COMPARE_REDIS_DBS ?? "12,13").split(",").map(Number) as [number, number];
  const isolation = new Map<Tree, { env: Record<string, string>; vhost?: Vhost }>();
  try {
    for (const [tree, tag, db] of [[a, "working", redisA], [b, b.root.split("crm-bench-").pop()!, redisB]] as const) {
      const vhost = await makeVhost(TEST_AMQP_URL, `crm-bench-${tag}`);
      isolation.set(tree, { vhost, env: { TEST_AMQP_URL: vhost.url, TEST_REDIS_URL: redisDbUrl(TEST_REDIS_URL, db) } });
      console.log(`compare: ${tree.label}: RabbitMQ vhost crm-bench-${tag}, Redis database ${db}`);
    }
    for (let round = 1; round <= rounds; round++) {
      for (const tree of round % 2 ? [a, b] : [b, a]) {
        const file = join(dir, `round${round}-${tree === a ? "working" : "rev"}.json`);
        console.log(`\n=== round ${round}/${rounds}: ${tree.label}`);
        const load = os.loadavg();
        const args = ["--conditions=source", "--import", "tsx", "bench/run.ts", ...names, "--out", file, ...(o.quick ? ["--quick"] : []), ...(o.profile ? ["--profile"] : [])];
        const own = isolation.get(tree)!.env;
        await flushRedisDb(own.TEST_REDIS_URL!);
        const r = spawnSync(process.execPath, args, { cwd: benchRoot, env: { ...process.env, ...own, BENCH_ROOT: tree.root }, stdio: "inherit" });
        let results: ScenarioResult[] = [];
        try {
          results = (JSON.parse(readFileSync(file, "utf8")) as { results: ScenarioResult[] }).results;
        } catch {
          throw new Error(`round ${round} on ${tree.label}: the bench process wrote no results (exit ${r.status})`);
        }
        for (const s of results) if (s.status !== "ok") console.log(`compare: ${s.name} ${s.status} on ${tree.label}: ${(s.reason ?? "").split("\n")[0]}`);
        runs.push({ round, tree, results, load: [load[0]!, os.loadavg()[0]!] });
      }
    }
  } finally {
    for (const { vhost, env } of isolation.values()) {
      await vhost?.remove().catch((err: unknown) => console.log(`compare: could not delete a RabbitMQ vhost: ${(err as Error).message}`));
      await flushRedisDb(env.TEST_REDIS_URL!);
    }
    b.remove();
  }

  // One table per scenario: every metric both trees reported, per round, and the median ratio.
  const lines: string[] = [`# ${a.label} vs ${b.label}: ${names.join(", ")}, ${rounds} round(s)${o.quick ? " (quick: numbers mean little)" : ""}`, ""];
  const perRun = runs.map((r) => ({ ...r, metrics: metricsOf(r.results) }));
  const keys = [...new Set(perRun.flatMap((r) => [...r.metrics.keys()]))];
  const summary: { scenario: string; metric: string; unit: string; working: number[]; rev: number[]; ratios: number[]; medianRatio: number }[] = [];
  for (const scenario of names) {
    const mine = keys.filter((k) => k.startsWith(`${scenario}\u0000`));
    if (!mine.length) continue;
    lines.push(`## ${scenario}`, "", `| metric | ${Array.from({ length: rounds }, (_, i) => `round ${i + 1}: working / rev`).join(" | ")} | median ratio (working ÷ rev) |`, `|---|${"---:|".repeat(rounds + 1)}`);
    for (const k of mine) {
      const at = (round: number, tree: Tree) => perRun.find((r) => r.round === round && r.tree === tree)?.metrics.get(k);
      const cells: string[] = [];
      const working: number[] = [];
      const other: number[] = [];
      const ratios: number[] = [];
      let unit = "";
      for (let round = 1; round <= rounds; round++) {
        const x = at(round, a);
        const y = at(round, b);
        unit ||= x?.unit ?? y?.unit ?? "";
        if (x) working.push(x.value);
        if (y) other.push(y.value);
        if (x && y && y.value !== 0) ratios.push(x.value / y.value);
        cells.push(`${x ? fmt(x.value) : "—"} / ${y ? fmt(y.value) : "—"}`);
      }
      const name = k.split("\u0000")[1]!;
      const medianRatio = ratios.length ? median(ratios) : NaN;
      summary.push({ scenario, metric: name, unit, working, rev: other, ratios, medianRatio });
      lines.push(`| ${name}${unit ? ` (${unit})` : ""} | ${cells.join(" | ")} | ${Number.isFinite(medianRatio) ? `**${medianRatio.toFixed(3)}**` : "—"} |`);
    }
    lines.push("");
  }
  const loads = runs.map((r) => `${r.tree === a ? "working" : "rev"} r${r.round} ${r.load.map((x) => x.toFixed(1)).join("→")}`).join(", ");
  lines.push(`_1-min load average per run: ${loads} on ${os.availableParallelism()} CPUs_`, "");
  const md = lines.join("\n");
  writeFileSync(join(dir, "compare.md"), md);
  writeFileSync(join(dir, "compare.json"), JSON.stringify({ working: a.label, rev: b.label, scenarios: names, rounds, quick: o.quick, summary }, null, 2) + "\n");
  console.log(`\n${md}\ncompare: ${join(dir, "compare.md")}`);
}

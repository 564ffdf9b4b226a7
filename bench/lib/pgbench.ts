/**
 * pgbench running given SQL scripts (the floor of a database-bound RPC: the same transaction with
 * no service in front). Latencies from its per-transaction log (--log), every transaction counted.
 */
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { LoadResult } from "./h2load.js";
import { latency } from "./stats.js";

export function pgbenchProblem(): string | undefined {
  return spawnSync("pgbench", ["--version"]).status === 0 ? undefined : "pgbench is not installed; install it with: apt-get install -y postgresql-contrib (or postgresql-client)";
}

export interface PgbenchOptions {
  url: string;
  /** Script texts, run with equal weight. */
  scripts: string[];
  clients: number;
  /** Query protocol (pgbench -M): "prepared" plans each statement once per connection. Default "extended". */
  mode?: "simple" | "extended" | "prepared";
  threads: number;
  /** Transactions per client. */
  transactions: number;
  timeoutMs: number;
}

export async function pgbench(o: PgbenchOptions): Promise<LoadResult> {
  const dir = mkdtempSync(join(tmpdir(), "crm-bench-pgbench-"));
  try {
    const u = new URL(o.url);
    const args = ["-n", "-M", o.mode ?? "extended", "-c", String(o.clients), "-j", String(o.threads), "-t", String(o.transactions), "--log", `--log-prefix=${join(dir, "tx")}`];
    o.scripts.forEach((text, i) => {
      const file = join(dir, `script${i}.sql`);
      writeFileSync(file, text);
      args.push("-f", `${file}@1`);
    });
    args.push("-h", u.hostname, "-p", u.port || "5432", "-U", decodeURIComponent(u.username || "postgres"), u.pathname.slice(1));
    const { code, out } = await new Promise<{ code: number | null; out: string }>((resolve) => {
      const p = spawn("pgbench", args, { cwd: dir, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...(u.password ? { PGPASSWORD: decodeURIComponent(u.password) } : {}) } });
      let text = "";
      p.stdout.on("data", (d) => (text += d));
      p.stderr.on("data", (d) => (text += d));
      const t = setTimeout(() => p.kill("SIGKILL"), o.timeoutMs);
      p.once("exit", (c) => (clearTimeout(t), resolve({ code: c, out: text })));
    });
    if (code !== 0) throw new Error(`pgbench ${code === null ? `was stopped after the ${o.timeoutMs} ms bound` : `exited ${code}`}:\n${out.slice(-1500)}`);
    const times: number[] = [];
    let failed = 0;
    let first = Infinity;
    let last = 0;
    for (const f of readdirSync(dir).filter((n) => n.startsWith("tx."))) {
      for (const line of readFileSync(join(dir, f), "utf8").split("\n")) {
        if (!line) continue;
        const c = line.split(" ");
        const us = Number(c[2]);
        if (!Number.isFinite(us)) {
          failed++;
          continue;
        }
        times.push(us / 1000);
        const end = Number(c[4]) * 1e6 + Number(c[5]);
        first = Math.min(first, end - us);
        last = Math.max(last, end);
      }
    }
    const seconds = (last - first) / 1e6;
    const tps = Number(/tps = ([\d.]+)/.exec(out)?.[1] ?? NaN);
    return {
      tool: `pgbench -c${o.clients} -j${o.threads} -M ${o.mode ?? "extended"}`,
      requests: times.length + failed,
      ok: times.length,
      errors: failed,
      seconds,
      rps: Number.isFinite(tps) ? tps : times.length / seconds,
      ...latency(times),
      statuses: {},
      samplesMs: times,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * h2load (nghttp2-client) as the load generator for unary HTTP calls: HTTP/2 (h2c or TLS) or
 * HTTP/1.1 (--h1). Percentiles come from its per-request log (--log-file), every request counted.
 * Bounded by the request count and by a wall-clock limit (the run is killed and reported failed).
 */
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { latency } from "./stats.js";

export interface LoadResult {
  tool: string;
  requests: number;
  ok: number;
  errors: number;
  seconds: number;
  rps: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  statuses: Record<string, number>;
  /** Every successful call's latency (for combining rounds). */
  samplesMs?: number[];
}

/** Rounds of one variant as one result: totals add up, percentiles over every sample of every round. */
export function combine(rounds: LoadResult[]): LoadResult {
  const samples = rounds.flatMap((r) => r.samplesMs ?? []);
  const ok = rounds.reduce((a, r) => a + r.ok, 0);
  const seconds = rounds.reduce((a, r) => a + r.seconds, 0);
  const statuses: Record<string, number> = {};
  for (const r of rounds) for (const [k, v] of Object.entries(r.statuses)) statuses[k] = (statuses[k] ?? 0) + v;
  return {
    tool: rounds[0]?.tool ?? "",
    requests: rounds.reduce((a, r) => a + r.requests, 0),
    ok,
    errors: rounds.reduce((a, r) => a + r.errors, 0),
    seconds,
    rps: ok / seconds,
    ...latency(samples),
    statuses,
    samplesMs: samples,
  };
}

export function h2loadProblem(): string | undefined {
  const r = spawnSync("h2load", ["--version"], { encoding: "utf8" });
  return r.status === 0 ? undefined : "h2load is not installed; install it with: apt-get install -y nghttp2-client";
}

export interface H2loadOptions {
  url: string;
  requests: number;
  clients: number;
  /** Concurrent streams per connection (HTTP/2); HTTP/1.1 posts never pipeline. */
  streams: number;
  headers?: Record<string, string>;
  /** POST body (omit for GET). */
  body?: Uint8Array | string;
  h1?: boolean;
  timeoutMs: number;
  /** Accept these HTTP statuses as success (default 2xx). */
  okStatus?: (status: number) => boolean;
  /** Open loop: each client starts this many requests per second (h2load --rps), whatever the answers' latency. */
  rps?: number;
  /**
   * Run for this many seconds instead of `requests` (h2load -D), after `warmUpSeconds` on the same
   * connections that h2load leaves out of its counts and log (so the service sees more requests).
   */
  duration?: { seconds: number; warmUpSeconds: number };
}

export async function h2load(o: H2loadOptions): Promise<LoadResult> {
  const dir = mkdtempSync(join(tmpdir(), "crm-bench-h2load-"));
  try {
    const logFile = join(dir, "requests.log");
    const count = o.duration ? ["-D", String(o.duration.seconds), `--warm-up-time=${o.duration.warmUpSeconds}`] : ["-n", String(o.requests)];
    const args = [...count, "-c", String(o.clients), "-m", String(o.streams), "--log-file", logFile];
    if (o.h1) args.push("--h1");
    if (o.rps) args.push(`--rps=${o.rps}`);
    for (const [k, v] of Object.entries(o.headers ?? {})) args.push("-H", `${k}: ${v}`);
    if (o.body !== undefined) {
      const bodyFile = join(dir, "body");
      writeFileSync(bodyFile, o.body);
      args.push("-d", bodyFile);
    }
    args.push(o.url);
    const tool = `h2load -c${o.clients}${o.h1 ? " --h1" : ` -m${o.streams}`}${o.rps ? ` --rps=${+o.rps.toFixed(2)}` : ""}`;
    const started = performance.now();
    const { code, out } = await new Promise<{ code: number | null; out: string }>((resolve) => {
      const p = spawn("h2load", args, { stdio: ["ignore", "pipe", "pipe"] });
      let text = "";
      p.stdout.on("data", (d) => (text += d));
      p.stderr.on("data", (d) => (text += d));
      const t = setTimeout(() => p.kill("SIGKILL"), o.timeoutMs);
      p.once("exit", (c) => (clearTimeout(t), resolve({ code: c, out: text })));
    });
    const wall = (performance.now() - started) / 1000;
    if (code !== 0) throw new Error(`h2load ${code === null ? `was stopped after the ${o.timeoutMs} ms bound` : `exited ${code}`} on ${o.url}:\n${out.slice(-1500)}`);
    const ok = o.okStatus ?? ((s: number) => s >= 200 && s < 300);
    const statuses: Record<string, number> = {};
    const times: number[] = [];
    let good = 0;
    let first = Infinity;
    let last = 0;
    for (const line of readFileSync(logFile, "utf8").split("\n")) {
      if (!line) continue;
      const [startUs, status, elapsedUs] = line.split("\t").map(Number) as [number, number, number];
      statuses[status] = (statuses[status] ?? 0) + 1;
      if (status > 0 && ok(status)) {
        good++;
        times.push(elapsedUs / 1000);
      }
      first = Math.min(first, startUs);
      last = Math.max(last, startUs + elapsedUs);
    }
    const done = Number(/requests: \d+ total, \d+ started, (\d+) done/.exec(out)?.[1] ?? times.length);
    const seconds = times.length ? (last - first) / 1e6 : wall;
    return { tool, requests: done, ok: good, errors: done - good, seconds, rps: good / seconds, ...latency(times), statuses, samplesMs: times };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Several h2load runs at the same time (e.g. one per chat): one result, throughput added up. */
export async function h2loadParallel(runs: H2loadOptions[]): Promise<LoadResult> {
  const results = await Promise.all(runs.map((r) => h2load(r)));
  const c = combine(results);
  const seconds = Math.max(...results.map((r) => r.seconds));
  return { ...c, seconds, rps: c.ok / seconds, tool: `${results.length} × ${results[0]?.tool ?? "h2load"}` };
}

/** A gRPC length-prefixed message (uncompressed). */
export function grpcFrame(message: Uint8Array): Uint8Array {
  const out = new Uint8Array(5 + message.length);
  new DataView(out.buffer).setUint32(1, message.length);
  out.set(message, 5);
  return out;
}

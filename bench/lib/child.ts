/**
 * Server processes under test: spawned, waited for by a line they print, stopped for sure.
 * Every child is killed when the bench process exits, whatever happened.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { resolve } from "node:path";
import { createInterface } from "node:readline";

/** This checkout (the harness's own code). */
export const benchRoot = new URL("../../", import.meta.url).pathname.replace(/\/$/, "");
/**
 * The tree whose servers a scenario starts (spawned with it as the working directory, bundles built
 * from it): this checkout, or with `npm run bench -- --compare REV` the other commit's worktree
 * (BENCH_ROOT, set by bench/compare.ts for each run).
 */
export const repoRoot = process.env.BENCH_ROOT ? resolve(process.env.BENCH_ROOT) : benchRoot;

/** node flags for children: `--cpu-prof` into BENCH_CPU_PROF (set by `npm run bench -- --profile`). */
export function nodeFlags(name: string): string[] {
  const dir = process.env.BENCH_CPU_PROF;
  return dir ? ["--cpu-prof", `--cpu-prof-dir=${dir}${name}`] : [];
}

/** `node --conditions=source --import tsx <file>` (how the repo runs TypeScript). */
export const tsNode = (file: string, ...args: string[]) => ({ cmd: process.execPath, args: [...nodeFlags(file.split("/").pop()!.replace(/\.[mc]?[jt]s$/, "")), "--conditions=source", "--import", "tsx", file, ...args] });

const live = new Set<ChildProcess>();
process.once("exit", () => {
  for (const c of live) c.kill("SIGKILL");
});
for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.once(sig, () => {
    for (const c of live) c.kill("SIGKILL");
    process.exit(130);
  });
}

export interface Child<T> {
  pid: number;
  /** What `ready` returned for the line that made the child ready. */
  value: T;
  /** Milliseconds from spawn to the ready line. */
  readyMs: number;
  /** The last lines it printed (stdout and stderr), for error messages. */
  tail(): string;
  onLine(fn: (line: string) => void): void;
  exited: Promise<number | null>;
  stop(timeoutMs?: number): Promise<void>;
}

export interface ChildOptions<T> {
  name: string;
  cmd: string;
  args: string[];
  env?: Record<string, string | undefined>;
  cwd?: string;
  /** Returns a value when `line` says the child is ready. */
  ready: (line: string) => T | undefined;
  timeoutMs: number;
}

export function startChild<T>(o: ChildOptions<T>): Promise<Child<T>> {
  const started = performance.now();
  const proc = spawn(o.cmd, o.args, { cwd: o.cwd ?? repoRoot, env: { ...process.env, ...o.env }, stdio: ["ignore", "pipe", "pipe"] });
  live.add(proc);
  const lines: string[] = [];
  const listeners: ((line: string) => void)[] = [];
  const exited = new Promise<number | null>((resolve) => proc.once("exit", (code) => (live.delete(proc), resolve(code))));
  const tail = () => lines.slice(-15).join("\n");
  return new Promise((resolve, reject) => {
    let done = false;
    const timer = setTimeout(() => {
      if (done) return;
      done = true;
      proc.kill("SIGKILL");
      reject(new Error(`${o.name} did not become ready within ${o.timeoutMs} ms; last output:\n${tail()}`));
    }, o.timeoutMs);
    const onLine = (line: string) => {
      lines.push(line);
      if (lines.length > 200) lines.shift();
      for (const l of listeners) l(line);
      if (done) return;
      let value: T | undefined;
      try {
        value = o.ready(line);
      } catch {
        value = undefined;
      }
      if (value === undefined) return;
      done = true;
      clearTimeout(timer);
      resolve({
        pid: proc.pid!,
        value,
        readyMs: performance.now() - started,
        tail,
        onLine: (fn) => listeners.push(fn),
        exited,
        async stop(timeoutMs = 10_000) {
          if (proc.exitCode !== null || proc.signalCode !== null) return;
          proc.kill("SIGTERM");
          const t = setTimeout(() => proc.kill("SIGKILL"), timeoutMs);
          await exited;
          clearTimeout(t);
        },
      });
    };
    createInterface({ input: proc.stdout! }).on("line", onLine);
    createInterface({ input: proc.stderr! }).on("line", onLine);
    void exited.then((code) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      reject(new Error(`${o.name} exited (code ${code}) before it was ready; last output:\n${tail()}`));
    });
  });
}

/** `{"bench_ready": true, "port": N, …}` — the line the bench's own servers print. */
export function benchReady(line: string): { port: number } | undefined {
  if (!line.startsWith("{")) return undefined;
  const v = JSON.parse(line) as { bench_ready?: boolean; port?: number };
  return v.bench_ready && typeof v.port === "number" ? { port: v.port } : undefined;
}

/** The all-in-one's pino line `ready: CRM all-in-one at URL` → its url and the ms it reports. */
export function allInOneReady(line: string): { url: string; ms: number } | undefined {
  if (!line.startsWith("{")) return undefined;
  const v = JSON.parse(line) as { msg?: string; url?: string; ms?: number };
  return typeof v.msg === "string" && v.msg.startsWith("ready:") && v.url ? { url: v.url, ms: Number(v.ms) } : undefined;
}

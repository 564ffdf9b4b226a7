/**
 * CPU time and memory of server processes, read from /proc (Linux): utime+stime of
 * /proc/<pid>/stat, VmRSS and VmHWM of /proc/<pid>/status. A process's threads (libuv pool,
 * argon2, tsx's loader) are included; `withDescendants` adds child processes (nginx workers).
 */
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync, readlinkSync } from "node:fs";

let tick: number | undefined;
function clockTick(): number {
  if (tick === undefined) {
    try {
      tick = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
    } catch {
      tick = 100;
    }
  }
  return tick;
}

export interface ProcSample {
  /** user + system CPU time in ms since the process started. */
  cpuMs: number;
  rssBytes: number;
  /** Peak RSS (VmHWM). */
  peakBytes: number;
}

function statFields(pid: number): string[] | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, "utf8");
    // comm may hold spaces and parentheses: fields start after the LAST ')'.
    return text.slice(text.lastIndexOf(")") + 2).split(" ");
  } catch {
    return undefined;
  }
}

export function sample(pid: number): ProcSample {
  const f = statFields(pid);
  if (!f) return { cpuMs: 0, rssBytes: 0, peakBytes: 0 };
  // After comm: state(0) ppid(1) … utime(11) stime(12)
  const cpuMs = ((Number(f[11]) + Number(f[12])) * 1000) / clockTick();
  let rssBytes = 0;
  let peakBytes = 0;
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    rssBytes = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) * 1024;
    peakBytes = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0) * 1024;
  } catch {
    // the process ended between the two reads
  }
  return { cpuMs, rssBytes, peakBytes };
}

/**
 * Private memory of a process: its anonymous resident pages (/proc/<pid>/smaps_rollup), i.e. RSS
 * without the file pages (the node binary's code, shared by every node process on the machine).
 */
export function anonBytes(pid: number): number {
  try {
    return Number(/^Anonymous:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, "utf8"))?.[1] ?? 0) * 1024;
  } catch {
    return 0;
  }
}

/** pid and every live descendant (scans /proc once). */
export function withDescendants(root: number): number[] {
  const parent = new Map<number, number>();
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const f = statFields(Number(name));
    if (f) parent.set(Number(name), Number(f[1]));
  }
  const out = [root];
  for (let i = 0; i < out.length; i++) for (const [pid, ppid] of parent) if (ppid === out[i]) out.push(pid);
  return out;
}

/** Sum over processes (RSS and peaks add up: they are separate processes). */
export function sampleAll(pids: number[]): ProcSample {
  const total = { cpuMs: 0, rssBytes: 0, peakBytes: 0 };
  for (const pid of pids) {
    const s = sample(pid);
    total.cpuMs += s.cpuMs;
    total.rssBytes += s.rssBytes;
    total.peakBytes += s.peakBytes;
  }
  return total;
}

/** CPU spent by `pids` while `fn` runs, and their RSS after it. */
export async function measured<T>(pids: () => number[], fn: () => Promise<T>): Promise<{ value: T; cpuMs: number; rssBytes: number; peakBytes: number; selfCpuMs: number }> {
  const list = pids();
  const before = sampleAll(list);
  const self = process.cpuUsage();
  const value = await fn();
  const selfUsed = process.cpuUsage(self);
  const after = sampleAll(list);
  return { value, cpuMs: after.cpuMs - before.cpuMs, rssBytes: after.rssBytes, peakBytes: after.peakBytes, selfCpuMs: (selfUsed.user + selfUsed.system) / 1000 };
}

export const mb = (bytes: number) => bytes / (1024 * 1024);

/** pids whose command name (/proc/<pid>/comm) is `comm` (e.g. every PostgreSQL process, "beam.smp"). */
export function pidsByComm(comm: string): number[] {
  const out: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (readFileSync(`/proc/${name}/comm`, "utf8").trim() === comm) out.push(Number(name));
    } catch {
      // gone
    }
  }
  return out;
}

/** CPU ms of every process named `comm` now (processes that come and go between samples are missed). */
export const cpuOfComm = (comm: string) => sampleAll(pidsByComm(comm)).cpuMs;

/** The pid listening on TCP `port` (127.0.0.1 or any address), found through /proc/net/tcp{,6} socket inodes. */
export function pidOfPort(port: number): number | undefined {
  const inodes = new Set<string>();
  for (const file of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    let text = "";
    try {
      text = readFileSync(file, "utf8");
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      const c = line.trim().split(/\s+/);
      if (c.length < 10 || c[3] !== "0A") continue; // LISTEN
      if (parseInt(c[1]!.split(":")[1]!, 16) === port) inodes.add(c[9]!);
    }
  }
  if (!inodes.size) return undefined;
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${name}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${name}/fd/${fd}`));
        if (m && inodes.has(m[1]!)) return Number(name);
      } catch {
        // fd closed meanwhile
      }
    }
  }
  return undefined;
}

/** PostgreSQL backends serving database `db` (their title: "postgres: 15/main: USER DB HOST(PORT) STATE"). */
export function postgresBackends(db: string): number[] {
  const out: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const title = readFileSync(`/proc/${name}/cmdline`, "utf8").replace(/\0/g, " ");
      if (title.startsWith("postgres:") && title.split(" ").includes(db)) out.push(Number(name));
    } catch {
      // gone
    }
  }
  return out;
}

/** CPU ms of the backends of database `db` now (a backend that ended between samples is missed). */
export const cpuOfDb = (db: string) => sampleAll(postgresBackends(db)).cpuMs;

export const dbNameOf = (url: string) => new URL(url).pathname.slice(1);

/**
 * CPU used by a changing set of processes (e.g. pgbench's backends, which exit with it): polls
 * `select()` every `everyMs` and keeps each pid's last reading, so a process that ends still
 * counts up to its last poll. stop() returns the CPU ms used since start.
 */
export function trackCpu(select: () => number[], everyMs = 200) {
  const first = new Map<number, number>();
  const last = new Map<number, number>();
  const poll = () => {
    for (const pid of select()) {
      const cpu = sample(pid).cpuMs;
      if (!first.has(pid)) first.set(pid, cpu);
      last.set(pid, cpu);
    }
  };
  poll();
  const started = new Set(first.keys());
  const timer = setInterval(poll, everyMs);
  return {
    stop(): number {
      clearInterval(timer);
      poll();
      let total = 0;
      // Processes there at start count from their reading then; ones that appeared later from 0.
      for (const [pid, cpu] of last) total += cpu - (started.has(pid) ? first.get(pid)! : 0);
      return total;
    },
  };
}

/** CPU ms per thread group of a process: "main" (tid = pid), else the thread's name (libuv-worker, V8 DefaultWorke…). */
export function threadCpu(pid: number): Record<string, number> {
  const out: Record<string, number> = {};
  let tids: string[] = [];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tids) {
    try {
      const text = readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8");
      const comm = text.slice(text.indexOf("(") + 1, text.lastIndexOf(")"));
      const f = text.slice(text.lastIndexOf(")") + 2).split(" ");
      const name = Number(tid) === pid ? "main" : comm;
      out[name] = (out[name] ?? 0) + ((Number(f[11]) + Number(f[12])) * 1000) / clockTick();
    } catch {
      // thread ended
    }
  }
  return out;
}

export function diffThreads(after: Record<string, number>, before: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(after)) out[k] = v - (before[k] ?? 0);
  return out;
}

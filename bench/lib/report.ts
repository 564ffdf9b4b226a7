/** What a scenario returns, and how results become JSON and a markdown table. */
import { execFileSync } from "node:child_process";
import os from "node:os";
import { round } from "./stats.js";

export interface Row {
  label: string;
  /** The floor this scenario's ratios are taken against. */
  floor?: boolean;
  tool: string;
  requests: number;
  errors: number;
  rps: number;
  p50Ms: number;
  p99Ms: number;
  /** CPU time of the server process(es) per successful request (load generator excluded). */
  cpuMsPerReq?: number | undefined;
  /** RSS of the server process(es) after the run. */
  rssMB?: number | undefined;
  note?: string;
}

export interface Check {
  label: string;
  value: number;
  unit: string;
  target: string;
  /** undefined: informational (no target in the issue). */
  met?: boolean;
}

/** A free-form table (start-up times, fan-out delivery…) printed after the rows. */
export interface Table {
  title: string;
  columns: string[];
  rows: (string | number | undefined)[][];
}

export interface ScenarioResult {
  name: string;
  title: string;
  status: "ok" | "skipped" | "failed";
  reason?: string;
  startedAt: string;
  seconds: number;
  rows: Row[];
  checks: Check[];
  notes: string[];
  tables?: Table[];
  /** 1-minute load average when the scenario started and ended (how busy the shared machine was). */
  load?: [number, number];
}

export interface Ctx {
  /** Small bounds (the smoke test): proves the harness, numbers mean little. */
  quick: boolean;
  log(msg: string): void;
}

export interface Scenario {
  name: string;
  title: string;
  /** undefined when it can run here; else one line saying what is missing. */
  missing?(): string | undefined | Promise<string | undefined>;
  run(ctx: Ctx): Promise<Omit<ScenarioResult, "name" | "title" | "status" | "startedAt" | "seconds">>;
}

export interface Machine {
  nproc: number;
  cpu: string;
  memory: string;
  node: string;
  os: string;
  loadAverage: number[];
}

export function machine(): Machine {
  let memory = `${Math.round(os.totalmem() / 2 ** 30)} GiB`;
  try {
    memory = execFileSync("free", ["-h"], { encoding: "utf8" }).split("\n").find((l) => l.startsWith("Mem:"))?.replace(/\s+/g, " ").trim() ?? memory;
  } catch {
    // free is not installed: keep os.totalmem
  }
  return {
    nproc: os.availableParallelism(),
    cpu: os.cpus()[0]?.model ?? "unknown",
    memory,
    node: process.version,
    os: `${os.type()} ${os.release()}`,
    loadAverage: os.loadavg().map((x) => Number(x.toFixed(2))),
  };
}

const cell = (x: number | undefined, digits?: number) => (x === undefined || Number.isNaN(x) ? "—" : digits !== undefined ? x.toFixed(digits) : String(round(x)));

/** Every check that has a target, across scenarios: the summary at the top of the results. */
export function targets(results: ScenarioResult[]): string {
  const out = ["| scenario | check | measured | target | |", "|---|---|---:|---|---|"];
  for (const r of results) {
    if (r.status !== "ok") {
      out.push(`| ${r.name} | — | — | — | ${r.status}: ${(r.reason ?? "").split("\n")[0]} |`);
      continue;
    }
    for (const c of r.checks) if (c.met !== undefined) out.push(`| ${r.name} | ${c.label} | ${cell(c.value)}${c.unit ? ` ${c.unit}` : ""} | ${c.target} | ${c.met ? "met" : "**missed**"} |`);
  }
  return out.join("\n");
}

export function markdown(results: ScenarioResult[]): string {
  const out: string[] = [];
  for (const r of results) {
    out.push(`### ${r.name}: ${r.title}`, "");
    if (r.status !== "ok") {
      out.push(`**${r.status}**: ${r.reason ?? ""}`, "");
      continue;
    }
    if (r.rows.length) {
      out.push("| variant | tool | requests | errors | req/s | p50 ms | p99 ms | server CPU ms/req | server RSS MB |", "|---|---|---:|---:|---:|---:|---:|---:|---:|");
      for (const row of r.rows) {
        const label = `${row.floor ? "**floor**: " : ""}${row.label}${row.note ? ` (${row.note})` : ""}`;
        out.push(`| ${label} | ${row.tool} | ${row.requests} | ${row.errors} | ${cell(row.rps)} | ${cell(row.p50Ms)} | ${cell(row.p99Ms)} | ${cell(row.cpuMsPerReq)} | ${cell(row.rssMB)} |`);
      }
      out.push("");
    }
    for (const t of r.tables ?? []) {
      if (t.title) out.push(`${t.title}`, "");
      out.push(`| ${t.columns.join(" | ")} |`, `|${t.columns.map((_, i) => (i ? "---:" : "---")).join("|")}|`);
      for (const row of t.rows) out.push(`| ${row.map((c) => (typeof c === "number" ? cell(c) : (c ?? "—"))).join(" | ")} |`);
      out.push("");
    }
    for (const c of r.checks) {
      const mark = c.met === undefined ? "" : c.met ? " — **met**" : " — **MISSED**";
      out.push(`- ${c.label}: **${cell(c.value)}${c.unit ? ` ${c.unit}` : ""}** (target ${c.target})${mark}`);
    }
    for (const n of r.notes) out.push(`- ${n}`);
    out.push("", `_ran ${r.startedAt}, ${r.seconds.toFixed(0)} s${r.load ? `, 1-min load average ${r.load[0].toFixed(1)} → ${r.load[1].toFixed(1)} on ${os.availableParallelism()} CPUs` : ""}_`, "");
  }
  return out.join("\n");
}

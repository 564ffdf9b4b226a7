/**
 * `npm run bench` runs every scenario; `npm run bench -- rpc login` runs those by name;
 * `--quick` uses tiny bounds (proves the harness, numbers mean little); `--list` lists them;
 * `--profile` makes every server process write a CPU profile (bench/.tmp/profiles/…);
 * `--md` only rewrites results/latest.md from results/latest.json.
 * `--compare REV` runs the scenarios alternately on the working tree and on commit REV (bench/compare.ts);
 * `--out FILE` writes this run's results to FILE instead of results/latest.* (what --compare's runs do).
 * Results: bench/results/latest.json (scenarios not run this time keep their last result) and
 * bench/results/latest.md (the table pasted into bench/README.md).
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import { machine, markdown, targets, type Ctx, type Machine, type ScenarioResult } from "./lib/report.js";
import { scenarios } from "./scenarios/index.js";

export async function runScenario(name: string, ctx: Ctx): Promise<ScenarioResult> {
  const s = scenarios.find((x) => x.name === name);
  if (!s) throw new Error(`unknown scenario ${JSON.stringify(name)}: use one of ${scenarios.map((x) => x.name).join(", ")}`);
  const startedAt = new Date().toISOString();
  const t0 = performance.now();
  const base = { name: s.name, title: s.title, startedAt, rows: [], checks: [], notes: [] };
  const missing = await s.missing?.();
  if (missing) return { ...base, status: "skipped", reason: missing, seconds: 0 };
  const load0 = os.loadavg()[0]!;
  const load = (): [number, number] => [load0, os.loadavg()[0]!];
  try {
    const r = await s.run(ctx);
    return { ...base, ...r, status: "ok", seconds: (performance.now() - t0) / 1000, load: load() };
  } catch (err) {
    return { ...base, status: "failed", reason: String((err as Error)?.stack ?? err), seconds: (performance.now() - t0) / 1000, load: load() };
  }
}

interface Saved {
  machine: Machine;
  updatedAt: string;
  scenarios: (ScenarioResult & { machine: Machine })[];
}

async function cli() {
  const args = process.argv.slice(2);
  if (args.includes("--list")) {
    for (const s of scenarios) console.log(`${s.name.padEnd(10)} ${s.title}`);
    return;
  }
  const dir = new URL("./results/", import.meta.url).pathname;
  if (args.includes("--md")) {
    // Rewrites results/latest.md from results/latest.json (after a change to the table layout).
    const saved = JSON.parse(readFileSync(`${dir}latest.json`, "utf8")) as Saved;
    writeFileSync(`${dir}latest.md`, `### Targets\n\n${targets(saved.scenarios)}\n\n${markdown(saved.scenarios)}\n`);
    console.log(`${dir}latest.md`);
    return;
  }
  const valueOf = (flag: string) => {
    const i = args.indexOf(flag);
    if (i < 0) return undefined;
    const v = args[i + 1];
    if (!v || v.startsWith("-")) throw new Error(`${flag} needs a value`);
    args.splice(i, 2);
    return v;
  };
  const compareWith = valueOf("--compare");
  const rounds = valueOf("--rounds");
  const out = valueOf("--out");
  if (compareWith) {
    const { compare } = await import("./compare.js");
    await compare(compareWith, args.filter((a) => !a.startsWith("-")), { quick: args.includes("--quick"), rounds: rounds ? Number(rounds) : undefined, profile: args.includes("--profile") });
    return;
  }
  const quick = args.includes("--quick");
  if (args.includes("--profile")) {
    // Every server process a scenario starts writes a V8 CPU profile here when it exits (summarise with bench/profile.ts).
    process.env.BENCH_CPU_PROF = new URL(`./.tmp/profiles/${new Date().toISOString().replace(/[:.]/g, "-")}/`, import.meta.url).pathname;
    console.log(`CPU profiles: ${process.env.BENCH_CPU_PROF}`);
  }
  const names = args.filter((a) => !a.startsWith("-"));
  const chosen = names.length ? names : scenarios.map((s) => s.name);
  for (const n of chosen) if (!scenarios.some((s) => s.name === n)) throw new Error(`unknown scenario ${JSON.stringify(n)}: use one of ${scenarios.map((x) => x.name).join(", ")}`);
  const m = machine();
  console.log(`bench: ${chosen.join(", ")}${quick ? " (quick)" : ""} on ${m.nproc} CPUs (${m.cpu}), node ${m.node}, load average ${m.loadAverage.join(" ")}`);
  const results: ScenarioResult[] = [];
  for (const name of chosen) {
    const ctx: Ctx = { quick, log: (msg) => console.log(`  [${name}] ${msg}`) };
    console.log(`\n== ${name}`);
    const r = await runScenario(name, ctx);
    if (r.status !== "ok") console.log(`  ${r.status}: ${r.reason}`);
    results.push(r);
  }
  if (out) {
    writeFileSync(out, JSON.stringify({ machine: m, results }, null, 2) + "\n");
    if (results.some((r) => r.status === "failed")) process.exitCode = 1;
    return;
  }
  mkdirSync(dir, { recursive: true });
  const file = `${dir}latest.json`;
  const saved: Saved = existsSync(file) ? (JSON.parse(readFileSync(file, "utf8")) as Saved) : { machine: m, updatedAt: "", scenarios: [] };
  const profiling = args.includes("--profile");
  if (!quick && !profiling) {
    const byName = new Map(saved.scenarios.map((s) => [s.name, s]));
    for (const r of results) byName.set(r.name, { ...r, machine: machine() });
    const order = scenarios.map((s) => s.name);
    saved.scenarios = [...byName.values()].sort((a, b) => order.indexOf(a.name) - order.indexOf(b.name));
    saved.machine = m;
    saved.updatedAt = new Date().toISOString();
    writeFileSync(file, JSON.stringify(saved, null, 2) + "\n");
    writeFileSync(`${dir}latest.md`, `### Targets\n\n${targets(saved.scenarios)}\n\n${markdown(saved.scenarios)}\n`);
  }
  console.log("\n" + markdown(results));
  if (!quick && !profiling) console.log(`results: ${file} and ${dir}latest.md`);
  if (results.some((r) => r.status === "failed")) process.exitCode = 1;
}

if (import.meta.url === `file://${process.argv[1]}`) await cli();

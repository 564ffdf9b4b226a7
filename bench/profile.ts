/**
 * Summarises a V8 .cpuprofile (from `node --cpu-prof`): self time by function and by package,
 * so a README can show where a server's CPU goes; with --stalls, what ran in its long busy stretches.
 *   node --import tsx bench/profile.ts PROFILE.cpuprofile [top=25]
 *   node --import tsx bench/profile.ts --stalls[=50] PROFILE.cpuprofile [top=25]
 */
import { readFileSync } from "node:fs";

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}
interface Profile {
  nodes: Node[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

export interface ProfileSummary {
  totalMs: number;
  functions: { name: string; where: string; ms: number; pct: number }[];
  /** Self time plus callees' (synchronous stacks only: an await starts a new stack). */
  inclusive: { name: string; where: string; ms: number; pct: number }[];
  packages: { name: string; ms: number; pct: number }[];
}

function packageOf(url: string): string {
  if (!url) return "(native/V8)";
  if (url.startsWith("node:")) return url.split("/")[0]!;
  const nm = url.lastIndexOf("node_modules/");
  if (nm >= 0) {
    const rest = url.slice(nm + 13).split("/");
    return rest[0]!.startsWith("@") ? `${rest[0]}/${rest[1]}` : rest[0]!;
  }
  const m = /\/(packages|services|bench)\/([^/]+)\//.exec(url);
  return m ? `${m[1]}/${m[2]}` : url.replace(/^file:\/\//, "");
}

export function summarise(p: Profile, top = 25): ProfileSummary {
  const self = new Map<number, number>();
  if (p.samples && p.timeDeltas) {
    for (let i = 0; i < p.samples.length; i++) self.set(p.samples[i]!, (self.get(p.samples[i]!) ?? 0) + (p.timeDeltas[i] ?? 0) / 1000);
  }
  const byFn = new Map<string, { name: string; where: string; ms: number }>();
  const byPkg = new Map<string, number>();
  let total = 0;
  for (const n of p.nodes) {
    const ms = self.get(n.id) ?? 0;
    if (!ms) continue;
    const name = n.callFrame.functionName || "(anonymous)";
    if (name === "(idle)") continue;
    total += ms;
    const where = `${n.callFrame.url.replace(/^file:\/\/.*?\/(node_modules|packages|services|bench)\//, "$1/")}:${n.callFrame.lineNumber + 1}`;
    const key = `${name} ${where}`;
    const e = byFn.get(key) ?? { name, where, ms: 0 };
    e.ms += ms;
    byFn.set(key, e);
    const pkg = packageOf(n.callFrame.url);
    byPkg.set(pkg, (byPkg.get(pkg) ?? 0) + ms);
  }
  const pct = (ms: number) => (100 * ms) / total;
  // Inclusive time: each function counted once per stack (recursion is not double-counted).
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const keyOf = (n: Node) => `${n.callFrame.functionName || "(anonymous)"} ${n.callFrame.url.replace(/^file:\/\/.*?\/(node_modules|packages|services|bench)\//, "$1/")}:${n.callFrame.lineNumber + 1}`;
  const subtree = new Map<number, number>();
  const sumOf = (id: number): number => {
    const n = byId.get(id)!;
    let ms = n.callFrame.functionName === "(idle)" ? 0 : (self.get(id) ?? 0);
    for (const c of n.children ?? []) ms += sumOf(c);
    subtree.set(id, ms);
    return ms;
  };
  const root = p.nodes[0]!;
  sumOf(root.id);
  const incl = new Map<string, number>();
  const onStack = new Set<string>();
  const walk = (id: number) => {
    const n = byId.get(id)!;
    const key = keyOf(n);
    const fresh = !onStack.has(key);
    if (fresh) {
      incl.set(key, (incl.get(key) ?? 0) + (subtree.get(id) ?? 0));
      onStack.add(key);
    }
    for (const c of n.children ?? []) walk(c);
    if (fresh) onStack.delete(key);
  };
  walk(root.id);
  const synthetic = /^\((root|program|idle|garbage collector)\)/;
  const inclusive = [...incl]
    .filter(([k]) => !synthetic.test(k))
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([k, ms]) => {
      const i = k.indexOf(" ");
      return { name: k.slice(0, i), where: k.slice(i + 1), ms, pct: pct(ms) };
    });
  return {
    inclusive,
    totalMs: total,
    functions: [...byFn.values()].sort((a, b) => b.ms - a.ms).slice(0, top).map((f) => ({ ...f, pct: pct(f.ms) })),
    packages: [...byPkg].sort((a, b) => b[1] - a[1]).slice(0, top).map(([name, ms]) => ({ name, ms, pct: pct(ms) })),
  };
}

export interface StallSummary {
  /** Busy stretches of at least `minMs` (no idle sample in between): the event loop could not turn. */
  stretches: { startMs: number; ms: number }[];
  /** Busy time in all samples, and in the long stretches. */
  busyMs: number;
  longMs: number;
  /** What ran in the long stretches: self time by function, and the first frame of ours under the root by stack. */
  functions: { name: string; where: string; ms: number; pct: number }[];
  entries: { name: string; where: string; ms: number; pct: number }[];
}

const whereOf = (n: Node) => `${n.callFrame.url.replace(/^file:\/\/.*?\/(node_modules|packages|services|bench)\//, "$1/")}:${n.callFrame.lineNumber + 1}`;

/**
 * The profile's busy stretches (consecutive samples none of which is "(idle)") of `minMs` or more:
 * event-loop turns, or turns back to back, that held every other callback back that long. With
 * what ran in them: self time by function, and by "entry" (the deepest frame of the repo's own
 * packages/services on each sample's stack, else the leaf), so a stall reads as the code that caused it.
 * The profile's clock is wall time: while the thread waits for a CPU no sample is taken, and the
 * gap lands on the sample before it (on a loaded box, typically a socket write that woke the
 * process at the other end). bench/loop-stalls.mjs tells running from waiting.
 */
export function stalls(p: Profile, minMs = 50, top = 25, window: [number, number] = [0, Infinity]): StallSummary {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const idle = new Set(p.nodes.filter((n) => n.callFrame.functionName === "(idle)").map((n) => n.id));
  const samples = p.samples ?? [];
  const deltas = p.timeDeltas ?? [];
  const ours = /\/(packages|services)\/[^/]+\/(src|store)\//;
  const entryOf = new Map<number, number>();
  const entry = (id: number): number => {
    let e = entryOf.get(id);
    if (e !== undefined) return e;
    e = id;
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      if (ours.test(byId.get(cur)!.callFrame.url) && !byId.get(cur)!.callFrame.url.includes("node_modules")) { e = cur; break; }
    }
    entryOf.set(id, e);
    return e;
  };
  const stretches: StallSummary["stretches"] = [];
  const selfMs = new Map<string, { name: string; where: string; ms: number }>();
  const entryMs = new Map<string, { name: string; where: string; ms: number }>();
  const add = (m: typeof selfMs, n: Node, ms: number) => {
    const name = n.callFrame.functionName || "(anonymous)";
    const where = whereOf(n);
    const k = `${name} ${where}`;
    const e = m.get(k) ?? { name, where, ms: 0 };
    e.ms += ms;
    m.set(k, e);
  };
  let busyMs = 0;
  let longMs = 0;
  let t = 0;
  let run: number[] = [];
  let runStart = 0;
  let runMs = 0;
  const close = () => {
    if (runMs >= minMs && runStart / 1e6 >= window[0] && runStart / 1e6 < window[1]) {
      stretches.push({ startMs: runStart / 1000, ms: runMs });
      longMs += runMs;
      for (const i of run) {
        const ms = (deltas[i + 1] ?? 0) / 1000;
        add(selfMs, byId.get(samples[i]!)!, ms);
        add(entryMs, byId.get(entry(samples[i]!))!, ms);
      }
    }
    run = [];
    runMs = 0;
  };
  for (let i = 0; i < samples.length; i++) {
    t += deltas[i] ?? 0;
    // A sample's time is the gap to the next one.
    const ms = (deltas[i + 1] ?? 0) / 1000;
    if (idle.has(samples[i]!)) {
      close();
      continue;
    }
    if (!run.length) runStart = t;
    run.push(i);
    runMs += ms;
    if (t / 1e6 >= window[0] && t / 1e6 < window[1]) busyMs += ms;
  }
  close();
  const ranked = (m: typeof selfMs) => [...m.values()].sort((a, b) => b.ms - a.ms).slice(0, top).map((f) => ({ ...f, pct: (100 * f.ms) / longMs }));
  return { stretches, busyMs, longMs, functions: ranked(selfMs), entries: ranked(entryMs) };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const stallArg = process.argv.find((a) => a.startsWith("--stalls"));
  // --window=FROM-TO: only stretches starting FROM..TO seconds into the profile (the measured step).
  const windowArg = process.argv.find((a) => a.startsWith("--window="))?.slice(9).split("-").map(Number);
  const [file, topText] = process.argv.slice(2).filter((a) => !a.startsWith("--"));
  const topArg = Number(topText);
  if (!file) {
    console.error("usage: node --import tsx bench/profile.ts [--stalls[=MS]] PROFILE.cpuprofile [top]");
    process.exit(2);
  }
  const profile = JSON.parse(readFileSync(file, "utf8")) as Profile;
  const top = Number.isInteger(topArg) && topArg > 0 ? topArg : 25;
  if (stallArg) {
    const minMs = Number(stallArg.split("=")[1] ?? 50);
    const st = stalls(profile, minMs, top, windowArg?.length === 2 ? [windowArg[0]!, windowArg[1]!] : undefined);
    const lens = st.stretches.map((x) => x.ms).sort((a, b) => a - b);
    const q = (f: number) => (lens.length ? lens[Math.min(lens.length - 1, Math.floor(f * lens.length))]!.toFixed(0) : "—");
    console.log(`busy ${st.busyMs.toFixed(0)} ms${windowArg ? ` (${windowArg.join("–")} s)` : ""}; ${lens.length} busy stretches ≥ ${minMs} ms (${st.longMs.toFixed(0)} ms, p50 ${q(0.5)}, p90 ${q(0.9)}, max ${q(1)} ms)`);
    console.log("\nlongest (s into the profile: ms):");
    console.log("  " + [...st.stretches].sort((a, b) => b.ms - a.ms).slice(0, 15).map((x) => `${(x.startMs / 1000).toFixed(1)}: ${x.ms.toFixed(0)}`).join(", "));
    console.log("\nin them, by function (self time):");
    for (const f of st.functions) console.log(`  ${f.pct.toFixed(1).padStart(5)}%  ${f.ms.toFixed(0).padStart(7)} ms  ${f.name}  ${f.where}`);
    console.log("\nin them, by the innermost frame of our own code on the stack:");
    for (const f of st.entries) console.log(`  ${f.pct.toFixed(1).padStart(5)}%  ${f.ms.toFixed(0).padStart(7)} ms  ${f.name}  ${f.where}`);
    process.exit(0);
  }
  const s = summarise(profile, top);
  console.log(`busy (non-idle) CPU in profile: ${s.totalMs.toFixed(0)} ms\n\nby package:`);
  for (const p of s.packages) console.log(`  ${p.pct.toFixed(1).padStart(5)}%  ${p.ms.toFixed(0).padStart(7)} ms  ${p.name}`);
  console.log("\nby function (self time):");
  for (const f of s.functions) console.log(`  ${f.pct.toFixed(1).padStart(5)}%  ${f.ms.toFixed(0).padStart(7)} ms  ${f.name}  ${f.where}`);
  console.log("\nby function (inclusive: self + synchronous callees):");
  for (const f of s.inclusive) console.log(`  ${f.pct.toFixed(1).padStart(5)}%  ${f.ms.toFixed(0).padStart(7)} ms  ${f.name}  ${f.where}`);
}

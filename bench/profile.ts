/**
 * Summarises a V8 .cpuprofile (from `node --cpu-prof`): self time by function and by package,
 * so a README can show where a server's CPU goes.
 *   node --import tsx bench/profile.ts PROFILE.cpuprofile [top=25]
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

if (import.meta.url === `file://${process.argv[1]}`) {
  const file = process.argv[2];
  const topArg = Number(process.argv[3]);
  if (!file) {
    console.error("usage: node --import tsx bench/profile.ts PROFILE.cpuprofile [top]");
    process.exit(2);
  }
  const s = summarise(JSON.parse(readFileSync(file, "utf8")) as Profile, Number.isInteger(topArg) && topArg > 0 ? topArg : 25);
  console.log(`busy (non-idle) CPU in profile: ${s.totalMs.toFixed(0)} ms\n\nby package:`);
  for (const p of s.packages) console.log(`  ${p.pct.toFixed(1).padStart(5)}%  ${p.ms.toFixed(0).padStart(7)} ms  ${p.name}`);
  console.log("\nby function (self time):");
  for (const f of s.functions) console.log(`  ${f.pct.toFixed(1).padStart(5)}%  ${f.ms.toFixed(0).padStart(7)} ms  ${f.name}  ${f.where}`);
  console.log("\nby function (inclusive: self + synchronous callees):");
  for (const f of s.inclusive) console.log(`  ${f.pct.toFixed(1).padStart(5)}%  ${f.ms.toFixed(0).padStart(7)} ms  ${f.name}  ${f.where}`);
}

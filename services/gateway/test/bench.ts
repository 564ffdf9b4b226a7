/**
 * What the gateway costs: requests/s of one unary Connect call straight to a service vs through
 * the gateway on a public route (no JWT check) vs a protected route (JWT check, cached answer) vs a
 * protected route with the JWT cache turned off (RSA verification in njs on every request), in one
 * run, and the nginx CPU time per request of each (so the check's own CPU cost is the difference).
 *
 *   node --conditions=source --import tsx services/gateway/test/bench.ts [requests] [clients] [streams]
 *
 * Load comes from h2load (Debian: nghttp2-client), HTTP/2 with TLS, 1 nginx worker. The service is
 * the gateway tests' stub answering every path with the same small JSON, so only the route differs.
 * Numbers depend on the machine and what else runs on it; CPU per request is steadier than rate.
 */
import { spawn, spawnSync } from "node:child_process";
import { readFileSync, readdirSync, rmSync, writeFileSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startGatewayFixture, type GatewayFixture } from "./fixture.ts";

const [requests = 20_000, clients = 4, streams = 16] = process.argv.slice(2).map(Number);
const TICK_MS = 1000 / 100; // USER_HZ

if (spawnSync("h2load", ["--version"]).status !== 0) {
  console.error("bench: h2load is missing; install it with: apt-get install -y nghttp2-client");
  process.exit(1);
}

/** CPU time (ms) used so far by nginx master, workers and helpers of this instance. */
function nginxCpuMs(masterPid: number): number {
  let ticks = 0;
  for (const pid of readdirSync("/proc").filter((d) => /^\d+$/.test(d))) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      const ppid = Number(f[1]);
      if (Number(pid) === masterPid || ppid === masterPid) ticks += Number(f[11]) + Number(f[12]);
    } catch {
      /* gone */
    }
  }
  return ticks * TICK_MS;
}

interface Run {
  name: string;
  rps: number;
  ok: number;
  failed: number;
  cpuUsPerReq?: number;
}

/** h2load in a child process (asynchronously: the stub service answers from this very process). */
function h2load(url: string, headers: Record<string, string>, bodyFile: string, n = requests): Promise<{ rps: number; ok: number; failed: number }> {
  const args = ["-n", String(n), "-c", String(clients), "-m", String(streams), "-d", bodyFile];
  for (const [k, v] of Object.entries(headers)) args.push("-H", `${k}: ${v}`);
  args.push(url);
  return new Promise((resolve, reject) => {
    const child = spawn("h2load", args, { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (out += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), 300_000);
    child.once("exit", () => {
      clearTimeout(timer);
      const rps = Number(/finished in [\d.]+m?s, ([\d.]+) req\/s/.exec(out)?.[1] ?? 0);
      const st = /status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/.exec(out);
      if (!st) return reject(new Error(`h2load failed: ${out}`));
      resolve({ rps, ok: Number(st[1]), failed: Number(st[3]) + Number(st[4]) });
    });
  });
}

async function measure(name: string, gw: GatewayFixture | undefined, url: string, headers: Record<string, string>, bodyFile: string): Promise<Run> {
  await h2load(url, headers, bodyFile, Math.min(2000, requests)); // warm up: connections, caches, JIT
  const cpu0 = gw ? nginxCpuMs(gw.nginx.pid) : 0;
  const res = await h2load(url, headers, bodyFile);
  const cpu1 = gw ? nginxCpuMs(gw.nginx.pid) : 0;
  return { name, ...res, ...(gw ? { cpuUsPerReq: ((cpu1 - cpu0) * 1000) / requests } : {}) };
}

const work = mkdtempSync(join(tmpdir(), "crm-gw-bench-"));
const body = join(work, "body.json");
writeFileSync(body, "{}");
const json = { "content-type": "application/json" };
const stub = { echoAll: true, clientAuth: "optional" as const };
const cached = await startGatewayFixture({ workers: "1", stub, vars: { CRM_GW_ACCESS_LOG: "off" } });
const uncached = await startGatewayFixture({
  workers: "1",
  stub,
  vars: { CRM_GW_ACCESS_LOG: "off" },
  patch: (conf) => conf.replace("proxy_cache crm_jwt;", "proxy_cache off;"),
});
const cleanup = async () => {
  await cached.close();
  await uncached.close();
  rmSync(work, { recursive: true, force: true });
};
for (const sig of ["SIGINT", "SIGTERM"] as const) process.once(sig, () => void cleanup().then(() => process.exit(130)));
try {
  const token = await cached.tokens.sign();
  const token2 = await uncached.tokens.sign();
  const runs: Run[] = [
    await measure("direct to the service (no gateway)", undefined, `https://127.0.0.1:${cached.stub.port}/crm.chat.v1.ChatService/ListChats`, json, body),
    await measure("gateway, public route (no JWT check)", cached, `https://127.0.0.1:${cached.port}/crm.auth.v1.AuthService/GetJwks`, json, body),
    await measure("gateway, JWT check (cached answer)", cached, `https://127.0.0.1:${cached.port}/crm.chat.v1.ChatService/ListChats`, { ...json, authorization: `Bearer ${token}` }, body),
    await measure("gateway, JWT check (no cache: RSA every time)", uncached, `https://127.0.0.1:${uncached.port}/crm.chat.v1.ChatService/ListChats`, { ...json, authorization: `Bearer ${token2}` }, body),
    await measure("gateway, public route, 2nd instance (baseline)", uncached, `https://127.0.0.1:${uncached.port}/crm.auth.v1.AuthService/GetJwks`, json, body),
  ];
  const base = runs[1]!.cpuUsPerReq!;
  const base2 = runs[4]!.cpuUsPerReq!;
  console.log(`gateway benchmark: ${requests} unary Connect JSON calls, h2load -c ${clients} -m ${streams}, 1 nginx worker, load average ${readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ")}`);
  for (const r of runs) {
    console.log(
      `  ${r.name.padEnd(48)} ${r.rps.toFixed(0).padStart(7)} req/s  ${String(r.failed).padStart(3)} failed` +
        (r.cpuUsPerReq !== undefined ? `  nginx CPU ${r.cpuUsPerReq.toFixed(0).padStart(4)} µs/req` : ""),
    );
  }
  console.log(`  JWT check CPU per request: cached ≈ ${(runs[2]!.cpuUsPerReq! - base).toFixed(0)} µs, uncached ≈ ${(runs[3]!.cpuUsPerReq! - base2).toFixed(0)} µs`);
  console.log(JSON.stringify({ requests, clients, streams, runs }));
} finally {
  await cleanup();
}

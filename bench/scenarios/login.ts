/**
 * 3. Register/login through the all-in-one on real PostgreSQL (a fresh database) vs raw argon2id
 * at the same parameters and the same concurrency (the floor: login is one argon2 verify plus a
 * lookup, a session insert and a token; register is one argon2 hash plus a transaction).
 *
 * Two floors each: libuv's default pool (4 threads, so 4 argon2 at once), and a pool of one thread
 * per CPU. On a machine with fewer CPUs than pool threads the second is the real raw throughput:
 * more argon2 at once than CPUs only time-slice the cores and evict each other's 19 MiB from the
 * caches (the auth service runs at most one per CPU at once, services/auth/src/passwords.ts).
 */
import { availableParallelism } from "node:os";
import { freshDatabase, unreachable } from "@crm/testkit";
import { connectJson, removeDir, startApp } from "../lib/app.js";
import { startChild, tsNode } from "../lib/child.js";
import { closedLoop } from "../lib/driver.js";
import { combine, h2load, h2loadProblem, type LoadResult } from "../lib/h2load.js";
import { diffThreads, mb, measured, threadCpu } from "../lib/proc.js";
import type { Check, Ctx, Row, Scenario } from "../lib/report.js";

const password = "correct horse battery staple 42";

interface FloorResult extends LoadResult {
  cpuMs: number;
  rssBytes: number;
}

async function argonFloor(mode: "hash" | "verify", concurrency: number, total: number, poolThreads?: number): Promise<FloorResult> {
  const { cmd, args } = tsNode("bench/servers/argon2-floor.ts", mode, String(concurrency), String(total));
  const child = await startChild({
    name: `argon2 ${mode}`,
    cmd,
    args,
    env: poolThreads ? { UV_THREADPOOL_SIZE: String(poolThreads) } : {},
    ready: (line) => (line.startsWith('{"bench_result"') ? (JSON.parse(line) as FloorResult) : undefined),
    timeoutMs: 300_000,
  });
  await child.exited;
  return child.value;
}

export const login: Scenario = {
  name: "login",
  title: "Register/login through the all-in-one (PostgreSQL) vs raw argon2id at the same parameters",
  async missing() {
    return (await unreachable("postgres")) ?? h2loadProblem();
  },
  async run(ctx: Ctx) {
    const concurrency = 8;
    const rounds = ctx.quick ? 1 : 3;
    const registers = ctx.quick ? 8 : 60; // per round
    const logins = ctx.quick ? 8 : 200; // per round
    const db = await freshDatabase("crm_bench");
    const rows: Row[] = [];
    let app: Awaited<ReturnType<typeof startApp>> | undefined;
    try {
      app = await startApp({ env: { DATABASE_URL: db.url } });
      const { url } = app.value;
      const pid = app.pid;
      const tag = Date.now().toString(36);
      const email = `owner0.${tag}@bench.example`;
      await connectJson(url, "crm.auth.v1.AuthService/RegisterCompany", { companyName: `Bench ${tag}`, email, password, ownerName: "Owner" });
      await connectJson(url, "crm.auth.v1.AuthService/Login", { email, password });
      // Login: one account, h2load (HTTP/2, Connect JSON), `concurrency` requests in flight.
      const loginLoad = (requests: number) =>
        h2load({
          url: `${url}/crm.auth.v1.AuthService/Login`,
          requests,
          clients: concurrency,
          streams: 1,
          headers: { "content-type": "application/json", "connect-protocol-version": "1" },
          body: JSON.stringify({ email, password }),
          timeoutMs: 240_000,
        });
      await loginLoad(concurrency * 2);
      // Register: every request a new company (unique e-mail), the closed-loop driver in this process.
      let next = 1;
      const registerLoad = (total: number) =>
        closedLoop({
          concurrency,
          total,
          timeoutMs: 240_000,
          call: () => {
            const i = next++;
            return connectJson(url, "crm.auth.v1.AuthService/RegisterCompany", { companyName: `Bench ${tag} ${i}`, email: `owner${i}.${tag}@bench.example`, password, ownerName: `Owner ${i}` });
          },
        });
      // Rounds: target and floor take turns, so a load swing on the shared machine hits both.
      const cpus = availableParallelism();
      const acc = { reg: [] as LoadResult[], regCpu: 0, regRss: 0, hash: [] as FloorResult[], hashPerCpu: [] as FloorResult[], login: [] as LoadResult[], loginCpu: 0, loginRss: 0, verify: [] as FloorResult[], verifyPerCpu: [] as FloorResult[] };
      const loginThreads: Record<string, number> = {};
      for (let round = 0; round < rounds; round++) {
        const reg = await measured(() => [pid], () => registerLoad(registers));
        if (reg.value.errors) throw new Error(`register failed ${reg.value.errors}×: ${reg.value.errorSamples.join(" | ")}`);
        acc.reg.push(reg.value);
        acc.regCpu += reg.cpuMs;
        acc.regRss = reg.rssBytes;
        acc.hash.push(await argonFloor("hash", concurrency, registers));
        acc.hashPerCpu.push(await argonFloor("hash", concurrency, registers, cpus));
        const th0 = threadCpu(pid);
        const lg = await measured(() => [pid], () => loginLoad(logins));
        for (const [k, v] of Object.entries(diffThreads(threadCpu(pid), th0))) loginThreads[k] = (loginThreads[k] ?? 0) + v;
        acc.login.push(lg.value);
        acc.loginCpu += lg.cpuMs;
        acc.loginRss = lg.rssBytes;
        acc.verify.push(await argonFloor("verify", concurrency, logins));
        acc.verifyPerCpu.push(await argonFloor("verify", concurrency, logins, cpus));
      }
      const reg = { value: combine(acc.reg), cpuMs: acc.regCpu, rssBytes: acc.regRss };
      const lg = { value: combine(acc.login), cpuMs: acc.loginCpu, rssBytes: acc.loginRss };
      const floorOf = (runs: FloorResult[]) => ({ ...combine(runs), cpuMs: runs.reduce((a, r) => a + r.cpuMs, 0), rssBytes: Math.max(...runs.map((r) => r.rssBytes)) });
      const regFloor = floorOf(acc.hash);
      const loginFloor = floorOf(acc.verify);
      const regFloorPerCpu = floorOf(acc.hashPerCpu);
      const loginFloorPerCpu = floorOf(acc.verifyPerCpu);
      const bestVerify = Math.max(loginFloor.rps, loginFloorPerCpu.rps);

      const row = (label: string, r: LoadResult, cpuMs: number, rss: number, floor?: boolean): Row => ({
        label, floor, tool: r.tool, requests: r.requests, errors: r.errors, rps: r.rps, p50Ms: r.p50Ms, p99Ms: r.p99Ms, cpuMsPerReq: r.ok ? cpuMs / r.ok : undefined, rssMB: mb(rss),
      });
      rows.push(
        row("raw argon2id hash (same params, same concurrency)", regFloor, regFloor.cpuMs, regFloor.rssBytes, true),
        row(`raw argon2id hash, libuv pool of ${cpus} (one per CPU)`, regFloorPerCpu, regFloorPerCpu.cpuMs, regFloorPerCpu.rssBytes, true),
        row("RegisterCompany (Connect JSON, HTTP/1.1)", reg.value, reg.cpuMs, reg.rssBytes),
        row("raw argon2id verify (same params, same concurrency)", loginFloor, loginFloor.cpuMs, loginFloor.rssBytes, true),
        row(`raw argon2id verify, libuv pool of ${cpus} (one per CPU)`, loginFloorPerCpu, loginFloorPerCpu.cpuMs, loginFloorPerCpu.rssBytes, true),
        row("Login (Connect JSON, HTTP/2)", lg.value, lg.cpuMs, lg.rssBytes),
      );
      ctx.log(`login ${lg.value.rps.toFixed(1)}/s vs raw verify ${loginFloor.rps.toFixed(1)}/s (pool of ${cpus}: ${loginFloorPerCpu.rps.toFixed(1)}/s); register ${reg.value.rps.toFixed(1)}/s vs raw hash ${regFloor.rps.toFixed(1)}/s (pool of ${cpus}: ${regFloorPerCpu.rps.toFixed(1)}/s)`);
      const checks: Check[] = [
        { label: "Login throughput ÷ raw argon2id verify throughput (the better of the two floors)", value: lg.value.rps / bestVerify, unit: "×", target: "≥ 0.90", met: lg.value.rps / bestVerify >= 0.9 },
        { label: "Login throughput ÷ raw argon2id verify throughput, libuv's default pool", value: lg.value.rps / loginFloor.rps, unit: "×", target: "informational" },
        { label: "RegisterCompany throughput ÷ raw argon2id hash throughput", value: reg.value.rps / regFloor.rps, unit: "×", target: "informational" },
        { label: "server CPU per login over one raw verify", value: (lg.cpuMs / lg.value.ok) - loginFloor.cpuMs / loginFloor.ok, unit: "ms", target: "informational" },
      ];
      const perLogin = Object.entries(loginThreads).filter(([, v]) => v > 0).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k === "main" ? "main thread (JS, HTTP/2, pg protocol)" : k === "node" ? "unnamed threads (libuv pool: argon2, WebCrypto; V8 helpers)" : k} ${(v / lg.value.ok).toFixed(2)}`).join(", ");
      return {
        rows,
        checks,
        notes: [
          `server CPU per login by thread (ms): ${perLogin}`,
          `argon2id ${JSON.stringify((await import("@crm/auth/passwords")).argonOptions)}; ${concurrency} requests in flight everywhere; libuv pool ${process.env.UV_THREADPOOL_SIZE ?? "4 (default)"} threads in the server and the first floor, ${cpus} (one per CPU) in the second; the server runs at most ${cpus} argon2 operations at once`,
          `all-in-one from source on a fresh PostgreSQL database (DATABASE_URL), in-memory counters; ${rounds} rounds, each: ${registers} registrations, ${registers} raw hashes, ${logins} logins of one account, ${logins} raw verifies`,
        ],
      };
    } finally {
      await app?.stop();
      if (app) removeDir(app.dataDir);
      await db.drop();
    }
  },
};

/**
 * 9. Simulated users: each holds one chat stream, sends a message a minute, does a timer action
 * every 5 minutes and a read every 10 s (bench/servers/users-driver.ts, its own process). The
 * user count steps up until a step misses API p99 ≤ 100 ms, delivery p99 ≤ 200 ms or has an
 * error; the answer is the largest count that met all three.
 * Path today: the all-in-one on PostgreSQL, RabbitMQ and Redis (gRPC over h2c).
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freshDatabase, TEST_AMQP_URL, TEST_REDIS_URL, unreachable } from "@crm/testkit";
import { removeDir, startApp, type AppChild } from "../lib/app.js";
import { startChild, tsNode } from "../lib/child.js";
import { cpuOfDb, dbNameOf, mb, sampleAll } from "../lib/proc.js";
import type { Check, Ctx, Scenario, Table } from "../lib/report.js";
import { createUsers, writeUsers } from "../lib/users.js";
import type { DriverConfig } from "../servers/users-driver.js";

interface StepResult {
  users: number;
  activeSeconds: number;
  callsPerSec: number;
  counts: { message: number; timer: number; read: number };
  apiP50Ms: number;
  apiP99Ms: number;
  errors: number;
  errorSamples: string[];
  messages: number;
  delivered: number;
  lost: number;
  gaps: number;
  deliveryP50Ms: number;
  deliveryP99Ms: number;
  pass: boolean;
  serverCpuPct?: number;
  driverCpuPct?: number;
  rssMB?: number;
  pgCpuPct?: number;
}

export const users: Scenario = {
  name: "users",
  title: "Simulated users: the largest count with API p99 ≤ 100 ms, delivery p99 ≤ 200 ms, zero errors",
  async missing() {
    return unreachable("postgres", "rabbitmq", "redis");
  },
  async run(ctx: Ctx) {
    // BENCH_USERS_STEPS=3000,4000 runs chosen steps only (to study one load level).
    const chosen = process.env.BENCH_USERS_STEPS?.split(",").map(Number).filter((n) => n > 0);
    const steps = chosen?.length ? chosen : ctx.quick ? [20, 40] : [100, 250, 500, 1000, 2000, 3000, 4000, 5000, 6000, 8000];
    const stepSeconds = ctx.quick ? 3 : 30;
    const chatSize = 10;
    const db = await freshDatabase("crm_bench");
    const dir = mkdtempSync(join(tmpdir(), "crm-bench-users-"));
    let app: AppChild | undefined;
    try {
      app = await startApp({ env: { DATABASE_URL: db.url, AMQP_URL: TEST_AMQP_URL, REDIS_URL: TEST_REDIS_URL, LOG_LEVEL: "info" } });
      const url = app.value.url;
      const all = await createUsers({ url, count: steps[steps.length - 1]!, chatSize, keys: { privateKeyFile: join(app.dataDir, "keys/private.pem"), jwksFile: join(app.dataDir, "keys/jwks.json") }, log: ctx.log });
      const usersFile = join(dir, "users.json");
      writeUsers(usersFile, all);
      // The invitations AddUsers queued are written out by the e-mail workers: let that finish first.
      await new Promise((r) => setTimeout(r, ctx.quick ? 500 : 10_000));
      const cfg: DriverConfig = {
        baseUrl: url, usersFile, steps, stepSeconds, drainSeconds: 10, perConnection: 200,
        messageEverySec: 60, timerEverySec: 300, readEverySec: 10, apiP99Ms: 100, deliveryP99Ms: 200,
        // Below the kit's 1000 concurrent streams per connection (200 of them held by streams): Node's
        // http2 client does not queue beyond the server's limit, the server then resets with PROTOCOL_ERROR.
        maxInFlight: 700,
      };
      const cfgFile = join(dir, "driver.json");
      writeFileSync(cfgFile, JSON.stringify(cfg));
      const results: StepResult[] = [];
      const { cmd, args } = tsNode("bench/servers/users-driver.ts", cfgFile);
      let mark: { cpu: number; pg: number; driver: number; t: number } | undefined;
      let usage: { serverCpuPct: number; pgCpuPct: number; driverCpuPct: number; rssMB: number } | undefined;
      let failure: string | undefined;
      const appPid = app.pid;
      const driver = await startChild({
        name: "users driver",
        cmd,
        args,
        timeoutMs: 60_000,
        ready: (line) => (line.startsWith('{"event":"started"') ? true : undefined),
      });
      const onLine = (line: string) => {
        if (!line.startsWith("{")) return;
        const ev = JSON.parse(line) as { event: string } & Partial<StepResult> & { message?: string };
        if (ev.event === "live") ctx.log(`${ev.users} users live`);
        if (ev.event === "measure-start") mark = { cpu: sampleAll([appPid]).cpuMs, pg: cpuOfDb(dbNameOf(db.url)), driver: sampleAll([driver.pid]).cpuMs, t: performance.now() };
        if (ev.event === "measure-end" && mark) {
          const s = sampleAll([appPid]);
          const secs = (performance.now() - mark.t) / 1000;
          const pct = (ms: number) => (100 * ms) / 1000 / secs;
          usage = { serverCpuPct: pct(s.cpuMs - mark.cpu), pgCpuPct: pct(cpuOfDb(dbNameOf(db.url)) - mark.pg), driverCpuPct: pct(sampleAll([driver.pid]).cpuMs - mark.driver), rssMB: mb(s.rssBytes) };
        }
        if (ev.event === "result") {
          const r = { ...(ev as unknown as StepResult), ...usage };
          results.push(r);
          ctx.log(`${r.users} users: ${r.callsPerSec.toFixed(0)} calls/s, API p99 ${r.apiP99Ms.toFixed(1)} ms, delivery p99 ${r.deliveryP99Ms.toFixed(1)} ms, errors ${r.errors}, lost ${r.lost} → ${r.pass ? "pass" : "FAIL"}`);
        }
        if (ev.event === "error") failure = ev.message;
      };
      driver.onLine(onLine);
      const timeout = setTimeout(() => void driver.stop(), (steps.length * (stepSeconds + 180) + 60) * 1000);
      await driver.exited;
      clearTimeout(timeout);
      if (failure && results.length === 0) throw new Error(`users driver failed: ${failure}`);
      const best = [...results].reverse().find((r) => r.pass);
      const table: Table = {
        title: "",
        columns: ["users (streams)", "calls/s", "messages", "API p50 ms", "API p99 ms", "deliveries", "delivery p50 ms", "delivery p99 ms", "errors", "lost", "gaps", "all-in-one CPU %", "PostgreSQL CPU %", "driver CPU %", "all-in-one RSS MB", "verdict"],
        rows: results.map((r) => [r.users, r.callsPerSec, r.messages, r.apiP50Ms, r.apiP99Ms, r.delivered, r.deliveryP50Ms, r.deliveryP99Ms, r.errors, r.lost, r.gaps, r.serverCpuPct, r.pgCpuPct, r.driverCpuPct, r.rssMB, r.pass ? "pass" : "**fail**"]),
      };
      const checks: Check[] = [{ label: "largest simulated user count meeting every limit", value: best?.users ?? 0, unit: "users", target: "≥ 5000", met: (best?.users ?? 0) >= 5000 }];
      return {
        rows: [],
        tables: [table],
        checks,
        notes: [
          `steps ${steps.join(", ")} users, ${stepSeconds} s each (activities at random phases: a message per user per 60 s, a timer action per 300 s, a read per 10 s); chats of ${chatSize} users, every member subscribed; ${cfg.perConnection} users per HTTP/2 connection; the driver is its own process on the same 2 CPUs`,
          "accounts: RegisterCompany + AdminService/AddUsers (1000 per company); access tokens signed with the all-in-one's key (DATA_DIR/keys): logging 8000 users in would cost minutes of argon2, measured by the login scenario instead",
          ...(failure ? [`driver stopped: ${failure.split("\n")[0]}`] : []),
          ...results.filter((r) => r.errorSamples?.length).slice(0, 2).map((r) => `errors at ${r.users} users: ${r.errorSamples.slice(0, 3).join(" | ")}`),
        ],
      };
    } finally {
      await app?.stop();
      if (app) removeDir(app.dataDir);
      removeDir(dir);
      await db.drop();
    }
  },
};

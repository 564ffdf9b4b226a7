/**
 * 18. Webhooks: record changes fanned out to 50 healthy endpoints and one that takes 30 s per
 * answer, delivered by the webhooks service (its own process in the cluster: dbservice, auth,
 * records, logs, webhooks behind NGINX), to receivers the bench owns (bench/servers/
 * webhook-receivers.ts, another process: every delivery's Standard Webhooks signature verified
 * with the `standardwebhooks` package, per endpoint the events lost, sent under two ids, or
 * repeated under the same id). Latency: from the event's scheduled send time (open loop) to its
 * arrival at a receiver, over every healthy endpoint's first arrival of every event.
 *
 * Paths, taking turns on the same receivers in the same run:
 * - **floor**: a bare HTTP POST fan-out from this process (keep-alive, at most 4 connections per
 *   endpoint as the service's WEBHOOKS_PER_ENDPOINT, the same signed body), at the same rates;
 * - **the delivery path from its own queue**: RecordChange events published straight into the
 *   service's durable intake queue (as the outbox relay's records.events would put them there),
 *   at the issue's 1,000 events/s, then at a rate the service carried: intake → EnqueueEventDB →
 *   claim → signed POST → CompleteDeliveriesDB (batched);
 * - **from real record writes**: CreateDeal through the gateway, open loop at 1,000/s (the rate
 *   the writes reach is what is measured): records → outbox → relay → RabbitMQ → the same path;
 * - **faults**: CreateDeal at a low rate while 10 of the receivers are down for OUTAGE seconds
 *   (default 20 s; `--webhooks-outage=600` for the issue's 10 minutes) and the webhooks process
 *   is SIGKILLed in the middle of it (and started again): every event must still arrive at every
 *   endpoint, under one id.
 * The issue's third target (an API-key call costs no more than a session-token call) is the
 * `apikeys` scenario.
 */
import http from "node:http";
import { readFileSync } from "node:fs";
import amqp from "amqplib";
import { create } from "@bufbuild/protobuf";
import { createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { Webhook } from "standardwebhooks";
import { RecordChangeSchema } from "@crm/gen/crm/records/v1/stream_pb";
import { ChangeAction } from "@crm/gen/crm/records/v1/stream_pb";
import { ObjectType } from "@crm/gen/crm/records/v1/common_pb";
import { DealService } from "@crm/gen/crm/records/v1/deal_pb";
import { recordChangeEvent } from "@crm/contracts/events";
import { deadLetterQueueOf } from "@crm/contracts";
import { TEST_AMQP_URL, unreachable } from "@crm/testkit";
import { nginxProblem } from "../../services/gateway/run.mjs";
import { payloadOf } from "../../services/webhooks/src/rules.js";
import { connectJson, trustCa } from "../lib/app.js";
import { startChild, tsNode, type Child } from "../lib/child.js";
import { clusterProblem, startBenchCluster, type BenchCluster } from "../lib/cluster.js";
import { registerOwner, uniqueTag } from "../lib/crm.js";
import { cpuOfDb, dbNameOf, mb, pidOfPort, sampleAll } from "../lib/proc.js";
import type { Check, Ctx, Scenario, Table } from "../lib/report.js";
import { latency } from "../lib/stats.js";

interface Shape {
  endpoints: number;
  /** The issue's rate (events/s) and how long it is offered. */
  rate: number;
  seconds: number;
  /** How long the lower rate runs. */
  lowSeconds: number;
  writeRate: number;
  writeSeconds: number;
  /** Receivers down for this long; the process is killed in its middle. */
  outageS: number;
  /** CreateDeal/s during the faults. */
  faultRate: number;
  /** Receivers taken down. */
  downCount: number;
  /** Waiting for the last arrivals of a phase at most this long (the issue's rate: `burstDrainS`). */
  drainS: number;
  burstDrainS: number;
}

interface Stats {
  arrivals: number;
  lost: number;
  lostEndpoints: number;
  twoIds: number;
  repeats: number;
  badSignatures: number;
  other: number;
  slowRequests: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  firstAt: number;
  lastAt: number;
}

const epochNow = () => performance.timeOrigin + performance.now();
const stampOf = (run: string, k: number, at: number) => `wh|${run}|${k}|${at.toFixed(3)}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * `BENCH_WEBHOOKS_SHAPE=<endpoints>x<events/s>` (e.g. `50x200`): the healthy endpoints (every
 * phase) and the burst phase's rate instead of the run's own (quick: 4 × 20, full: 50 × 1,000). An environment
 * variable, so `--compare` passes it to both trees' runs: a quick run with enough deliveries that
 * the CPU per delivery is not the idle processes' polling.
 */
function shapeOverride(): { endpoints: number; rate: number } | undefined {
  const m = /^(\d+)x(\d+)$/.exec(process.env.BENCH_WEBHOOKS_SHAPE ?? "");
  if (!m) return undefined;
  return { endpoints: Math.max(1, Number(m[1])), rate: Math.max(1, Number(m[2])) };
}

/** `--webhooks-outage=SECONDS` (the issue's 10 minutes: 600). */
function outageFlag(): number | undefined {
  const a = process.argv.find((x) => x.startsWith("--webhooks-outage="));
  const v = a ? Number(a.split("=")[1]) : NaN;
  return Number.isFinite(v) && v > 0 ? v : undefined;
}

interface Receivers {
  child: Child<{ port: number; ports: number[]; slowPort: number }>;
  urls: string[];
  ctl<T = unknown>(path: string, body?: unknown): Promise<T>;
}

async function startReceivers(count: number): Promise<Receivers> {
  const { cmd, args } = tsNode("bench/servers/webhook-receivers.ts");
  const child = await startChild({
    name: "webhook receivers",
    cmd,
    args,
    env: { RECEIVERS: String(count), SLOW_MS: "30000" },
    ready: (line) => {
      if (!line.startsWith("{")) return undefined;
      const v = JSON.parse(line) as { bench_ready?: boolean; port: number; ports: number[]; slowPort: number };
      return v.bench_ready ? v : undefined;
    },
    timeoutMs: 60_000,
  });
  const base = `http://127.0.0.1:${child.value.port}`;
  return {
    child,
    urls: [...child.value.ports, child.value.slowPort].map((p) => `http://127.0.0.1:${p}/hook`),
    async ctl<T>(path: string, body: unknown = {}) {
      const r = await fetch(`${base}${path}`, { method: "POST", body: JSON.stringify(body) });
      if (!r.ok) throw new Error(`receivers ${path}: ${r.status} ${await r.text()}`);
      return (await r.json()) as T;
    },
  };
}

/** Waits until every healthy endpoint has every expected event (or the deadline); the stats then. */
async function drained(rcv: Receivers, expected: number[], endpoints: number, timeoutS: number): Promise<{ stats: Stats; waitedS: number }> {
  const want = expected.length * endpoints;
  const t0 = performance.now();
  for (;;) {
    const s = await rcv.ctl<Stats>("/stats", { expected: [] });
    if (s.arrivals >= want || performance.now() - t0 > timeoutS * 1000) break;
    await sleep(250);
  }
  const waitedS = (performance.now() - t0) / 1000;
  return { stats: await rcv.ctl<Stats>("/stats", { expected }), waitedS };
}

/** Open loop: `fire(k, scheduledEpochMs)` for k = 0 … rate × seconds − 1 at its scheduled time (late ones at once). */
async function openLoop(rate: number, seconds: number, fire: (k: number, at: number) => void): Promise<{ issued: number; seconds: number }> {
  const total = Math.round(rate * seconds);
  const t0 = performance.now();
  const e0 = epochNow();
  let k = 0;
  while (k < total) {
    const due = Math.min(total, Math.floor(((performance.now() - t0) / 1000) * rate) + 1);
    for (; k < due; k++) fire(k, e0 + (k * 1000) / rate);
    await sleep(2);
  }
  return { issued: total, seconds: (performance.now() - t0) / 1000 };
}

/** A deal-created RecordChange of `tenant` whose deal name carries the stamp. */
function change(tenantId: string, version: bigint, name: string) {
  return { version, tenantId, objectType: ObjectType.DEAL, recordId: crypto.randomUUID(), action: ChangeAction.CREATED, record: { record: { case: "deal" as const, value: { name, currencyCode: "EUR", amountMinor: 125_000n } } }, changeTime: { seconds: BigInt(Math.floor(Date.now() / 1000)), nanos: 0 } };
}

/**
 * FLOOR: the same signed POSTs from this process, at most 4 connections per endpoint, 10 s
 * deadline. One per phase: closing it drops what it has not sent yet (no backlog reaches the next phase).
 */
function floorSender(urls: string[], secrets: string[]) {
  const agents = urls.map(() => new http.Agent({ keepAlive: true, maxSockets: 4 }));
  const hooks = secrets.map((s) => new Webhook(s));
  const pending = new Set<http.ClientRequest>();
  return {
    send(tenantId: string, version: bigint, name: string) {
      const { eventId, body } = payloadOf(create(RecordChangeSchema, change(tenantId, version, name)));
      const bytes = Buffer.from(body);
      const at = new Date();
      urls.forEach((url, i) => {
        const req = http.request(url, {
          method: "POST",
          agent: agents[i],
          headers: { "content-type": "application/json", "content-length": bytes.length, "webhook-id": eventId, "webhook-timestamp": String(Math.floor(at.getTime() / 1000)), "webhook-signature": hooks[i]!.sign(eventId, at, body) },
        }, (res) => {
          res.resume();
        });
        pending.add(req);
        req.setTimeout(10_000, () => req.destroy());
        req.on("error", () => {});
        req.on("close", () => pending.delete(req));
        req.end(bytes);
      });
    },
    close() {
      for (const r of pending) r.destroy();
      agents.forEach((a) => a.destroy());
    },
  };
}

export const webhooks: Scenario = {
  name: "webhooks",
  title: "Webhooks: events fanned out to 50 healthy endpoints + one that takes 30 s; delivery latency, lost and two-id events across an outage and a SIGKILL, vs a bare POST fan-out",
  async missing() {
    return clusterProblem() ?? nginxProblem() ?? (await unreachable("postgres", "redis", "rabbitmq"));
  },
  async run(ctx: Ctx) {
    const outage = outageFlag();
    const shape: Shape = ctx.quick
      ? { endpoints: 4, rate: 20, seconds: 1, lowSeconds: 1, writeRate: 20, writeSeconds: 1, outageS: outage ?? 2, faultRate: 5, downCount: 1, drainS: 30, burstDrainS: 30 }
      : { endpoints: 50, rate: 1000, seconds: 1, lowSeconds: 20, writeRate: 1000, writeSeconds: 3, outageS: outage ?? 20, faultRate: 10, downCount: 10, drainS: 180, burstDrainS: 60 };
    Object.assign(shape, shapeOverride());
    const queue = `webhooks.bench.${uniqueTag()}`;
    const rcv = await startReceivers(shape.endpoints);
    let bc: BenchCluster | undefined;
    const amqpConn = await amqp.connect(TEST_AMQP_URL);
    try {
      bc = await startBenchCluster({
        only: ["dbservice", "auth", "records", "logs", "webhooks"],
        serviceEnv: {
          dbservice: { DB_CONNECT_TIMEOUT_MS: "15000" },
          // Quick runs: a 1 s deadline, so a killed process's leases (2 × deadline + 5 s) run out sooner.
          ...(process.env.BENCH_CPU_PROF ? { dbservice: { DB_CONNECT_TIMEOUT_MS: "15000", CRM_NODE_ARGS: `--cpu-prof --cpu-prof-dir=${process.env.BENCH_CPU_PROF}dbservice` } } : {}),
          webhooks: { ...(process.env.BENCH_CPU_PROF ? { CRM_NODE_ARGS: `--cpu-prof --cpu-prof-dir=${process.env.BENCH_CPU_PROF}webhooks` } : {}), WEBHOOKS_ALLOW_CIDRS: "127.0.0.0/8", WEBHOOKS_QUEUE: queue, ...(ctx.quick ? { WEBHOOKS_TIMEOUT_MS: "1000" } : {}) },
        },
      });
      const cl = bc.cluster;
      const ca = readFileSync(cl.pki.ca);
      trustCa(ca);
      const gw = cl.gatewayUrl;
      const owner = await registerOwner(gw, `wh${uniqueTag()}`);
      const pipelines = await connectJson<{ pipelines?: { stages?: { id: string }[] }[] }>(gw, "crm.records.v1.PipelineService/ListPipelines", {}, owner.token);
      let stageId = pipelines.pipelines?.[0]?.stages?.[0]?.id;
      if (!stageId) {
        const p = await connectJson<{ pipeline: { stages: { id: string }[] } }>(gw, "crm.records.v1.PipelineService/CreatePipeline", { pipeline: { name: "Bench", stages: [{ name: "New" }, { name: "Won", kind: "STAGE_KIND_WON" }] } }, owner.token);
        stageId = p.pipeline.stages[0]!.id;
      }
      const secrets: string[] = [];
      for (const [i, url] of rcv.urls.entries()) {
        const r = await connectJson<{ secret: string }>(gw, "crm.webhooks.v1.WebhookService/CreateEndpoint", { url, eventTypes: ["*"], description: i === shape.endpoints ? "slow: 30 s per answer" : `bench ${i}` }, owner.token);
        secrets.push(r.secret);
      }
      await rcv.ctl("/secrets", { secrets });

      const pub = await amqpConn.createConfirmChannel();
      let version = 1_000_000_000n; // synthetic events: far above the tenant's real versions
      const publish = (name: string) => {
        const e = recordChangeEvent(change(owner.companyId, version++, name));
        pub.publish("", queue, Buffer.from(e.payload), { messageId: e.messageId, contentType: e.contentType, headers: e.headers, persistent: true });
      };
      const auth: Interceptor = (next) => (req) => (req.header.set("authorization", `Bearer ${owner.token}`), next(req));
      const deals = createClient(DealService, createConnectTransport({ baseUrl: gw, httpVersion: "2", useBinaryFormat: true, nodeOptions: { ca }, interceptors: [auth] }));
      const serverPids = () => [pidOfPort(cl.ports.webhooks!), bc!.pids.dbservice].filter((p): p is number => Boolean(p));
      const pg = (await import("pg")).default;
      const dbName = dbNameOf(bc.db.url);
      /** What a phase leaves behind (a backlog the service had not worked off) does not reach the next. */
      const clearBacklog = async () => {
        const ch = await amqpConn.createChannel();
        await ch.purgeQueue(queue).catch(() => {});
        await ch.close().catch(() => {});
        const c = new pg.Client({ connectionString: bc!.db.url });
        await c.connect();
        await c.query("DELETE FROM wh_deliveries WHERE status = 'pending'");
        await c.end();
      };

      const table: Table = {
        title: "",
        columns: ["path", "events", "events/s offered", "events/s sent", "deliveries (healthy)", "deliveries/s", "p50 ms", "p99 ms", "max ms", "lost", "two ids", "same-id repeats", "bad signatures", "slow endpoint requests", "CPU ms/delivery", "note"],
        rows: [],
      };
      const checks: Check[] = [];
      const notes: string[] = [];
      const n = shape.endpoints;
      const row = (path: string, events: number, offered: number, sent: number, s: Stats, cpu: number | undefined, note = "") => {
        const rate = s.lastAt > s.firstAt ? s.arrivals / ((s.lastAt - s.firstAt) / 1000) : NaN;
        const v = (x: number | null) => (x === null ? undefined : x);
        table.rows.push([path, events, offered, sent, s.arrivals, rate, v(s.p50Ms), v(s.p99Ms), v(s.maxMs), s.lost, s.twoIds, s.repeats, s.badSignatures, s.slowRequests, cpu, note]);
        const f = (x: number | null) => (x === null || !Number.isFinite(x) ? "—" : x.toFixed(1));
        ctx.log(`${path}: ${s.arrivals}/${events * n} arrivals, ${f(rate)}/s, p50 ${f(s.p50Ms)} p99 ${f(s.p99Ms)} ms, lost ${s.lost}, two ids ${s.twoIds}, repeats ${s.repeats}, bad sigs ${s.badSignatures}`);
        return rate;
      };
      const range = (count: number) => Array.from({ length: count }, (_, i) => i);

      /** The floor at `rate`: bare POSTs from this process. */
      const floorAt = async (rate: number, seconds: number, drainS: number) => {
        const run = `f${uniqueTag()}`;
        await rcv.ctl("/reset", { run });
        const floor = floorSender(rcv.urls, secrets);
        const self = process.cpuUsage();
        const r = await openLoop(rate, seconds, (k, at) => floor.send(owner.companyId, version++, stampOf(run, k, at)));
        const { stats, waitedS } = await drained(rcv, range(r.issued), n, drainS);
        const used = process.cpuUsage(self);
        floor.close();
        const cpu = stats.arrivals ? (used.user + used.system) / 1000 / stats.arrivals : undefined;
        return { stats, rate: row(`**floor**: bare POST fan-out from the bench process at ${rate} events/s`, r.issued, rate, r.issued / r.seconds, stats, cpu, `bench process CPU; waited ${waitedS.toFixed(0)} s after the last send`), r };
      };
      /** The service from its own queue at `rate`. */
      const queueAt = async (rate: number, seconds: number, drainS: number, label: string) => {
        const run = `q${uniqueTag()}`;
        await rcv.ctl("/reset", { run });
        const [wh0, db0, pg0] = [sampleAll(serverPids().slice(0, 1)).cpuMs, sampleAll(serverPids().slice(1)).cpuMs, cpuOfDb(dbName)];
        const before = sampleAll(serverPids());
        const r = await openLoop(rate, seconds, (k, at) => publish(stampOf(run, k, at)));
        await pub.waitForConfirms();
        const { stats, waitedS } = await drained(rcv, range(r.issued), n, drainS);
        const after = sampleAll(serverPids());
        const cpu = stats.arrivals ? (after.cpuMs - before.cpuMs) / stats.arrivals : undefined;
        const per = (x: number) => (stats.arrivals ? (x / stats.arrivals).toFixed(2) : "—");
        const split = `CPU ms per delivery: webhooks ${per(sampleAll(serverPids().slice(0, 1)).cpuMs - wh0)}, dbservice ${per(sampleAll(serverPids().slice(1)).cpuMs - db0)}, PostgreSQL ${per(cpuOfDb(dbName) - pg0)}`;
        ctx.log(split);
        const left = r.issued * n - stats.arrivals;
        const rate2 = row(label, r.issued, rate, r.issued / r.seconds, stats, cpu, `${split} (the column: webhooks + dbservice; RSS ${mb(after.rssBytes).toFixed(0)} MB); ${left > 0 ? `${left} not delivered when the wait ended` : "all delivered"} ${waitedS.toFixed(0)} s after the last publish`);
        await clearBacklog();
        return { stats, rate: rate2, issued: r.issued, left };
      };

      // Warm-up: connections, plans, code.
      if (!ctx.quick) await queueAt(2, 2, shape.drainS, "warm-up (not measured): the delivery path from its queue");
      table.rows.length = 0;

      // 1. The issue's rate: floor, then the service from its queue.
      const f1 = await floorAt(shape.rate, shape.seconds, shape.burstDrainS);
      const q1 = await queueAt(shape.rate, shape.seconds, shape.burstDrainS, `the webhooks service from its queue at ${shape.rate} events/s`);
      checks.push(
        { label: `delivery p99 at ${shape.rate} events/s to ${n} healthy endpoints (+1 taking 30 s), the service from its queue`, value: q1.stats.p99Ms, unit: "ms", target: "≤ 1000 ms, everything delivered", met: q1.stats.p99Ms <= 1000 && q1.left === 0 },
        { label: `deliveries/s the service carried (offered ${shape.rate * n}/s)`, value: q1.rate, unit: "/s", target: `≥ ${shape.rate * n}`, met: q1.rate >= shape.rate * n * 0.98 },
        { label: "… the bare POST floor at the same offered rate", value: f1.rate, unit: "/s", target: "informational (the box's own limit)" },
        { label: "service deliveries/s ÷ floor deliveries/s at the issue's rate", value: q1.rate / f1.rate, unit: "×", target: "informational" },
      );

      // 2. A rate the service carried (60 % of what it managed above): latency with the slow endpoint present.
      const low = Math.max(0.2, Math.min(shape.rate, Math.round((0.6 * (Number.isFinite(q1.rate) ? q1.rate : 0) * 10) / n) / 10));
      const f2 = await floorAt(low, shape.lowSeconds, shape.drainS);
      const q2 = await queueAt(low, shape.lowSeconds, shape.drainS, `the webhooks service from its queue at ${low} events/s`);
      checks.push(
        { label: `delivery p99 at ${low} events/s (60 % of what it carried) to ${n} healthy endpoints (+1 taking 30 s)`, value: q2.stats.p99Ms, unit: "ms", target: "informational (≤ 1000 ms at 1,000 events/s is the target)" },
        { label: `… the bare POST floor's p99 at ${low} events/s`, value: f2.stats.p99Ms, unit: "ms", target: "informational" },
        { label: `lost + two-id events, the service from its queue (both rates)`, value: q1.stats.lost * (q1.left === 0 ? 1 : 0) + q1.stats.twoIds + q2.stats.lost + q2.stats.twoIds, unit: "", target: "0 (lost counted only where everything was due)", met: (q1.left === 0 ? q1.stats.lost : 0) + q1.stats.twoIds + q2.stats.lost + q2.stats.twoIds === 0 },
      );

      // 3. Events from real record writes: CreateDeal through the gateway, open loop.
      {
        const run = `w${uniqueTag()}`;
        await rcv.ctl("/reset", { run });
        const ok: number[] = [];
        let failed = 0;
        const errors: string[] = [];
        let skipped = 0;
        let inFlight = 0;
        const pending = new Set<Promise<void>>();
        const apiMs: number[] = [];
        const r = await openLoop(shape.writeRate, shape.writeSeconds, (k, at) => {
          if (inFlight >= 256) return void skipped++;
          inFlight++;
          const s = performance.now();
          const p = deals
            .createDeal({ deal: { name: stampOf(run, k, at), stageId, amountMinor: BigInt(1000 + k), currencyCode: "EUR" } })
            .then(() => void (ok.push(k), apiMs.push(performance.now() - s)), (err: unknown) => void (failed++, errors.length < 3 && errors.push(String((err as Error)?.message ?? err).slice(0, 200))))
            .finally(() => (inFlight--, pending.delete(p)));
          pending.add(p);
        });
        await Promise.all(pending);
        const writeS = r.seconds;
        const { stats, waitedS } = await drained(rcv, ok, n, shape.drainS);
        const leftW = ok.length * n - stats.arrivals;
        const writes = ok.length / writeS;
        const api = latency(apiMs);
        row(`CreateDeal through the gateway at ${shape.writeRate}/s offered → records → outbox → RabbitMQ → webhooks`, ok.length, shape.writeRate, writes, stats, undefined, `${ok.length} written (${writes.toFixed(0)}/s, CreateDeal p50 ${api.p50Ms.toFixed(0)} ms, p99 ${api.p99Ms.toFixed(0)} ms), ${skipped} skipped (256 in flight), ${failed} failed; ${leftW > 0 ? `${leftW} not delivered when the wait ended` : "all delivered"} ${waitedS.toFixed(0)} s after the last write`);
        if (errors.length) notes.push(`CreateDeal errors: ${errors.join(" | ")}`), ctx.log(`CreateDeal errors: ${errors.join(" | ")}`);
        checks.push(
          { label: `CreateDeal/s reached (offered ${shape.writeRate}/s): the events real writes make`, value: writes, unit: "/s", target: `informational (the issue's event rate is ${shape.rate}/s)` },
          { label: "delivery p99 of those events (from the write's scheduled send time)", value: stats.p99Ms, unit: "ms", target: "≤ 1000 ms, everything delivered", met: stats.p99Ms <= 1000 && leftW === 0 },
          { label: "lost + two-id events from real writes", value: (leftW === 0 ? stats.lost : 0) + stats.twoIds, unit: "", target: "0 (lost counted only when everything was due)", met: (leftW === 0 ? stats.lost : 0) + stats.twoIds === 0 },
        );
        await clearBacklog();
      }

      // 4. Faults: receivers down for outageS, the webhooks process SIGKILLed in the middle, at a
      // write rate whose deliveries the service carried above (40 % of it, at most faultRate).
      {
        const faultRate = Math.max(0.2, Math.min(shape.faultRate, Math.round((0.4 * (Number.isFinite(q1.rate) ? q1.rate : 0) * 10) / n) / 10));
        const run = `x${uniqueTag()}`;
        await rcv.ctl("/reset", { run });
        const ok: number[] = [];
        let failed = 0;
        const pending = new Set<Promise<void>>();
        const downIdx = range(shape.downCount);
        const total = 3 + shape.outageS + 5;
        let killedAt = NaN;
        const t0 = performance.now();
        const faults = (async () => {
          await sleep(3000);
          await rcv.ctl("/down", { indices: downIdx });
          ctx.log(`receivers ${downIdx.join(",")} down for ${shape.outageS} s`);
          await sleep((shape.outageS * 1000) / 2);
          const ws = cl.service("webhooks");
          const inFlightBefore = (await rcv.ctl<Stats>("/stats", { expected: [] })).slowRequests;
          ws.kill();
          await ws.exited;
          killedAt = (performance.now() - t0) / 1000;
          ctx.log(`webhooks SIGKILLed at ${killedAt.toFixed(1)} s (the slow endpoint had had ${inFlightBefore} requests); starting it again`);
          await cl.startService("webhooks");
          const rest = shape.outageS * 1000 - (performance.now() - t0 - 3000);
          if (rest > 0) await sleep(rest);
          await rcv.ctl("/up", { indices: downIdx });
          ctx.log("receivers up");
        })();
        await openLoop(faultRate, total, (k, at) => {
          const p = deals
            .createDeal({ deal: { name: stampOf(run, k, at), stageId, amountMinor: BigInt(1000 + k), currencyCode: "EUR" } })
            .then(() => void ok.push(k), () => void failed++)
            .finally(() => pending.delete(p));
          pending.add(p);
        });
        await faults;
        await Promise.all(pending);
        // Backoff after an outage of D s may wait up to about D s more; a killed process's leases 25 s.
        const { stats, waitedS } = await drained(rcv, ok, n, Math.max(shape.drainS, 2 * shape.outageS + 60));
        row(`faults: CreateDeal at ${faultRate}/s; ${shape.downCount} receivers down ${shape.outageS} s; webhooks SIGKILLed at ${killedAt.toFixed(0)} s and restarted`, ok.length, faultRate, ok.length / total, stats, undefined, `${failed} writes failed; waited ${waitedS.toFixed(0)} s for the last arrivals`);
        checks.push(
          { label: `lost events across a ${shape.outageS} s outage of ${shape.downCount} receivers and a SIGKILL of webhooks`, value: stats.lost, unit: "", target: "0", met: stats.lost === 0 && ok.length > 0 },
          { label: "events under two ids (same faults)", value: stats.twoIds, unit: "", target: "0", met: stats.twoIds === 0 },
          { label: "same event, same id, delivered again (at least once after the SIGKILL)", value: stats.repeats, unit: "", target: "informational" },
          { label: "bad signatures over the whole run", value: stats.badSignatures, unit: "", target: "0", met: stats.badSignatures === 0 },
        );
        notes.push(`faults: ${outage ? `outage from --webhooks-outage=${outage}` : `a ${shape.outageS} s outage (the issue's 10 minutes: --webhooks-outage=600)`}; receivers down = listening socket closed and connections reset; the webhooks process is killed with SIGKILL (its process group) and started again at once`);
      }
      await pub.close().catch(() => {});
      return {
        rows: [],
        tables: [table],
        checks,
        notes: [
          `${n} healthy receivers + 1 that answers after 30 s (the service gives up after its 10 s deadline and retries), each an HTTP/1.1 server on its own port in one receiver process that verifies every signature with standardwebhooks' Webhook.verify; every endpoint subscribed to "*"`,
          "latency: from the event's scheduled send time (open loop: a late sender counts against itself) to its first arrival, over every healthy endpoint; lost: expected events an endpoint never got; two ids: an event that arrived under more than one webhook-id",
          "the service from its queue: RecordChange events (a created deal) published into the webhooks process's own durable intake queue (a fresh name per run), as records.events routes them there; from writes: CreateDeal through NGINX (TLS, JWT) → records → dbservice (outbox) → relay → RabbitMQ → the same queue",
          "cluster from source (tsx): dbservice, auth, records, logs, webhooks (WEBHOOKS_CONCURRENCY 64, WEBHOOKS_PER_ENDPOINT 4: the defaults), NGINX; a phase's undelivered backlog is deleted before the next",
          ...notes,
        ],
      };
    } finally {
      await bc?.stop().catch(() => {});
      // The run's own queues (the intake, its retry and dead-letter queues) go with it.
      for (const q of [queue, `${queue}.retry`, deadLetterQueueOf(queue)]) {
        const ch = await amqpConn.createChannel().catch(() => undefined);
        ch?.on("error", () => {});
        await ch?.deleteQueue(q).catch(() => {});
        await ch?.close().catch(() => {});
      }
      await amqpConn.close().catch(() => {});
      await rcv.child.stop();
    }
  },
};

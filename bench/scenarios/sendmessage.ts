/**
 * 4. SendMessage end to end vs pgbench running the same SQL transaction.
 *
 * Two paths: the all-in-one on real PostgreSQL, RabbitMQ and Redis (chats → dbservice in one
 * process), and the local cluster through the gateway (TLS, JWT at NGINX, chats → dbservice over
 * mTLS). Either way the message, its seq and the outbox row are one transaction and the outbox
 * relay publishes to RabbitMQ with confirms. Floor: pgbench with the same statements (BEGIN + SET LOCAL ROLE + tenant,
 * the seq-bumping INSERT, the outbox INSERT, COMMIT) on as many connections as the service's
 * pool (DB_POOL_MAX), over the same chats.
 */
import pg from "pg";
import { chatEvent } from "@crm/contracts/events";
import { freshDatabase, TEST_AMQP_URL, TEST_REDIS_URL, type TestDatabase, unreachable } from "@crm/testkit";
import { readFileSync } from "node:fs";
import { connectJson, removeDir, startApp, trustCa } from "../lib/app.js";
import { clusterProblem, startBenchCluster, type BenchCluster } from "../lib/cluster.js";
import { nginxProblem } from "../../services/gateway/run.mjs";
import { createChat, registerOwner, uniqueTag } from "../lib/crm.js";
import { combine, h2loadParallel, h2loadProblem, type LoadResult } from "../lib/h2load.js";
import { pgbench, pgbenchProblem } from "../lib/pgbench.js";
import { cpuOfComm, dbNameOf, mb, measured, postgresBackends, trackCpu } from "../lib/proc.js";
import type { Check, Ctx, Row, Scenario } from "../lib/report.js";

const method = "crm.chat.v1.ChatService/SendMessage";
const poolMax = 10; // dbservice's DB_POOL_MAX default
const openRate = 1_000; // requests/s of the target

async function waitOutboxEmpty(db: pg.Pool, timeoutMs: number): Promise<number> {
  const t0 = performance.now();
  for (;;) {
    const { rows } = await db.query<{ n: string }>("SELECT count(*) AS n FROM outbox");
    if (rows[0]!.n === "0") return performance.now() - t0;
    if (performance.now() - t0 > timeoutMs) throw new Error(`the outbox still holds ${rows[0]!.n} rows ${timeoutMs} ms after the load: the relay is not keeping up or not running`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function pgbenchScript(chatId: string, companyId: string, userId: string): string {
  const e = chatEvent({ chatId, companyId, event: { case: "message", value: { chatId, seq: 1n, senderId: userId, content: "bench message from pgbench", messageId: "00000000-0000-0000-0000-000000000000" } } });
  const payload = Buffer.from(e.payload).toString("hex");
  return [
    "BEGIN;",
    "SET LOCAL ROLE crm_app;",
    `SELECT set_config('app.company_id', '${companyId}', true);`,
    `WITH bump AS (UPDATE chats c SET last_seq = c.last_seq + 1, last_message_at = now() WHERE c.id = '${chatId}' AND EXISTS (SELECT 1 FROM chat_members m WHERE m.chat_id = '${chatId}' AND m.user_id = '${userId}') RETURNING c.company_id, c.last_seq) INSERT INTO messages (chat_id, seq, company_id, sender_id, content, client_message_id) SELECT '${chatId}', last_seq, company_id, '${userId}', 'bench message from pgbench', NULL FROM bump ON CONFLICT (chat_id, sender_id, client_message_id) WHERE client_message_id IS NOT NULL DO NOTHING RETURNING id, chat_id, seq, sender_id, content, client_message_id, created_at;`,
    `INSERT INTO outbox (exchange, routing_key, payload, content_type, message_id, headers, company_id) VALUES ('${e.exchange}', '${e.routingKey}', '\\x${payload}'::bytea, '${e.contentType}', NULL, '${JSON.stringify(e.headers)}', '${companyId}');`,
    "COMMIT;",
    "",
  ].join("\n");
}

export const sendmessage: Scenario = {
  name: "sendmessage",
  title: "SendMessage end to end (all-in-one, and through the gateway: TLS, JWT, chats, dbservice, PostgreSQL, outbox, RabbitMQ) vs pgbench running the same transaction",
  async missing() {
    return (await unreachable("postgres", "rabbitmq", "redis")) ?? h2loadProblem() ?? pgbenchProblem();
  },
  async run(ctx: Ctx) {
    const rows: Row[] = [];
    const checks: Check[] = [];
    const notes: string[] = [];
    const paths: Path[] = ["all-in-one", ...(clusterProblem() || nginxProblem() ? [] : (["gateway"] as const))];
    if (paths.length === 1) notes.push(`not through the gateway: ${clusterProblem() ?? nginxProblem()}`);
    for (const path of paths) {
      const r = await runPath(ctx, path);
      rows.push(...r.rows);
      checks.push(...r.checks);
      notes.push(...r.notes);
    }
    return { rows, checks, notes };
  },
};

type Path = "all-in-one" | "gateway";

async function runPath(ctx: Ctx, path: Path): Promise<{ rows: Row[]; checks: Check[]; notes: string[] }> {
  const chats = 4;
  const streamsPerChat = 16; // 64 requests in flight
  const rounds = ctx.quick ? 1 : 2;
  const perChat = ctx.quick ? 50 : 4_000; // per round
  let app: Awaited<ReturnType<typeof startApp>> | undefined;
  let bc: BenchCluster | undefined;
  let db: TestDatabase;
  if (path === "all-in-one") {
    db = await freshDatabase("crm_bench");
  } else {
    bc = await startBenchCluster({ only: ["dbservice", "auth", "chats", "logs"], serviceEnv: { dbservice: { DB_POOL_MAX: String(poolMax) } } });
    db = bc.db;
    trustCa(readFileSync(bc.cluster.pki.ca));
  }
  const pool = new pg.Pool({ connectionString: db.url, max: 2 });
  try {
    let url: string;
    let serverPids: () => number[];
    if (path === "all-in-one") {
      app = await startApp({ env: { DATABASE_URL: db.url, AMQP_URL: TEST_AMQP_URL, REDIS_URL: TEST_REDIS_URL, DB_POOL_MAX: String(poolMax) } });
      url = app.value.url;
      const pid = app.pid;
      serverPids = () => [pid];
    } else {
      url = bc!.cluster.gatewayUrl;
      serverPids = () => [...Object.values(bc!.pids), ...bc!.nginxPids()];
    }
    const owner = await registerOwner(url, uniqueTag());
    const chatIds: string[] = [];
    for (let i = 0; i < chats; i++) chatIds.push(await createChat(url, owner.token, `bench ${i}`));
    const sent = await connectJson<{ message: { seq: string } }>(url, method, { chatId: chatIds[0], content: "hello" }, owner.token);
    if (sent.message.seq !== "1") throw new Error(`the first SendMessage answered seq ${sent.message.seq}, not 1`);
    const headers = { "content-type": "application/json", "connect-protocol-version": "1", authorization: `Bearer ${owner.token}` };
    const load = (perChatRequests: number) =>
      h2loadParallel(chatIds.map((chatId) => ({ url: `${url}/${method}`, requests: perChatRequests, clients: 1, streams: streamsPerChat, headers, body: JSON.stringify({ chatId, content: "bench message through the service" }), timeoutMs: 300_000 })));
    // Warm-up sends count among the stored messages below (on a loaded box a few may fail: counted, not assumed).
    const warm = await load(ctx.quick ? 10 : 250);
    await waitOutboxEmpty(pool, 60_000);

    const acc = { app: [] as LoadResult[], appCpu: 0, pgCpu: 0, mqCpu: 0, rss: 0, drainMs: 0, floor: [] as LoadResult[], floorPgCpu: 0 };
    for (let round = 0; round < rounds; round++) {
      const pgTrack = trackCpu(() => postgresBackends(dbNameOf(db.url)));
      const mq0 = cpuOfComm("beam.smp");
      const m = await measured(serverPids, async () => {
        const r = await load(perChat);
        acc.drainMs = Math.max(acc.drainMs, await waitOutboxEmpty(pool, 120_000));
        return r;
      });
      acc.app.push(m.value);
      acc.appCpu += m.cpuMs;
      acc.rss = m.rssBytes;
      acc.pgCpu += pgTrack.stop();
      acc.mqCpu += cpuOfComm("beam.smp") - mq0;

      const fpgTrack = trackCpu(() => postgresBackends(dbNameOf(db.url)));
      const f = await pgbench({ url: db.url, scripts: chatIds.map((c) => pgbenchScript(c, owner.companyId, owner.userId)), clients: poolMax, threads: 2, mode: "prepared", transactions: Math.ceil((perChat * chats) / poolMax), timeoutMs: 300_000 });
      acc.floorPgCpu += fpgTrack.stop();
      acc.floor.push(f);
      await waitOutboxEmpty(pool, 120_000); // the app's relay publishes the floor's rows too: not in either measurement
    }
    // Open loop: 64 clients together starting 1,000 requests/s whatever the answers' latency (each
    // client may have 8 in flight, so a slow answer does not hold back the next request).
    const openSeconds = ctx.quick ? 1 : 10;
    // h2load leaves the first 2 s out (64 clients opening TLS connections at once), so the open
    // loop's messages are counted by their own content: at least every success must be stored.
    const openLoop = (ids: string[]) =>
      measured(serverPids, () =>
        h2loadParallel(ids.map((chatId) => ({ url: `${url}/${method}`, requests: 0, duration: { seconds: openSeconds, warmUpSeconds: ctx.quick ? 1 : 2 }, clients: 64 / ids.length, streams: 8, rps: openRate / 64, headers, body: JSON.stringify({ chatId, content: "bench open-loop message" }), timeoutMs: 300_000 }))),
      );
    const open = await openLoop(chatIds);
    await waitOutboxEmpty(pool, 120_000);
    // The same load with every client in a chat of its own: no two sends share a batch.
    const ownChats = [...chatIds];
    while (ownChats.length < 64) ownChats.push(await createChat(url, owner.token, `bench own ${ownChats.length}`));
    const spread = await openLoop(ownChats);
    await waitOutboxEmpty(pool, 120_000);
    const target = combine(acc.app);
    const floor = combine(acc.floor);
    const { rows: counted } = await pool.query<{ n: string }>("SELECT count(*) AS n FROM messages WHERE content = 'bench message through the service'");
    const stored = Number(counted[0]!.n);
    const warmups = warm.ok;
    if (stored !== target.ok + warmups) throw new Error(`${target.ok + warmups} SendMessage calls succeeded but ${stored} messages are stored`);
    const { rows: openCounted } = await pool.query<{ n: string }>("SELECT count(*) AS n FROM messages WHERE content = 'bench open-loop message'");
    const openOk = open.value.ok + spread.value.ok;
    if (Number(openCounted[0]!.n) < openOk) throw new Error(`${openOk} open-loop SendMessage calls succeeded but only ${openCounted[0]!.n} are stored`);
    const { rows: gaps } = await pool.query<{ n: string }>("SELECT count(*) AS n FROM (SELECT chat_id, seq - lag(seq) OVER (PARTITION BY chat_id ORDER BY seq) AS d FROM messages) x WHERE d <> 1");

    const where = path === "all-in-one" ? "all-in-one, Connect JSON over h2c" : "through the gateway (TLS, JWT), cluster processes";
    const rows: Row[] = [
      {
        label: `pgbench: the same transaction (${path} database)`, floor: true, tool: floor.tool, requests: floor.requests, errors: floor.errors, rps: floor.rps, p50Ms: floor.p50Ms, p99Ms: floor.p99Ms,
        note: `PostgreSQL ${(acc.floorPgCpu / floor.ok).toFixed(3)} CPU ms/tx`,
      },
      {
        label: `SendMessage, ${where}`, tool: target.tool, requests: target.requests, errors: target.errors, rps: target.rps, p50Ms: target.p50Ms, p99Ms: target.p99Ms,
        cpuMsPerReq: target.ok ? acc.appCpu / target.ok : undefined, rssMB: mb(acc.rss),
        note: `${path === "gateway" ? "server CPU = NGINX + every service process; " : ""}PostgreSQL ${(acc.pgCpu / target.ok).toFixed(3)}, RabbitMQ (whole broker) ${(acc.mqCpu / target.ok).toFixed(3)} CPU ms/req; outbox empty ${acc.drainMs.toFixed(0)} ms after the last answer`,
      },
    ];
    const o = open.value;
    rows.push({
      label: `SendMessage at ${openRate} req/s (open loop, 64 clients), ${where}`, tool: o.tool, requests: o.requests, errors: o.errors, rps: o.rps, p50Ms: o.p50Ms, p99Ms: o.p99Ms,
      cpuMsPerReq: o.ok ? open.cpuMs / o.ok : undefined, rssMB: mb(open.rssBytes),
    });
    const sp = spread.value;
    rows.push({
      label: `… the same, each client in its own chat (64 chats: nothing to batch), ${where}`, tool: sp.tool, requests: sp.requests, errors: sp.errors, rps: sp.rps, p50Ms: sp.p50Ms, p99Ms: sp.p99Ms,
      cpuMsPerReq: sp.ok ? spread.cpuMs / sp.ok : undefined, rssMB: mb(spread.rssBytes),
    });
    ctx.log(`SendMessage ${target.rps.toFixed(0)}/s p99 ${target.p99Ms.toFixed(1)} ms; at ${openRate}/s open loop p99 ${o.p99Ms.toFixed(1)} ms; pgbench ${floor.rps.toFixed(0)}/s p99 ${floor.p99Ms.toFixed(1)} ms`);
    const failures: string[] = [];
    for (const [name, r] of [["64 in flight", target], ["open loop", o], ["open loop, 64 chats", sp]] as const) {
      if (r.errors) failures.push(`${path} ${name}: ${r.errors} failed: HTTP statuses ${JSON.stringify(r.statuses)} (0 = no answer)`);
    }
    const checks: Check[] = [
      { label: `SendMessage throughput, 64 in flight, ${path}`, value: target.rps, unit: "req/s", target: path === "gateway" ? "≥ 1000" : "≥ 1000 (the target is through the gateway)", met: target.rps >= 1000 },
      { label: `SendMessage p99 at ${openRate} req/s from 64 clients (open loop), ${path}`, value: o.p99Ms, unit: "ms", target: path === "gateway" ? "≤ 50 ms" : "≤ 50 ms (the target is through the gateway)", met: o.p99Ms <= 50 && o.errors === 0 },
      { label: `SendMessage p99 at ${openRate} req/s from 64 clients in 64 chats (open loop), ${path}`, value: sp.p99Ms, unit: "ms", target: "informational (every send its own transaction)" },
      { label: `SendMessage p99 with 64 always in flight (closed loop), ${path}`, value: target.p99Ms, unit: "ms", target: "informational (64 in flight at 1,000 req/s average 64 ms by Little's law)" },
      { label: `SendMessage throughput ÷ pgbench throughput, ${path}`, value: target.rps / floor.rps, unit: "×", target: "informational" },
      { label: `seq gaps in the stored messages, ${path}`, value: Number(gaps[0]!.n), unit: "", target: "0", met: gaps[0]!.n === "0" },
    ];
    return {
      rows,
      checks,
      notes: [...failures, ...(path === "gateway" ? [`gateway path: cluster of dbservice, auth, chats, logs (each its own process, mTLS) behind NGINX; h2load over TLS`] : [
        `${chats} chats, ${streamsPerChat} requests in flight per chat (${chats * streamsPerChat} in all); ${rounds} rounds of ${perChat * chats} messages, service and pgbench taking turns; pgbench on ${poolMax} connections (the service's DB_POOL_MAX)`,
        "each service round ends when the outbox is empty (every event published to RabbitMQ with confirms); stored messages are counted against successful calls",
        `open loop: 64 h2load clients (${64 / chats} per chat, then one per chat over 64 chats) each starting ${openRate / 64} requests/s for ${ctx.quick ? 1 : 10} s after ${ctx.quick ? 1 : 2} s of warm-up on the same connections, up to 8 in flight per client; the target's p99 is read here (a closed loop of 64 clients cannot average under 64 ms at 1,000 req/s)`,
      ])],
    };
  } finally {
    await app?.stop();
    if (app) removeDir(app.dataDir);
    await pool.end();
    if (bc) await bc.stop();
    else await db.drop();
  }
}

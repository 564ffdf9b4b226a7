/**
 * Measures chats (not a test: numbers, no assertions). Two all-in-one processes (replicas A and B)
 * share PostgreSQL, RabbitMQ and the key pair:
 *   1. delivery: SUBS subscribers split over A and B on CHATS chats; RATE messages/s sent to A for
 *      SECONDS s; latency send → receive per delivery, lost, gaps, duplicates;
 *   2. SendMessage: CONCURRENCY closed-loop clients against A for SECONDS s.
 * Run: node --conditions=source --import tsx services/chats/test/measure.ts
 * (env RATE, SUBS, CHATS, SECONDS, CONCURRENCY override the defaults 500, 200, 20, 10, 64).
 */
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import { createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { AuthService } from "@crm/gen/crm/auth/v1/auth_pb";
import { ChatService } from "@crm/gen/crm/chat/v1/chat_pb";
import { TEST_AMQP_URL, freshDatabase } from "@crm/testkit";
import { startService, type ServiceProcess } from "./processes.js";

const num = (name: string, def: number) => Number(process.env[name] ?? def);
const RATE = num("RATE", 500);
const SUBS = num("SUBS", 200);
const CHATS = num("CHATS", 20);
const SECONDS = num("SECONDS", 10);
const CONCURRENCY = num("CONCURRENCY", 64);

const pct = (xs: number[], p: number) => {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};
const fmt = (xs: number[]) => `p50 ${pct(xs, 50).toFixed(1)} ms, p99 ${pct(xs, 99).toFixed(1)} ms, max ${pct(xs, 100).toFixed(1)} ms (n=${xs.length})`;

function client(baseUrl: string, token: string): Client<typeof ChatService> {
  const auth: Interceptor = (next) => (req) => (req.header.set("authorization", `Bearer ${token}`), next(req));
  return createClient(ChatService, createGrpcTransport({ baseUrl, interceptors: [auth] }));
}

const db = await freshDatabase("crm_measure");
const dataDir = mkdtempSync(join(os.tmpdir(), "crm-measure-"));
const apps: ServiceProcess[] = [];
const aborts: AbortController[] = [];
try {
  const env: Record<string, string> = { DATABASE_URL: db.url, AMQP_URL: TEST_AMQP_URL, DATA_DIR: dataDir, LOG_LEVEL: "warn", DB_POOL_MAX: "20" };
  const nodeArgs = process.env.PROFILE_DIR ? ["--cpu-prof", `--cpu-prof-dir=${process.env.PROFILE_DIR}`] : [];
  apps.push(await startService("all", { ...env, LOG_LEVEL: "info" }, 180_000, nodeArgs));
  apps.push(await startService("all", { ...env, LOG_LEVEL: "info" }, 180_000, nodeArgs));
  const [a, b] = apps as [ServiceProcess, ServiceProcess];
  const reg = await createClient(AuthService, createGrpcTransport({ baseUrl: a.url })).registerCompany({
    companyName: "Measure Ltd", email: `measure-${Date.now()}@example.com`, password: "correct horse battery staple", ownerName: "M",
  });
  const onA = client(a.url, reg.accessToken);
  const sender = client(a.url, reg.accessToken); // its own HTTP/2 connection, apart from the streams
  const onB = client(b.url, reg.accessToken);
  const chatIds: string[] = [];
  for (let i = 0; i < CHATS; i++) chatIds.push((await onA.createChat({ name: `measure ${i}` })).chat!.chatId);

  // Subscribers: alternate replicas; content carries the send time (same clock: this process).
  const lat: number[][] = [[], []];
  let lost = 0, gaps = 0, dups = 0, live = 0, errors = 0;
  const received: Set<number>[] = [];
  let run = "warm";
  for (let i = 0; i < SUBS; i++) {
    const replica = i % 2;
    const ac = new AbortController();
    aborts.push(ac);
    const seen = new Set<number>();
    received.push(seen);
    void (async () => {
      let last: bigint | undefined;
      try {
        for await (const ev of (replica ? onB : onA).subscribe({ chatId: chatIds[i % CHATS]! }, { signal: ac.signal })) {
          if (ev.event.case === "heartbeat") {
            if (last === undefined) live++;
            last ??= ev.event.value.lastSeq;
            continue;
          }
          if (ev.event.case !== "message") continue;
          const now = performance.now();
          const m = ev.event.value;
          if (last !== undefined && m.seq !== last + 1n) gaps++;
          last = m.seq;
          const [tag, k, sent] = m.content.split("|");
          if (tag !== run) continue;
          if (seen.has(Number(k))) dups++;
          seen.add(Number(k));
          lat[replica]!.push(now - Number(sent));
        }
      } catch (err) {
        if (!ac.signal.aborted) (errors++, console.error(String(err)));
      }
    })();
  }
  while (live < SUBS) await new Promise((r) => setTimeout(r, 20));

  async function openLoop(rate: number, seconds: number, tag: string) {
    const total = Math.round(rate * seconds);
    const perChat = new Map<string, number>();
    const t0 = performance.now();
    const inflight: Promise<unknown>[] = [];
    let sendErrors = 0;
    for (let n = 0; n < total; n++) {
      const due = t0 + (n * 1000) / rate;
      const wait = due - performance.now();
      if (wait > 1) await new Promise((r) => setTimeout(r, wait));
      const chatId = chatIds[n % CHATS]!;
      perChat.set(chatId, (perChat.get(chatId) ?? 0) + 1);
      inflight.push(sender.sendMessage({ chatId, content: `${tag}|${n}|${performance.now().toFixed(3)}` }).catch((err) => (sendErrors++ < 3 && console.error("send failed:", String(err)))));
    }
    await Promise.all(inflight);
    return { total, sendErrors, seconds: (performance.now() - t0) / 1000 };
  }

  await openLoop(50, 1, "warm");
  await new Promise((r) => setTimeout(r, 1000));
  run = "run";
  for (const s of received) s.clear();
  lat[0]!.length = 0;
  lat[1]!.length = 0;
  dups = 0;
  const sent = await openLoop(RATE, SECONDS, "run");
  const expected = SUBS * (sent.total / CHATS);
  const deadline = Date.now() + 15_000;
  const got = () => received.reduce((n, s) => n + s.size, 0);
  while (got() < expected && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  lost = expected - got();
  const all = [...lat[0]!, ...lat[1]!];
  console.log(`load average before/after: ${os.loadavg().map((x) => x.toFixed(1)).join(" ")} on ${os.cpus().length} cores`);
  console.log(`delivery: ${sent.total} messages at ${(sent.total / sent.seconds).toFixed(0)} msg/s to ${SUBS} subscribers on ${CHATS} chats (A and B): ${got()} deliveries, lost ${lost}, gaps ${gaps}, duplicates ${dups}, send errors ${sent.sendErrors}, stream errors ${errors}`);
  console.log(`  all: ${fmt(all)}`);
  console.log(`  subscribers on A (same process as the sender's replica): ${fmt(lat[0]!)}`);
  console.log(`  subscribers on B (via RabbitMQ to the other replica):   ${fmt(lat[1]!)}`);
  for (const ac of aborts) ac.abort();

  // SendMessage closed loop.
  const api: number[] = [];
  let apiErrors = 0;
  const t0 = performance.now();
  const end = t0 + SECONDS * 1000;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async (_, w) => {
      const c = client(a.url, reg.accessToken);
      for (let i = 0; performance.now() < end; i++) {
        const s = performance.now();
        try {
          await c.sendMessage({ chatId: chatIds[(w + i) % CHATS]!, content: `load ${w} ${i}` });
          api.push(performance.now() - s);
        } catch {
          apiErrors++;
        }
      }
    }),
  );
  const secs = (performance.now() - t0) / 1000;
  console.log(`SendMessage, ${CONCURRENCY} concurrent gRPC clients direct to replica A (no gateway): ${(api.length / secs).toFixed(0)} req/s, ${fmt(api)}, errors ${apiErrors}`);
} finally {
  for (const ac of aborts) ac.abort();
  for (const p of apps) await p.stop();
  rmSync(dataDir, { recursive: true, force: true });
  if (process.env.KEEP_DB) console.log(`database kept: ${db.url}`);
  else await db.drop();
}

/**
 * The simulated-users load generator, its own process (its CPU stays out of the bench driver's
 * event loop). Ramps through `steps` user counts; each user holds one chat stream, sends a
 * message every `messageEverySec`, does a timer action every `timerEverySec` (start/end in turn)
 * and a read every `readEverySec` (ListMessages and GetWorkingTimer in turn), each at a random
 * phase. Where the users file gives them a team's deal board, each user also watches the board
 * (WatchRecords on its pipeline's deals), opens a deal (GetDeal) every `openEverySec` and moves
 * one to another stage (MoveDeal) every `moveEverySec`; every move must reach every watcher of
 * the board. Per step it prints {"event":"measure-start"} / {"event":"measure-end"} (the bench samples
 * server CPU there) and {"event":"result", …}; it stops after the first step that misses a limit.
 *   node --import tsx bench/servers/users-driver.ts CONFIG.json
 */
import { readFileSync } from "node:fs";
import http2 from "node:http2";
import { createClient, type Client, type Transport } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { ChatService } from "@crm/gen/crm/chat/v1/chat_pb";
import { TimerService } from "@crm/gen/crm/timer/v1/timer_pb";
import { create, fromBinary } from "@bufbuild/protobuf";
import { DealService } from "@crm/gen/crm/records/v1/deal_pb";
import { ObjectType, Operator } from "@crm/gen/crm/records/v1/common_pb";
import { WatchRecordsRequestSchema, WatchRecordsResponseSchema } from "@crm/gen/crm/records/v1/stream_pb";
import { rawSubscribe, until, type Subscriber } from "../lib/fanout.js";
import { latency } from "../lib/stats.js";
import type { Board, SimWorld, SimUser } from "../lib/users.js";
import { frameCache, watchRecords, type Watcher, type WatchFrame } from "../lib/watch.js";

export interface DriverConfig {
  baseUrl: string;
  caFile?: string;
  usersFile: string;
  steps: number[];
  stepSeconds: number;
  drainSeconds: number;
  perConnection: number;
  messageEverySec: number;
  timerEverySec: number;
  readEverySec: number;
  /** CRM work (users whose company has a board): a GetDeal every openEverySec, a MoveDeal every moveEverySec. */
  openEverySec: number;
  moveEverySec: number;
  apiP99Ms: number;
  deliveryP99Ms: number;
  maxInFlight: number;
}

const cfg = JSON.parse(readFileSync(process.argv[2]!, "utf8")) as DriverConfig;
const world = JSON.parse(readFileSync(cfg.usersFile, "utf8")) as SimWorld;
const all: SimUser[] = world.users;
const emit = (o: object) => process.stdout.write(JSON.stringify(o) + "\n");
const ca = cfg.caFile ? readFileSync(cfg.caFile) : undefined;

interface Live {
  user: SimUser;
  headers: Record<string, string>;
  chat: Client<typeof ChatService>;
  timer: Client<typeof TimerService>;
  sub: Subscriber;
  timerRunning: boolean;
  readTurn: number;
  /** The user's team board and their watch of it (CRM work), if they have one. */
  board?: Board | undefined;
  deals?: Client<typeof DealService> | undefined;
  watch?: Watcher | undefined;
}

const transports: Transport[] = [];
const transportFor = (i: number) => {
  const k = Math.floor(i / cfg.perConnection);
  while (transports.length <= k) transports.push(createGrpcTransport({ baseUrl: cfg.baseUrl, ...(ca ? { nodeOptions: { ca } } : {}), pingIntervalMs: 30_000 }));
  return transports[k]!;
};

// Streams are read off bare HTTP/2 (lib/fanout.ts rawSubscribe): this process shares the CPUs
// with the server, and connect-node's streaming client cost more per delivery than the server.
const sessions: http2.ClientHttp2Session[] = [];
const sessionFor = (i: number) => {
  const k = Math.floor(i / cfg.perConnection);
  while (sessions.length <= k) sessions.push(http2.connect(cfg.baseUrl, ca ? { ca } : {}).on("error", () => {}));
  return sessions[k]!;
};

/** 0 message, 1 timer action, 2 read, 3 open a deal, 4 move a deal (3 and 4 where the company has a board). */
type Kind = 0 | 1 | 2 | 3 | 4;
const chatKinds: Kind[] = [0, 1, 2];
const kinds: Kind[] = [0, 1, 2, 3, 4];

let run = "setup";
const live: Live[] = [];
let counter = 0;

/** The latest MoveDeal sent for each deal in this run: a watched change of it is keyed "<deal id>:<etag>". */
const moveSent = new Map<string, { run: string; ms: number }>();
const parseWatch = frameCache((bytes: Buffer): WatchFrame => {
  const ev = fromBinary(WatchRecordsResponseSchema, bytes);
  if (ev.event.case === "heartbeat") return { heartbeat: true, version: ev.event.value.lastVersion, key: undefined, sentMs: 0 };
  if (ev.event.case !== "change") return { heartbeat: false, version: 0n, key: undefined, sentMs: 0 };
  const c = ev.event.value.change!;
  const deal = c.record?.record.case === "deal" ? c.record.record.value : undefined;
  const sent = deal ? moveSent.get(deal.id) : undefined;
  const ours = deal && sent && sent.run === run;
  return { heartbeat: false, version: c.version, key: ours ? `${deal.id}:${deal.etag}` : undefined, sentMs: sent?.ms ?? 0 };
});
const watchBoard = (i: number, token: string, board: Board) =>
  watchRecords(sessionFor(i), token, create(WatchRecordsRequestSchema, {
    objectType: ObjectType.DEAL,
    filter: { node: { case: "condition", value: { field: "pipeline_id", operator: Operator.EQUALS, values: [board.pipelineId] } } },
  }), parseWatch);
const pick = <T>(xs: T[]): T => xs[Math.floor(Math.random() * xs.length)]!;

async function addUsers(target: number) {
  const fresh: Live[] = [];
  for (let i = live.length; i < target && i < all.length; i++) {
    const user = all[i]!;
    const t = transportFor(i);
    const headers = { authorization: `Bearer ${user.token}` };
    const chat = createClient(ChatService, t);
    const board = user.board ? world.boards[user.board] : undefined;
    const l: Live = {
      user, headers, chat, timer: createClient(TimerService, t), sub: rawSubscribe(sessionFor(i), user.token, user.chatId, () => run), timerRunning: false, readTurn: i % 2,
      board, deals: board ? createClient(DealService, t) : undefined, watch: board ? watchBoard(i, user.token, board) : undefined,
    };
    live.push(l);
    fresh.push(l);
  }
  const streams = fresh.flatMap((l) => (l.watch ? [l.sub, l.watch] : [l.sub]));
  const ok = await Promise.race([Promise.all(streams.map((x) => x.live)).then(() => true), new Promise<false>((r) => setTimeout(() => r(false), 120_000))]);
  if (!ok) throw new Error(`${streams.filter((x) => x.errors.length).length} streams failed, others not live within 120 s`);
}

async function step(users: number) {
  await addUsers(users);
  emit({ event: "live", users: live.length });
  run = `s${users}x${Date.now().toString(36)}`;
  for (const l of live) (l.sub.latencies.length = 0), l.sub.seen.clear(), (l.sub.duplicates = 0), (l.sub.gaps = 0);
  for (const w of live.flatMap((l) => l.watch ?? [])) (w.latencies.length = 0), w.seen.clear(), (w.duplicates = 0), (w.gaps = 0);
  /** Per board: the "<deal id>:<etag>" of each move of this step; each watcher of it must see them all. */
  const moved = new Map<string, string[]>();
  const api: number[] = [];
  const errors: string[] = [];
  let errorCount = 0;
  let skipped = 0;
  let inFlight = 0;
  const sends = new Map<string, number>();
  const counts = { message: 0, timer: 0, read: 0, open: 0, move: 0 };
  const pending = new Set<Promise<void>>();
  const call = <T = unknown>(fn: () => Promise<T>, onOk?: (answer: T) => void) => {
    if (inFlight >= cfg.maxInFlight) return void skipped++;
    inFlight++;
    const t0 = performance.now();
    const p = fn()
      .then(
        (answer) => (api.push(performance.now() - t0), onOk?.(answer)),
        (err: unknown) => {
          errorCount++;
          if (errors.length < 5) errors.push(String((err as Error)?.message ?? err).slice(0, 200));
        },
      )
      .finally(() => (inFlight--, pending.delete(p)));
    pending.add(p);
  };
  // Timing wheel: 50 ms slots over the step; each user's activities at random phases.
  const slotMs = 50;
  const slots = Math.ceil((cfg.stepSeconds * 1000) / slotMs);
  const wheel: [number, Kind][][] = Array.from({ length: slots }, () => []);
  const every = [cfg.messageEverySec, cfg.timerEverySec, cfg.readEverySec, cfg.openEverySec, cfg.moveEverySec] as const;
  for (let u = 0; u < live.length; u++) {
    for (const kind of live[u]!.board ? kinds : chatKinds) {
      if (!(every[kind] > 0)) continue;
      for (let t = Math.random() * every[kind] * 1000; t < cfg.stepSeconds * 1000; t += every[kind] * 1000) wheel[Math.floor(t / slotMs)]!.push([u, kind]);
    }
  }
  emit({ event: "measure-start" });
  const t0 = performance.now();
  for (let s = 0; s < slots; s++) {
    const wait = t0 + s * slotMs - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    for (const [u, kind] of wheel[s]!) {
      const l = live[u]!;
      if (kind === 0) {
        counts.message++;
        const chatId = l.user.chatId;
        call(() => l.chat.sendMessage({ chatId, content: `b|${counter++}|${performance.now().toFixed(3)}|${run}` }, { headers: l.headers }), () => sends.set(chatId, (sends.get(chatId) ?? 0) + 1));
      } else if (kind === 1) {
        counts.timer++;
        const start = !l.timerRunning;
        l.timerRunning = start;
        call<unknown>(() => (start ? l.timer.startTimer({ description: "simulated work" }, { headers: l.headers }) : l.timer.endTimer({}, { headers: l.headers })));
      } else if (kind === 3) {
        counts.open++;
        const id = pick(l.board!.dealIds);
        call(() => l.deals!.getDeal({ id }, { headers: l.headers }));
      } else if (kind === 4) {
        counts.move++;
        const board = l.board!;
        const id = pick(board.dealIds);
        moveSent.set(id, { run, ms: performance.now() });
        // the change's key is known once the answer names the deal's new etag
        call(() => l.deals!.moveDeal({ id, stageId: pick(board.stageIds) }, { headers: l.headers }), ({ deal }) => {
          if (!deal) return;
          const list = moved.get(l.user.board!) ?? [];
          list.push(`${deal.id}:${deal.etag}`);
          moved.set(l.user.board!, list);
        });
      } else {
        counts.read++;
        const turn = l.readTurn++ % 2;
        call<unknown>(() => (turn === 0 ? l.chat.listMessages({ chatId: l.user.chatId, limit: 20 }, { headers: l.headers }) : l.timer.getWorkingTimer({}, { headers: l.headers })));
      }
    }
  }
  const activeSeconds = (performance.now() - t0) / 1000;
  await Promise.race([Promise.all(pending), new Promise((r) => setTimeout(r, cfg.drainSeconds * 1000))]);
  const members = new Map<string, number>();
  for (const l of live) members.set(l.user.chatId, (members.get(l.user.chatId) ?? 0) + 1);
  const expected = [...sends].reduce((n, [chat, k]) => n + k * (members.get(chat) ?? 0), 0);
  const received = () => live.reduce((n, l) => n + l.sub.seen.size, 0);
  // Watches: every move on a board reaches each of its watchers.
  const watchers = live.filter((l) => l.watch);
  const watchExpected = watchers.reduce((n, l) => n + (moved.get(l.user.board!)?.length ?? 0), 0);
  const watchReceived = () => watchers.reduce((n, l) => n + (moved.get(l.user.board!) ?? []).filter((k) => l.watch!.seen.has(k)).length, 0);
  await until(() => received() >= expected, cfg.drainSeconds * 1000);
  await until(() => watchReceived() >= watchExpected, cfg.drainSeconds * 1000);
  emit({ event: "measure-end" });
  const delivered = received();
  const watchDelivered = watchReceived();
  const d = latency(live.flatMap((l) => l.sub.latencies));
  const w = latency(watchers.flatMap((l) => l.watch!.latencies));
  const a = latency(api);
  const streamErrors = live.flatMap((l) => [...l.sub.errors, ...(l.watch?.errors ?? [])]);
  const gaps = live.reduce((n, l) => n + l.sub.gaps, 0);
  const result = {
    event: "result",
    users: live.length,
    activeSeconds,
    calls: api.length + errorCount,
    callsPerSec: (api.length + errorCount) / activeSeconds,
    counts,
    apiP50Ms: a.p50Ms,
    apiP99Ms: a.p99Ms,
    errors: errorCount + skipped + streamErrors.length,
    skipped,
    errorSamples: [...errors, ...streamErrors.slice(0, 3)],
    messages: [...sends.values()].reduce((x, y) => x + y, 0),
    expectedDeliveries: expected,
    delivered,
    lost: expected - delivered,
    gaps,
    deliveryP50Ms: d.p50Ms,
    deliveryP99Ms: d.p99Ms,
    deliveryMaxMs: d.maxMs,
    watchers: watchers.length,
    watchDelivered,
    watchLost: watchExpected - watchDelivered,
    watchDuplicates: watchers.reduce((n, l) => n + l.watch!.duplicates, 0),
    watchP50Ms: w.p50Ms,
    watchP99Ms: w.p99Ms,
  };
  const within = (p99: number) => p99 <= cfg.deliveryP99Ms || Number.isNaN(p99);
  const pass = result.errors === 0 && result.lost === 0 && result.watchLost === 0 && a.p99Ms <= cfg.apiP99Ms && within(d.p99Ms) && within(w.p99Ms);
  emit({ ...result, pass });
  return pass;
}

emit({ event: "started", users: all.length });
try {
  for (const users of cfg.steps) {
    if (users > all.length) break;
    if (!(await step(users))) break;
  }
  emit({ event: "done" });
} catch (err) {
  emit({ event: "error", message: String((err as Error)?.stack ?? err) });
} finally {
  for (const l of live) l.sub.close(), l.watch?.close();
  setTimeout(() => process.exit(0), 500).unref();
}

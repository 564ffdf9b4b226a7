/**
 * Chat fan-out measurement shared by the fan-out and simulated-user scenarios: subscribers hold
 * ChatService/Subscribe streams; every message's content carries its send time; each delivery's
 * latency, and per subscriber the lost, duplicated and out-of-sequence messages, are counted.
 */
import http2 from "node:http2";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { rawServerStream } from "./raw-stream.js";
import { ChatService, SubscribeRequestSchema, SubscribeResponseSchema, type Message } from "@crm/gen/crm/chat/v1/chat_pb";

export function grpcTransport(baseUrl: string, token: string): Transport {
  const auth: Interceptor = (next) => (req) => {
    req.header.set("authorization", `Bearer ${token}`);
    return next(req);
  };
  return createGrpcTransport({ baseUrl, interceptors: [auth], pingIntervalMs: 30_000 });
}

export const chatClient = (t: Transport): Client<typeof ChatService> => createClient(ChatService, t);

/** "b|<k>|<sent ms>|<run>": k numbers the messages of one chat in send order. */
export const stamp = (run: string, k: number) => `b|${k}|${performance.now().toFixed(3)}|${run}`;
export function parseStamp(content: string, run: string): { k: number; sentMs: number } | undefined {
  const p = content.split("|");
  if (p[0] !== "b" || p[3] !== run) return undefined;
  return { k: Number(p[1]), sentMs: Number(p[2]) };
}

export interface Subscriber {
  chatId: string;
  /** Latencies (ms) of first deliveries of this run's messages. */
  latencies: number[];
  /** k values received (first time). */
  seen: Set<number>;
  duplicates: number;
  /** Deliveries whose seq was not the previous seq + 1. */
  gaps: number;
  errors: string[];
  live: Promise<void>;
  close(): void;
}

/** Counts one delivered message for subscriber `s` (latency, gaps, duplicates). */
function deliver(s: Subscriber, state: { lastSeq?: bigint }, m: Message, run: string, now: number, onDelivery?: (latencyMs: number) => void) {
  if (state.lastSeq !== undefined && m.seq !== state.lastSeq + 1n) s.gaps++;
  state.lastSeq = m.seq;
  const st = parseStamp(m.content, run);
  if (!st) return;
  if (s.seen.has(st.k)) {
    s.duplicates++;
    return;
  }
  s.seen.add(st.k);
  const latency = now - st.sentMs;
  s.latencies.push(latency);
  onDelivery?.(latency);
}

/**
 * Opens a Subscribe stream (live only) on a bare HTTP/2 gRPC stream of `session` (raw-stream.ts);
 * `live` resolves at the first heartbeat (the stream is bound and every message stored after that
 * reaches it).
 */
export function rawSubscribe(session: http2.ClientHttp2Session, token: string, chatId: string, run: () => string, onDelivery?: (latencyMs: number) => void): Subscriber {
  const state: { lastSeq?: bigint } = {};
  const counts = { latencies: [] as number[], seen: new Set<number>(), duplicates: 0, gaps: 0 };
  const raw = rawServerStream(session, {
    path: `/${ChatService.typeName}/Subscribe`,
    token,
    request: toBinary(SubscribeRequestSchema, create(SubscribeRequestSchema, { chatId })),
    onMessage(bytes, now) {
      const ev = fromBinary(SubscribeResponseSchema, bytes);
      if (ev.event.case === "message") deliver(s, state, ev.event.value, run(), now, onDelivery);
      return ev.event.case === "heartbeat";
    },
  });
  const s: Subscriber = Object.assign(counts, { chatId, errors: raw.errors, live: raw.live, close: raw.close });
  return s;
}

/** Waits until `done()` or `timeoutMs`; polls every 20 ms. */
export async function until(done: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  while (!done()) {
    if (performance.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 20));
  }
  return true;
}

/**
 * Sends at `rate` messages/s for `seconds` (open loop: a late answer does not delay the next
 * send), round-robin over `chats`; returns per chat how many were accepted, and API latencies.
 */
export async function sendOpenLoop(o: { clients: Client<typeof ChatService>[]; chatIds: string[]; rate: number; seconds: number; run: string; maxInFlight: number }) {
  const sentPerChat = new Map<string, number>(o.chatIds.map((c) => [c, 0]));
  const nextK = new Map<string, number>(o.chatIds.map((c) => [c, 0]));
  const apiLatencies: number[] = [];
  const errors: string[] = [];
  let errorCount = 0;
  let skipped = 0;
  let inFlight = 0;
  let issued = 0;
  const pending = new Set<Promise<void>>();
  const t0 = performance.now();
  const total = Math.round(o.rate * o.seconds);
  await new Promise<void>((resolve) => {
    const tick = () => {
      const due = Math.min(total, Math.floor(((performance.now() - t0) / 1000) * o.rate));
      while (issued < due) {
        const chatId = o.chatIds[issued % o.chatIds.length]!;
        const client = o.clients[issued % o.clients.length]!;
        issued++;
        if (inFlight >= o.maxInFlight) {
          skipped++; // the service is not keeping up: counted, never queued without bound
          continue;
        }
        const k = nextK.get(chatId)!;
        nextK.set(chatId, k + 1);
        inFlight++;
        const start = performance.now();
        const p = client
          .sendMessage({ chatId, content: stamp(o.run, k) })
          .then(
            () => {
              apiLatencies.push(performance.now() - start);
              sentPerChat.set(chatId, sentPerChat.get(chatId)! + 1);
            },
            (err: unknown) => {
              errorCount++;
              if (errors.length < 5) errors.push(String((err as Error)?.message ?? err));
            },
          )
          .finally(() => {
            inFlight--;
            pending.delete(p);
          });
        pending.add(p);
      }
      if (issued >= total) return resolve();
      setTimeout(tick, 5);
    };
    tick();
  });
  await Promise.all(pending);
  return { sentPerChat, apiLatencies, errors, errorCount, skipped, seconds: (performance.now() - t0) / 1000 };
}

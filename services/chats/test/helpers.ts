/** Test support for the chats tests: companies with several users, stream watchers, bounded waits. */
import assert from "node:assert/strict";
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import pg from "pg";
import { hashPassword } from "@crm/auth/passwords";
import { AuthService } from "@crm/gen/crm/auth/v1/auth_pb";
import { ChatService, type Message } from "@crm/gen/crm/chat/v1/chat_pb";
import { until, type TestApp } from "@crm/testkit";

export const PASSWORD = "correct horse battery staple";

export interface User {
  userId: string;
  companyId: string;
  token: string;
  /** The login, to log in again (a second session). */
  email: string;
  chat: Client<typeof ChatService>;
}

let counter = 0;
const unique = () => `${process.pid}-${Date.now().toString(36)}-${++counter}`;

/**
 * Registers a company through AuthService and adds `extra` colleagues. Adding users is the admin
 * service's job; here they are inserted directly (with a real password hash) and then log in
 * through AuthService like anyone else, so every token is a real one.
 */
export async function company(app: TestApp, dbUrl: string, extra = 2, opts: { protocol?: "connect" | "grpc" } = {}): Promise<{ owner: User; users: User[]; companyId: string }> {
  const n = unique();
  const auth = app.client(AuthService);
  const reg = await auth.registerCompany({ companyName: `Chat Co ${n}`, email: `owner-${n}@chat.example`, password: PASSWORD, ownerName: `Owner ${n}` });
  const c = new pg.Client({ connectionString: dbUrl });
  await c.connect();
  const hash = await hashPassword(PASSWORD);
  const emails: string[] = [];
  try {
    for (let i = 0; i < extra; i++) {
      const email = `user${i}-${n}@chat.example`;
      await c.query("INSERT INTO users (company_id, email, name, role, status, password_hash) VALUES ($1, $2, $3, 'member', 'active', $4)", [reg.companyId, email, `User ${i}`, hash]);
      emails.push(email);
    }
  } finally {
    await c.end();
  }
  const as = (userId: string, token: string, email: string): User => ({ userId, companyId: reg.companyId, token, email, chat: app.client(ChatService, { token, ...opts }) });
  const users: User[] = [];
  for (const email of emails) {
    const l = await auth.login({ email, password: PASSWORD });
    users.push(as(l.userId, l.accessToken, email));
  }
  return { owner: as(reg.userId, reg.accessToken, `owner-${n}@chat.example`), users, companyId: reg.companyId };
}

export async function expectCode(p: Promise<unknown> | (() => Promise<unknown>), code: Code, message?: RegExp) {
  await assert.rejects(typeof p === "function" ? p() : p, (err: unknown) => {
    const e = ConnectError.from(err);
    assert.equal(Code[e.code], Code[code], `expected ${Code[code]}, got ${Code[e.code]}: ${e.rawMessage}`);
    if (message) assert.match(e.rawMessage, message);
    return true;
  });
}

export interface Watch {
  messages: Message[];
  heartbeats: number;
  error: ConnectError | undefined;
  ended: boolean;
  /** performance.now() when the stream ended (0 while open). */
  endedAt: number;
  /** Waits until the stream is live (the server's first heartbeat, sent after the replay). */
  live(ms?: number): Promise<void>;
  /** Waits until at least `n` messages arrived. */
  count(n: number, ms?: number): Promise<Message[]>;
  /** Waits until the stream ended (with or without an error). */
  end(ms?: number): Promise<void>;
  close(): Promise<void>;
}

/** Opens Subscribe and records what arrives, in the background. */
export function watch(client: Client<typeof ChatService>, chatId: string, afterSeq?: bigint): Watch {
  const ac = new AbortController();
  const w: Watch = {
    messages: [],
    heartbeats: 0,
    error: undefined,
    ended: false,
    endedAt: 0,
    count: async (n, ms = 15_000) => {
      await until(`${n} messages on the stream (have ${w.messages.length})`, () => w.messages.length >= n || w.ended, ms);
      if (w.messages.length < n) throw new Error(`stream ended after ${w.messages.length} of ${n} messages: ${w.error?.message ?? "no error"}`);
      return w.messages;
    },
    end: (ms = 15_000) => until("the stream to end", () => w.ended, ms),
    live: async (ms = 15_000) => {
      await until("the stream to go live", () => w.heartbeats > 0 || w.ended, ms);
      if (w.heartbeats === 0) throw new Error(`stream ended before going live: ${w.error?.message ?? "no error"}`);
    },
    close: async () => {
      ac.abort();
      await done;
    },
  };
  const done = (async () => {
    try {
      for await (const ev of client.subscribe({ chatId, afterSeq }, { signal: ac.signal })) {
        if (ev.event.case === "message") w.messages.push(ev.event.value);
        else if (ev.event.case === "heartbeat") w.heartbeats++;
      }
    } catch (err) {
      if (!ac.signal.aborted) w.error = ConnectError.from(err);
    } finally {
      w.endedAt = performance.now();
      w.ended = true;
    }
  })();
  return w;
}

/** Asserts that `messages` are exactly seqs from..to, in order, each once. */
export function assertSeqs(messages: Message[], from: number, to: number) {
  const seqs = messages.map((m) => Number(m.seq));
  const expected = Array.from({ length: to - from + 1 }, (_, i) => from + i);
  if (seqs.length !== expected.length || seqs.some((s, i) => s !== expected[i])) {
    const firstBad = seqs.findIndex((s, i) => s !== expected[i]);
    assert.fail(`expected seqs ${from}..${to} (${expected.length}), got ${seqs.length}; first difference at index ${firstBad}: ${seqs.slice(Math.max(0, firstBad - 3), firstBad + 3).join(",")}`);
  }
}

export async function sql<T extends pg.QueryResultRow = pg.QueryResultRow>(dbUrl: string, text: string, params: unknown[] = []): Promise<T[]> {
  const c = new pg.Client({ connectionString: dbUrl });
  await c.connect();
  try {
    return (await c.query<T>(text, params)).rows;
  } finally {
    await c.end();
  }
}

/** Rows in the chat tables and the outbox (to prove a rejected request stored nothing). */
export async function counts(dbUrl: string) {
  const [r] = await sql<{ chats: string; members: string; messages: string; outbox: string }>(
    dbUrl,
    "SELECT (SELECT count(*) FROM chats) AS chats, (SELECT count(*) FROM chat_members) AS members, (SELECT count(*) FROM messages) AS messages, (SELECT count(*) FROM outbox) AS outbox",
  );
  return r!;
}

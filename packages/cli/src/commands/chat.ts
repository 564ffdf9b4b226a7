/** crm chat list, crm chat send CHAT TEXT, crm chat tail CHAT (history, then live; reconnects). */
import { randomUUID } from "node:crypto";
import { setTimeout as delay } from "node:timers/promises";
import { toJson } from "@bufbuild/protobuf";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Command } from "commander";
import { ChatService, MessageSchema, type Message } from "@crm/gen/crm/chat/v1/chat_pb";
import type { Context, Wrap } from "../context.js";
import { CliError, Exit, unwrap, usageError } from "../errors.js";
import { jsonLine, table } from "../format.js";
import { iso, type Api } from "../session.js";
import { uuidOf } from "../ids.js";

/** The server sends a heartbeat on a stream idle for about 15 s: silence for longer means a dead connection. */
const IDLE_MS = 45_000;

export function registerChat(program: Command, act: Wrap) {
  const chat = program.command("chat").description("team chats");
  chat.command("list").description("your chats, most recent activity first").action(act(list));
  chat
    .command("send")
    .description("send a message")
    .argument("<chat>", "the chat's name or id")
    .argument("<text...>", "the message")
    .action(act(send));
  chat
    .command("tail")
    .description("print a chat's latest messages, then follow it live (reconnects; Ctrl-C stops)")
    .argument("<chat>", "the chat's name or id")
    .option("-n, --lines <n>", "how many earlier messages to print first (0..200)", "20")
    .option("--no-follow", "print the latest messages and stop")
    .action(act(tail));
}

/** The id of a chat given by id or by name (exact, ignoring case). */
async function resolveChat(api: Api, text: string): Promise<{ chatId: string; name: string }> {
  const chats = api.client(ChatService);
  const id = uuidOf(text);
  if (id) return { chatId: id, name: text };
  const found: { chatId: string; name: string }[] = [];
  let pageToken = "";
  do {
    const r = await chats.listChats({ pageSize: 200, pageToken });
    for (const c of r.chats) if (c.name.toLowerCase() === text.toLowerCase()) found.push({ chatId: c.chatId, name: c.name });
    pageToken = r.nextPageToken;
  } while (pageToken);
  if (found.length === 1) return found[0]!;
  if (found.length === 0) throw new CliError(`no chat of yours is called ${JSON.stringify(text)} (crm chat list shows them)`);
  throw new CliError(`${found.length} chats are called ${JSON.stringify(text)}: give the id (${found.map((c) => c.chatId).join(", ")})`);
}

async function list(ctx: Context): Promise<number> {
  const chats = (await ctx.connect()).client(ChatService);
  const all = [];
  let pageToken = "";
  do {
    const r = await chats.listChats({ pageSize: 200, pageToken });
    all.push(...r.chats);
    pageToken = r.nextPageToken;
  } while (pageToken);
  const rows = all.map((c) => ({ chatId: c.chatId, name: c.name, members: c.memberIds.length, lastSeq: Number(c.lastSeq), unread: Number(c.unreadCount), lastMessageAt: iso(c.lastMessageAt) }));
  if (ctx.json) ctx.out(`${JSON.stringify(rows)}\n`);
  else ctx.out(table(["NAME", "MEMBERS", "UNREAD", "LAST MESSAGE", "ID"], rows.map((c) => [c.name, String(c.members), String(c.unread), localTime(c.lastMessageAt), c.chatId])));
  return Exit.ok;
}

async function send(ctx: Context, chatText: string, words: string[]): Promise<number> {
  const api = await ctx.connect();
  const { chatId } = await resolveChat(api, chatText);
  const content = words.join(" ");
  if (!content.trim()) throw usageError("the message is empty");
  const r = await api.client(ChatService).sendMessage({ chatId, content, clientMessageId: randomUUID() });
  if (ctx.json) ctx.out(jsonLine(toJson(MessageSchema, r.message!)));
  else ctx.note(`Sent (#${r.message?.seq}).`);
  return Exit.ok;
}

/** "2026-12-07 11:20:05" in this machine's time zone ("" for none). */
export function localTime(isoOrMs: string | number): string {
  if (isoOrMs === "") return "";
  return new Date(isoOrMs).toLocaleString("sv-SE");
}

/** One message for people: time, author ("you" or the id's last 4 characters, as the console), text. */
export function messageLine(m: Message, me: string): string {
  const who = m.senderId === me ? "you" : `member …${m.senderId.slice(-4)}`;
  const text = m.content.replace(/\r?\n/g, "\n    ");
  return `${localTime(m.createdAt ? timestampMs(m.createdAt) : "")}  ${who}: ${text}\n`;
}

async function tail(ctx: Context, chatText: string, opts: { lines: string; follow: boolean }): Promise<number> {
  const lines = Number(opts.lines);
  if (!Number.isInteger(lines) || lines < 0 || lines > 200) throw usageError(`--lines ${JSON.stringify(opts.lines)}: a number from 0 to 200`);
  const api = await ctx.connect();
  const me = (await api.session())?.userId ?? "";
  const { chatId, name } = await resolveChat(api, chatText);
  const chats = api.client(ChatService);
  const print = (m: Message) => ctx.out(ctx.json ? jsonLine(toJson(MessageSchema, m)) : messageLine(m, me));

  let last = 0n;
  if (lines > 0) {
    const page = await chats.listMessages({ chatId, limit: lines });
    page.messages.forEach(print);
    last = page.lastSeq;
  } else {
    last = (await chats.listMessages({ chatId, limit: 1 })).lastSeq;
  }
  if (!opts.follow) return Exit.ok;
  if (!ctx.json) ctx.note(`— following ${name} (Ctrl-C stops) —`);

  const stop = ctx.io.signal;
  let failures = 0;
  while (!stop?.aborted) {
    const ac = new AbortController();
    const onStop = () => ac.abort();
    stop?.addEventListener("abort", onStop);
    let idle = setTimeout(() => ac.abort(new Error("no heartbeat")), IDLE_MS);
    const token = await api.accessToken();
    try {
      for await (const ev of chats.subscribe({ chatId, afterSeq: last }, { signal: ac.signal })) {
        clearTimeout(idle);
        idle = setTimeout(() => ac.abort(new Error("no heartbeat")), IDLE_MS);
        failures = 0;
        if (ev.event.case !== "message") continue;
        const m = ev.event.value;
        if (m.seq <= last) continue; // already printed (a replay after a reconnect)
        print(m);
        last = m.seq;
      }
      // The server ended the stream (e.g. a replica draining): reconnect at once.
    } catch (e) {
      if (stop?.aborted) break;
      if (unwrap(e) instanceof CliError) throw unwrap(e); // e.g. the session ended: exit 3
      const err = ConnectError.from(e);
      if (err.code === Code.Unauthenticated) await api.refresh(token); // ends with exit 3 when the session ended
      else if (err.code !== Code.Unavailable && err.code !== Code.Canceled && err.code !== Code.DeadlineExceeded && err.code !== Code.Unknown && err.code !== Code.Internal && err.code !== Code.ResourceExhausted) throw err;
      else {
        const wait = Math.min(10_000, 500 * 2 ** failures++);
        ctx.note(`crm: the chat's stream broke (${err.rawMessage || err.message}); reconnecting in ${(wait / 1000).toFixed(1)} s`);
        await delay(wait, undefined, stop ? { signal: stop } : {}).catch(() => undefined);
      }
    } finally {
      clearTimeout(idle);
      stop?.removeEventListener("abort", onStop);
    }
  }
  return Exit.ok;
}

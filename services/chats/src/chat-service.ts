/** crm.chat.v1.ChatService handlers. Dependencies come in; no wiring here. */
import { create, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { Client, HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { AppError, Inbox, principalOf } from "@crm/kit";
import { SubscribeResponseSchema, type ChatService, type Message } from "@crm/gen/crm/chat/v1/chat_pb";
import type { DbChatService } from "@crm/gen/crm/db/v1/db_chat_pb";
import type { Hub, LiveEvent } from "./hub.js";
import { notFound } from "./rules.js";
import { validateRecordFilter, validateSetChatRecord } from "./record-ref.js";
import {
  validateAddMembers, validateCreateChat, validateListChats, validateListMessages, validateMarkRead, validateRemoveMember, validateSendMessage, validateSubscribe,
} from "./validation.js";

export interface ChatDeps {
  db: Client<typeof DbChatService>;
  hub: Hub;
  /** A heartbeat goes out when a stream has been idle this long. */
  heartbeatMs: number;
  /** Live events buffered per stream before it falls back to reading from the database. */
  maxBuffered?: number;
  now?: () => number;
}

type StreamEvent = MessageInitShape<typeof SubscribeResponseSchema>;

/**
 * The stream event of a live message, one object for every stream of this replica that shows it
 * (the hub hands them all the same Message), so the server encodes it once, not once per subscriber.
 */
const liveEvents = new WeakMap<Message, MessageShape<typeof SubscribeResponseSchema>>();
function liveEvent(message: Message): StreamEvent {
  let e = liveEvents.get(message);
  if (!e) liveEvents.set(message, (e = create(SubscribeResponseSchema, { event: { case: "message", value: message } })));
  return e;
}


export function chatService(deps: ChatDeps): ServiceImpl<typeof ChatService> {
  const { db, hub } = deps;
  const now = deps.now ?? Date.now;

  const heartbeat = (lastSeq: bigint): StreamEvent => ({ event: { case: "heartbeat", value: { serverTime: timestampFromDate(new Date(now())), lastSeq } } });

  /** Messages after `after` from the database, in pages, until the stored end. */
  async function* fromDb(chatId: string, after: bigint, signal: AbortSignal): AsyncGenerator<Message> {
    for (;;) {
      const page = await db.listMessages({ chatId, afterSeq: after, limit: 200 }, { signal });
      for (const m of page.messages) {
        after = m.seq;
        yield m;
      }
      if (!page.hasMore || page.messages.length === 0) return;
    }
  }

  async function* stream(ctx: HandlerContext, chatId: string, afterSeq: bigint | undefined): AsyncGenerator<StreamEvent> {
    const p = principalOf(ctx);
    const inbox = new Inbox<Exclude<LiveEvent, { kind: "removed" }>>(deps.maxBuffered ?? 10_000);
    // The subscriber's removal from the chat ends the stream at once, ahead of whatever live
    // events are still queued for a slow client (they would no longer be the subscriber's to read).
    const removal = new AbortController();
    const signal = AbortSignal.any([ctx.signal, removal.signal]);
    // Bind first, then read: a message stored after the read is published after the binding exists.
    const unwatch = await hub.watch(chatId, p.companyId, (e) => {
      if (e.kind !== "removed") return inbox.push(e);
      if (e.userIds.includes(p.userId)) removal.abort(new AppError("not_found", `you are no longer a member of chat ${chatId}`));
    });
    try {
      const m = await db.getMembership({ chatId }, { signal });
      if (!m.member) throw notFound(chatId);
      let last = afterSeq ?? m.lastSeq;

      /** Everything stored after `last`, in order (the replay, and gap filling). */
      async function* catchUp(): AsyncGenerator<StreamEvent> {
        for await (const msg of fromDb(chatId, last, signal)) {
          if (msg.seq !== last + 1n) throw new AppError("internal", `chat ${chatId}: stored seq ${msg.seq} after ${last} (gap in storage)`);
          last = msg.seq;
          yield { event: { case: "message", value: msg } };
        }
      }

      if (afterSeq !== undefined) yield* catchUp();
      // One heartbeat when the stream goes live: the client knows it is subscribed, and where the chat stands.
      yield heartbeat(last);
      const expiresAtMs = p.expiresAt * 1000;
      for (;;) {
        const left = expiresAtMs - now();
        if (left <= 0) throw new AppError("unauthenticated", "access token expired: refresh it and subscribe again with after_seq = the last seq you received (nothing is missed)");
        const next = await inbox.next(Math.min(deps.heartbeatMs, left), signal);
        if (next === "aborted") {
          if (removal.signal.aborted) throw removal.signal.reason;
          return;
        }
        if (next === "timeout") {
          if (expiresAtMs - now() <= 0) continue;
          // Idle: confirm membership and that nothing was missed, then say we are alive.
          const state = await db.getMembership({ chatId }, { signal });
          if (!state.member) throw notFound(chatId);
          if (state.lastSeq > last) yield* catchUp();
          else yield heartbeat(state.lastSeq);
          continue;
        }
        if (next === "overflow" || next.kind === "resync") {
          yield* catchUp();
          continue;
        }
        const seq = next.message.seq;
        if (seq <= last) continue; // replayed already, or a duplicate delivery
        if (seq === last + 1n) {
          last = seq;
          yield liveEvent(next.message);
        } else {
          yield* catchUp(); // events missed or out of order: the database has them all
        }
      }
    } catch (err) {
      throw removal.signal.aborted ? removal.signal.reason : err; // a read cut short by the removal
    } finally {
      unwatch();
    }
  }

  return {
    async createChat(req) {
      const input = validateCreateChat(req);
      const { chat } = await db.createChat(input);
      return { chat };
    },
    async addMembers(req) {
      const input = validateAddMembers(req);
      const { chat } = await db.addUsersToChat(input);
      return { chat };
    },
    async removeMember(req) {
      const input = validateRemoveMember(req);
      const { chat } = await db.removeUserFromChat(input);
      return { chat };
    },
    async listChats(req) {
      const input = validateListChats(req);
      const record = validateRecordFilter(req.record);
      const { chats, nextPageToken } = await db.listChats({ ...input, record });
      return { chats, nextPageToken };
    },
    async sendMessage(req) {
      const input = validateSendMessage(req);
      const { message, replayed } = await db.saveMessage(input);
      return { message, replayed };
    },
    async listMessages(req) {
      const input = validateListMessages(req);
      const res = await db.listMessages(input);
      return { messages: res.messages, hasMore: res.hasMore, nextBeforeSeq: res.nextBeforeSeq, nextAfterSeq: res.nextAfterSeq, lastSeq: res.lastSeq };
    },
    subscribe(req, ctx) {
      const input = validateSubscribe(req);
      return stream(ctx, input.chatId, input.afterSeq);
    },
    async setChatRecord(req) {
      const { chat } = await db.setChatRecordDB(validateSetChatRecord(req));
      return { chat };
    },
    async markRead(req) {
      const input = validateMarkRead(req);
      const { lastReadSeq, unreadCount } = await db.markRead(input);
      return { lastReadSeq, unreadCount };
    },
  };
}

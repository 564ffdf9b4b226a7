/**
 * An in-memory DbChatService for fast handler tests, following the store's documented semantics
 * (proto/crm/db/v1/db_chat.proto, ../store/chat-store.ts): the company and the acting user come from
 * the forwarded token; a chat the acting user is not a member of, or another company's, is
 * not_found; members must be users of the company; seqs are gap-free from 1; a repeated
 * (sender, chat, client_message_id) returns the first message; read markers never move back and
 * are clamped to last_seq; removing someone else needs the chat's creator or an owner or admin.
 * What a real store puts on the outbox (stored messages, removed members) goes to `publish`, as
 * the relay would deliver it to the hub. Test code only.
 */
import { randomUUID } from "node:crypto";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import { AppError, invalid, isUuid, principalOf, type Principal } from "@crm/kit";
import { MessageSchema, type ChatSchema, type Message } from "@crm/gen/crm/chat/v1/chat_pb";
import type { DbChatService } from "@crm/gen/crm/db/v1/db_chat_pb";
import type { LiveEvent } from "../src/hub.js";
import { chars, chatRecordOf, contentViolations, limits, notFound, recordRefOf, type ChatRecord } from "../src/rules.js";

export interface StoredChat {
  id: string;
  companyId: string;
  name: string;
  createdBy: string;
  createdAt: number;
  lastSeq: bigint;
  lastMessageAt: number | undefined;
  /** Members in joining order, with their read markers. */
  members: Map<string, { lastReadSeq: bigint }>;
  messages: Message[];
  /** The record it is attached to (chat_records), if any. */
  record?: ChatRecord | undefined;
}

export interface FakeChatStore {
  impl: ServiceImpl<typeof DbChatService>;
  /** userId → company and status (deactivated users cannot be added). */
  users: Map<string, { companyId: string; status: "active" | "invited" | "deactivated" }>;
  chats: Map<string, StoredChat>;
  /** Customer records chats may be attached to (as the foreign keys see them), by id. */
  records: Map<string, { companyId: string; type: keyof ChatRecord }>;
  addUsers(...people: Pick<Principal, "userId" | "companyId">[]): void;
  /** Stores a message without publishing it: an event the hub never got. */
  storeSilently(chatId: string, senderId: string, content: string): Message;
}

type ChatInit = MessageInitShape<typeof ChatSchema>;

/** `now`: the database's clock; `publish`: the outbox as the relay delivers it. */
export function fakeChatStore(now: () => number, publish: (chatId: string, companyId: string, e: LiveEvent) => void = () => {}): FakeChatStore {
  const users: FakeChatStore["users"] = new Map();
  const chats = new Map<string, StoredChat>();
  const records: FakeChatStore["records"] = new Map();
  /** The request's record, checked as the store's foreign keys do (another company's id: not_found). */
  const recordArg = (p: Principal, ref: { objectType: number; id: string } | undefined): ChatRecord | undefined => {
    const v: Parameters<typeof invalid>[0] = [];
    const r = chatRecordOf(ref, "record", v);
    if (v.length) throw invalid(v);
    const kind = r && (["company", "person", "deal"] as const).find((k) => r[k]);
    const stored = kind ? records.get(r[kind]!) : undefined;
    if (kind && (!stored || stored.companyId !== p.companyId || stored.type !== kind)) {
      throw new AppError("not_found", `no ${kind} with this id in your company`, [{ field: "record.id", description: `no such ${kind} in your company` }]);
    }
    return r;
  };
  const sameRecord = (a: ChatRecord | undefined, b: ChatRecord) => !!a && a.company === b.company && a.person === b.person && a.deal === b.deal;

  const chatId = (id: string, field = "chatId") => {
    if (!isUuid(id)) throw invalid([{ field, description: "must be a chat id (UUID)" }]);
    return id;
  };
  const userIds = (ids: string[], field: string) => {
    const bad = ids.filter((id) => !isUuid(id));
    if (bad.length) throw invalid([{ field, description: `not user ids (UUID): ${bad.slice(0, 5).join(", ")}` }]);
    return [...new Set(ids)];
  };
  const unknownUsers = (p: Principal, ids: string[]) => ids.filter((id) => {
    const u = users.get(id);
    return !u || u.companyId !== p.companyId || u.status === "deactivated";
  });
  const notUsers = (field: string, ids: string[]) => invalid([{ field, description: `not users of your company: ${ids.slice(0, 10).join(", ")}${ids.length > 10 ? ` and ${ids.length - 10} more` : ""}` }]);

  /** The chat if the acting user is a member (row-level security hides other companies' chats). */
  const asMember = (p: Principal, id: string): StoredChat => {
    const c = chats.get(id);
    if (!c || c.companyId !== p.companyId || !c.members.has(p.userId)) throw notFound(id);
    return c;
  };

  const unread = (c: StoredChat, userId: string) => {
    const m = c.members.get(userId);
    return m ? BigInt(c.messages.filter((x) => x.seq > m.lastReadSeq && x.senderId !== userId).length) : 0n;
  };

  const view = (c: StoredChat, userId: string): ChatInit => ({
    chatId: c.id,
    name: c.name,
    memberIds: [...c.members.keys()],
    createdAt: timestampFromMs(c.createdAt),
    createdBy: c.createdBy,
    lastSeq: c.lastSeq,
    unreadCount: unread(c, userId),
    lastReadSeq: c.members.get(userId)?.lastReadSeq ?? 0n,
    lastMessageAt: c.lastMessageAt === undefined ? undefined : timestampFromMs(c.lastMessageAt),
    record: c.record && recordRefOf({ rec_company_id: c.record.company, rec_person_id: c.record.person, rec_deal_id: c.record.deal }),
  });

  function store(c: StoredChat, senderId: string, content: string, clientMessageId: string): Message {
    c.lastSeq += 1n;
    c.lastMessageAt = now();
    const m = create(MessageSchema, { messageId: randomUUID(), chatId: c.id, seq: c.lastSeq, senderId, content, createdAt: timestampFromMs(c.lastMessageAt), clientMessageId });
    c.messages.push(m);
    return m;
  }

  const activity = (c: StoredChat) => c.lastMessageAt ?? c.createdAt;

  const impl: ServiceImpl<typeof DbChatService> = {
    async createChat(req, ctx) {
      const p = principalOf(ctx);
      const name = req.name.trim();
      if (chars(name) < 1 || chars(name) > limits.name) throw invalid([{ field: "name", description: `must be 1..${limits.name} characters after trimming` }]);
      const members = [...new Set([p.userId, ...userIds(req.memberIds, "memberIds")])];
      const unknown = unknownUsers(p, members);
      if (unknown.length) throw notUsers("memberIds", unknown);
      const c: StoredChat = { id: randomUUID(), companyId: p.companyId, name, createdBy: p.userId, createdAt: now(), lastSeq: 0n, lastMessageAt: undefined, members: new Map(members.map((u) => [u, { lastReadSeq: 0n }])), messages: [] };
      chats.set(c.id, c);
      return { chat: view(c, p.userId) };
    },

    async addUsersToChat(req, ctx) {
      const p = principalOf(ctx);
      const id = chatId(req.chatId);
      const ids = userIds(req.userIds, "userIds");
      const c = asMember(p, id);
      const unknown = unknownUsers(p, ids);
      if (unknown.length) throw notUsers("userIds", unknown);
      // New members start with the history read.
      const added = ids.filter((u) => !c.members.has(u));
      for (const u of added) c.members.set(u, { lastReadSeq: c.lastSeq });
      return { chat: view(c, p.userId), addedUserIds: added };
    },

    async removeUserFromChat(req, ctx) {
      const p = principalOf(ctx);
      const id = chatId(req.chatId);
      if (!isUuid(req.userId)) throw invalid([{ field: "userId", description: "must be a user id (UUID)" }]);
      const c = asMember(p, id);
      if (req.userId !== p.userId && c.createdBy !== p.userId && p.role !== "owner" && p.role !== "admin") {
        throw new AppError("permission_denied", "only the chat's creator or a company owner or admin can remove someone else; anyone can remove themselves");
      }
      const removed = c.members.delete(req.userId);
      if (removed) publish(c.id, c.companyId, { kind: "removed", userIds: [req.userId] });
      return { chat: view(c, p.userId), removed };
    },

    async listChats(req, ctx) {
      const p = principalOf(ctx);
      const size = req.pageSize > 0 ? Math.min(req.pageSize, 200) : 50;
      let after: [number, string] | undefined;
      if (req.pageToken) {
        const m = /^(\d+)\|([0-9a-f-]{36})$/.exec(Buffer.from(req.pageToken, "base64url").toString());
        if (!m || !isUuid(m[2]!)) throw invalid([{ field: "pageToken", description: "is not a token from ListChats: pass next_page_token as it was returned" }]);
        after = [Number(m[1]), m[2]!];
      }
      // A filter, as in the store: a record of another company simply matches no chat.
      const fv: Parameters<typeof invalid>[0] = [];
      const byRecord = chatRecordOf(req.record, "record", fv);
      if (fv.length) throw invalid(fv);
      const mine = [...chats.values()]
        .filter((c) => c.companyId === p.companyId && c.members.has(p.userId))
        .filter((c) => !byRecord || (!byRecord.company && !byRecord.person && !byRecord.deal) || sameRecord(c.record, byRecord))
        .sort((a, b) => activity(b) - activity(a) || (a.id < b.id ? 1 : -1))
        .filter((c) => !after || activity(c) < after[0] || (activity(c) === after[0] && c.id < after[1]));
      const page = mine.slice(0, size);
      const last = page.at(-1);
      return { chats: page.map((c) => view(c, p.userId)), nextPageToken: mine.length > size && last ? Buffer.from(`${activity(last)}|${last.id}`).toString("base64url") : "" };
    },

    async setChatRecordDB(req, ctx) {
      const p = principalOf(ctx);
      const id = chatId(req.chatId);
      const v: Parameters<typeof invalid>[0] = [];
      chatRecordOf(req.record, "record", v);
      if (v.length) throw invalid(v);
      const c = asMember(p, id);
      const r = recordArg(p, req.record);
      c.record = r && (r.company || r.person || r.deal) ? r : undefined;
      return { chat: view(c, p.userId) };
    },

    async saveMessage(req, ctx) {
      const p = principalOf(ctx);
      const id = chatId(req.chatId);
      const { content, violations } = contentViolations(req.content);
      if (violations.length) throw invalid(violations);
      if (req.clientMessageId.length > 64) throw invalid([{ field: "clientMessageId", description: "must be at most 64 characters" }]);
      const c = asMember(p, id);
      const prior = req.clientMessageId ? c.messages.find((m) => m.senderId === p.userId && m.clientMessageId === req.clientMessageId) : undefined;
      if (prior) return { message: prior, replayed: true };
      const message = store(c, p.userId, content, req.clientMessageId);
      publish(c.id, c.companyId, { kind: "message", message });
      return { message, replayed: false };
    },

    async listMessages(req, ctx) {
      const p = principalOf(ctx);
      const id = chatId(req.chatId);
      if (req.beforeSeq !== undefined && req.afterSeq !== undefined) throw invalid([{ field: "beforeSeq", description: "set at most one of beforeSeq and afterSeq" }]);
      const limit = req.limit >= 1 && req.limit <= 200 ? req.limit : 50;
      const c = asMember(p, id);
      const forward = req.afterSeq !== undefined;
      const rows = forward
        ? c.messages.filter((m) => m.seq > req.afterSeq!).slice(0, limit + 1)
        : c.messages.filter((m) => req.beforeSeq === undefined || m.seq < req.beforeSeq).reverse().slice(0, limit + 1);
      const hasMore = rows.length > limit;
      const page = rows.slice(0, limit);
      if (!forward) page.reverse();
      const first = page[0]?.seq;
      const last = page.at(-1)?.seq;
      return {
        messages: page,
        hasMore,
        lastSeq: c.lastSeq,
        nextBeforeSeq: first !== undefined && first > 1n ? first : undefined,
        nextAfterSeq: last !== undefined && last < c.lastSeq ? last : undefined,
      };
    },

    async markRead(req, ctx) {
      const p = principalOf(ctx);
      const id = chatId(req.chatId);
      if (req.seq < 0n) throw invalid([{ field: "seq", description: "must not be negative" }]);
      const c = asMember(p, id);
      const m = c.members.get(p.userId)!;
      const target = req.seq < c.lastSeq ? req.seq : c.lastSeq;
      if (target > m.lastReadSeq) m.lastReadSeq = target;
      return { lastReadSeq: m.lastReadSeq, unreadCount: unread(c, p.userId) };
    },

    async getMembership(req, ctx) {
      const p = principalOf(ctx);
      const id = chatId(req.chatId);
      const c = chats.get(id);
      const m = c && c.companyId === p.companyId ? c.members.get(p.userId) : undefined;
      return m ? { member: true, lastSeq: c!.lastSeq, lastReadSeq: m.lastReadSeq } : { member: false, lastSeq: 0n, lastReadSeq: 0n };
    },
  };

  return {
    impl,
    users,
    chats,
    records,
    addUsers(...people) {
      for (const u of people) users.set(u.userId, { companyId: u.companyId, status: "active" });
    },
    storeSilently(id, senderId, content) {
      return store(chats.get(id)!, senderId, content, "");
    },
  };
}

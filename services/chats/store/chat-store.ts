/**
 * The chats store, mounted by dbservice as DbChatService: chats, members, messages. The acting user and company come from the forwarded
 * token; a chat the acting user is not a member of is not_found. Each RPC is one transaction;
 * a stored message and its ChatEvent for the outbox commit together.
 */
import { randomUUID } from "node:crypto";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { AppError, injectTraceHeaders, invalid, isUuid, principalOf, type Principal } from "@crm/kit";
import { chatEvent } from "@crm/contracts/events";
import { ChatSchema, MessageSchema, type ChatEventSchema, type Message } from "@crm/gen/crm/chat/v1/chat_pb";
import type { DbChatService } from "@crm/gen/crm/db/v1/db_chat_pb";
import type pg from "pg";
import { outboxInsertFromJson, outboxJson, type Db, type OutboxMessage, type Sql } from "@crm/dbservice/db";
import { chars, contentViolations, limits, notFound } from "../src/rules.js";
import { keyedBatches } from "./batches.js";
import { RECORD_COLUMNS, chatRecordRef, recordArg, recordFilter, setChatRecord, type RecordColumns } from "./chat-records.js";

/** Most messages of one chat stored in one transaction. */
const MAX_BATCH = 64;

export interface ChatStoreDeps {
  db: Db;
  /** Called after a transaction that wrote to the outbox committed (wakes an in-process relay). */
  afterOutbox?: () => void;
}

interface ChatRow extends RecordColumns {
  id: string;
  name: string;
  created_by: string;
  created_at: Date;
  last_seq: string;
  last_message_at: Date | null;
  last_read_seq: string | null;
  member_ids: string[];
  unread: string | null;
}

interface MessageRow {
  id: string;
  chat_id: string;
  seq: string;
  sender_id: string;
  content: string;
  client_message_id: string | null;
  created_at: Date;
}

const ts = (d: Date | null): Timestamp | undefined => (d ? timestampFromDate(d) : undefined);

const toChat = (r: ChatRow): MessageInitShape<typeof ChatSchema> => ({
  chatId: r.id,
  name: r.name,
  memberIds: r.member_ids,
  createdAt: ts(r.created_at),
  createdBy: r.created_by,
  lastSeq: BigInt(r.last_seq),
  unreadCount: BigInt(r.unread ?? 0),
  lastReadSeq: BigInt(r.last_read_seq ?? 0),
  lastMessageAt: ts(r.last_message_at),
  record: chatRecordRef(r),
});

export const toMessage = (r: MessageRow): Message =>
  create(MessageSchema, {
    messageId: r.id,
    chatId: r.chat_id,
    seq: BigInt(r.seq),
    senderId: r.sender_id,
    content: r.content,
    createdAt: ts(r.created_at),
    clientMessageId: r.client_message_id ?? "",
  });

const MESSAGE_COLUMNS = "id, chat_id, seq, sender_id, content, client_message_id, created_at";

/** The chat as `userId` sees it; a non-member gets last_read_seq and unread 0. */
const CHAT_VIEW = `
  SELECT c.id, c.name, c.created_by, c.created_at, c.last_seq, c.last_message_at, m.last_read_seq,
    array(SELECT x.user_id FROM chat_members x WHERE x.chat_id = c.id ORDER BY x.joined_at, x.user_id) AS member_ids,
    CASE WHEN m.user_id IS NULL THEN 0 ELSE
      (SELECT count(*) FROM messages g WHERE g.chat_id = c.id AND g.seq > m.last_read_seq AND g.sender_id <> $2) END AS unread,${RECORD_COLUMNS}
  FROM chats c LEFT JOIN chat_members m ON m.chat_id = c.id AND m.user_id = $2`;

function chatId(id: string, field = "chatId"): string {
  if (!isUuid(id)) throw invalid([{ field, description: "must be a chat id (UUID)" }]);
  return id;
}

function userIds(ids: string[], field: string): string[] {
  const bad = ids.filter((id) => !isUuid(id));
  if (bad.length) throw invalid([{ field, description: `not user ids (UUID): ${bad.slice(0, 5).join(", ")}` }]);
  return [...new Set(ids)];
}

async function loadChat(sql: Sql, id: string, userId: string, requireMember = true): Promise<ChatRow> {
  const { rows } = await sql.query<ChatRow>(`${CHAT_VIEW} WHERE c.id = $1`, [id, userId]);
  const row = rows[0];
  if (!row || (requireMember && row.last_read_seq === null)) throw notFound(id);
  return row;
}

/** Locks the chat row if `userId` is a member; not_found otherwise. */
async function lockAsMember(sql: Sql, id: string, userId: string): Promise<{ created_by: string; last_seq: string }> {
  const { rows } = await sql.query<{ created_by: string; last_seq: string }>(
    `SELECT c.created_by, c.last_seq FROM chats c JOIN chat_members m ON m.chat_id = c.id AND m.user_id = $2 WHERE c.id = $1 FOR UPDATE OF c`,
    [id, userId],
  );
  if (!rows[0]) throw notFound(id);
  return rows[0];
}

/** The ids among `ids` that are not active or invited users of the tenant (RLS hides other companies). */
async function unknownUsers(sql: Sql, ids: string[]): Promise<string[]> {
  if (ids.length === 0) return [];
  const { rows } = await sql.query<{ id: string }>("SELECT id FROM users WHERE id = ANY($1::uuid[]) AND status <> 'deactivated'", [ids]);
  const found = new Set(rows.map((r) => r.id));
  return ids.filter((id) => !found.has(id));
}

function notUsers(field: string, ids: string[]): AppError {
  return invalid([{ field, description: `not users of your company: ${ids.slice(0, 10).join(", ")}${ids.length > 10 ? ` and ${ids.length - 10} more` : ""}` }]);
}

/** A ChatEvent of the tenant for the outbox; `headers`: the trace context of its request, when taken earlier. */
function chatOutbox(companyId: string, init: MessageInitShape<typeof ChatEventSchema> & { chatId: string }, headers: Record<string, string> = {}): OutboxMessage {
  const e = chatEvent({ ...init, companyId });
  return { ...e, headers: { ...e.headers, ...headers }, companyId };
}

/** A second check of what the chats service validated (dbservice trusts no caller's input), by the same rule. */
function content(text: string): string {
  const { content, violations } = contentViolations(text);
  if (violations.length) throw invalid(violations);
  return content;
}

/**
 * SaveMessage stores a BATCH of messages for one chat (batches.ts: what arrived while the chat's
 * previous batch ran) in one transaction, so a busy chat takes its row lock once per batch, not
 * per message. Two ways, both with the ChatEvents encoded here in TypeScript:
 *
 * - Usually ONE round trip (`crm_save_new_messages`, saveNew): this process knows the chat's last
 *   seq from its previous batch, so it makes every new message whole beforehand (id, seq, time)
 *   and sends the messages and their encoded events together: BEGIN, role and tenant, lock, one
 *   statement that writes both, COMMIT. That statement writes nothing unless the chat's last seq
 *   is still the one expected, every sender is a member and no item is a retry of a stored
 *   message; then it answers the actual last seq, and the batch goes the other way.
 * - Otherwise TWO (`crm_save_messages`, saveChecked): BEGIN, role and tenant, lock, write in one
 *   simple query, which sorts out members, retries and seqs; then the ChatEvents of the new
 *   messages, encoded from the rows it returned, go to the outbox with COMMIT (db.tenantScript's
 *   `outbox`). The chat's row lock is held across that second round trip.
 *
 * Both statements are PREPAREd once per connection and EXECUTEd with literal arguments (the
 * driver's escaping; the items travel as one JSON array): planning the CTE under row-level
 * security cost PostgreSQL ≈ 0.4 ms of CPU per message, half of the whole transaction.
 *
 * `lock_chat` locks the chat row if a sender is a member: senders of a chat (through any replica)
 * queue here. `save_messages` starts after the lock with a fresh snapshot. Per item, in order: a
 * non-member gets no row (not_found); a committed message with the same sender and
 * client_message_id is returned (replayed), as is an earlier item of the same batch (matched in
 * saveBatch); every other item takes the next seq, gap-free (replayed = false: its ChatEvent goes
 * on the outbox).
 *
 * Items: $2 = [{"s": sender id, "c": content, "k": client message id or ""}].
 */
const ITEMS = `SELECT (x.e->>'s')::uuid AS sender_id, x.e->>'c' AS content, nullif(x.e->>'k', '') AS client_id, x.ord
  FROM jsonb_array_elements($2) WITH ORDINALITY AS x(e, ord)`;
const SAVE_MESSAGES: Prepared[] = [
  {
    name: "crm_lock_chat",
    params: "uuid, jsonb",
    body: `SELECT 1 FROM chats c WHERE c.id = $1
      AND EXISTS (SELECT 1 FROM chat_members m WHERE m.chat_id = $1 AND m.user_id IN (SELECT i.sender_id FROM (${ITEMS}) i)) FOR UPDATE OF c`,
  },
  {
    name: "crm_save_messages",
    // $1 chat, $2 items
    params: "uuid, jsonb",
    body: `WITH input AS (${ITEMS}
    ), member AS (
      SELECT i.* FROM input i WHERE EXISTS (SELECT 1 FROM chat_members m WHERE m.chat_id = $1 AND m.user_id = i.sender_id)
    ), prior AS (
      SELECT m.ord, ${MESSAGE_COLUMNS.split(", ").map((x) => `g.${x}`).join(", ")} FROM member m
      JOIN messages g ON g.chat_id = $1 AND g.sender_id = m.sender_id AND g.client_message_id = m.client_id
    ), fresh AS (
      SELECT m.*, row_number() OVER (ORDER BY m.ord) AS n FROM member m
      WHERE NOT EXISTS (SELECT 1 FROM prior p WHERE p.ord = m.ord)
        AND NOT EXISTS (SELECT 1 FROM member e WHERE e.ord < m.ord AND e.sender_id = m.sender_id AND e.client_id = m.client_id)
    ), bump AS (
      UPDATE chats SET last_seq = last_seq + (SELECT count(*) FROM fresh), last_message_at = now()
      WHERE id = $1 AND EXISTS (SELECT 1 FROM fresh)
      RETURNING company_id, last_seq - (SELECT count(*) FROM fresh) AS base
    ), ins AS (
      INSERT INTO messages (chat_id, seq, company_id, sender_id, content, client_message_id)
      SELECT $1, b.base + f.n, b.company_id, f.sender_id, f.content, f.client_id FROM fresh f CROSS JOIN bump b
      RETURNING ${MESSAGE_COLUMNS}
    ), stored AS (
      SELECT f.ord, ins.* FROM ins CROSS JOIN bump b JOIN fresh f ON ins.seq = b.base + f.n
    )
    SELECT ord, ${MESSAGE_COLUMNS}, false AS replayed FROM stored
    UNION ALL SELECT ord, ${MESSAGE_COLUMNS}, true AS replayed FROM prior`,
  },
];

/**
 * $1 chat, $2 items with their ids ({"s", "c", "k", "i": message id}), $3 the chat's last seq as
 * expected, $4 the messages' time, $5 their ChatEvents (outboxJson, in seq order). Answers how
 * many messages it stored (all or none) and the chat's last seq before.
 */
const SAVE_NEW: Prepared = {
  name: "crm_save_new_messages",
  params: "uuid, jsonb, bigint, timestamptz, jsonb",
  body: `WITH input AS (
      SELECT (x.e->>'s')::uuid AS sender_id, x.e->>'c' AS content, nullif(x.e->>'k', '') AS client_id, (x.e->>'i')::uuid AS id, x.ord
      FROM jsonb_array_elements($2) WITH ORDINALITY AS x(e, ord)
    ), chat AS (
      SELECT c.last_seq FROM chats c WHERE c.id = $1
    ), bump AS (
      UPDATE chats SET last_seq = $3 + (SELECT count(*) FROM input), last_message_at = $4
      WHERE id = $1 AND last_seq = $3
        AND NOT EXISTS (SELECT 1 FROM input i WHERE NOT EXISTS (SELECT 1 FROM chat_members m WHERE m.chat_id = $1 AND m.user_id = i.sender_id))
        AND NOT EXISTS (SELECT 1 FROM input i JOIN messages g ON g.chat_id = $1 AND g.sender_id = i.sender_id AND g.client_message_id = i.client_id)
      RETURNING company_id
    ), ins AS (
      INSERT INTO messages (id, chat_id, seq, company_id, sender_id, content, client_message_id, created_at)
      SELECT i.id, $1, $3 + i.ord, b.company_id, i.sender_id, i.content, i.client_id, $4 FROM input i CROSS JOIN bump b
    ), event AS (
      ${outboxInsertFromJson("$5", "EXISTS (SELECT 1 FROM bump)")}
    )
    SELECT (SELECT count(*) FROM bump) AS stored, (SELECT last_seq FROM chat) AS last_seq`,
};

/** One SendMessage waiting to be stored with the others of its chat. */
interface SendItem {
  userId: string;
  text: string;
  clientId: string;
  /** Outbox headers of its event: the sender's trace context. */
  headers: Record<string, string>;
}

type Saved = { message: Message; replayed: boolean };

/**
 * Each chat's last seq as this process last stored it, per database: what saveNew expects. A
 * wrong guess (another replica wrote meanwhile) costs a round trip, never a wrong seq.
 */
const lastSeqs = new WeakMap<Db, Map<string, bigint>>();
/** Chats remembered per database at most (then it starts over). */
const MAX_KNOWN = 10_000;

/** Stores `items` (one chat, one tenant) in one transaction; per item its message or why not. */
export async function saveBatch(db: Db, companyId: string, chat: string, items: SendItem[]): Promise<(Saved | Error)[]> {
  let known = lastSeqs.get(db);
  if (!known) lastSeqs.set(db, (known = new Map()));
  let expected = known.get(chat);
  known.delete(chat);
  // Two items with the same client message id: the checked way answers the second as a replay.
  const repeats = new Set(items.filter((i) => i.clientId).map((i) => `${i.userId} ${i.clientId}`)).size < items.filter((i) => i.clientId).length;
  for (let attempt = 0; attempt < 2 && expected !== undefined && !repeats; attempt++) {
    const out = await unique(saveNew(db, companyId, chat, items, expected));
    if (Array.isArray(out)) {
      if (known.size >= MAX_KNOWN) known.clear();
      known.set(chat, expected + BigInt(items.length));
      return out;
    }
    // Another writer moved the chat on: once more with its seq. Otherwise (a non-member, a retried message) the checked way.
    expected = out.lastSeq !== null && out.lastSeq !== expected ? out.lastSeq : undefined;
  }
  const results = await saveChecked(db, companyId, chat, items);
  let last: bigint | undefined;
  for (const r of results) if (!(r instanceof Error) && !r.replayed && (last === undefined || r.message.seq > last)) last = r.message.seq;
  if (last !== undefined) {
    if (known.size >= MAX_KNOWN) known.clear();
    known.set(chat, last);
  }
  return results;
}

/** A unique violation can only come from a concurrent duplicate that slipped past the lock (it cannot: the lock is taken first); reported as the retry it is. */
function unique<T>(p: Promise<T>): Promise<T> {
  return p.catch((err: unknown) => {
    const e = err as { code?: string; constraint?: string };
    if (e.code === "23505" && e.constraint) throw new AppError("unavailable", "a concurrent send with the same clientMessageId is in progress; retry");
    throw err;
  });
}

/**
 * The one-round-trip way (see SAVE_MESSAGES): every item a new message, seqs after `expected`.
 * Their messages, or, when the statement wrote nothing, the chat's actual last seq (null: no such chat).
 */
async function saveNew(db: Db, companyId: string, chat: string, items: SendItem[], expected: bigint): Promise<Saved[] | { lastSeq: bigint | null }> {
  const at = new Date();
  const createdAt = timestampFromDate(at);
  const messages = items.map((item, n) =>
    create(MessageSchema, { messageId: randomUUID(), chatId: chat, seq: expected + BigInt(n + 1), senderId: item.userId, content: item.text, createdAt, clientMessageId: item.clientId }),
  );
  const json = JSON.stringify(items.map((item, n) => ({ s: item.userId, c: item.text, k: item.clientId, i: messages[n]!.messageId })));
  // The lock needs only the senders.
  const senders = JSON.stringify([...new Set(items.map((item) => item.userId))].map((s) => ({ s })));
  const events = outboxJson(messages.map((message, n) => chatOutbox(companyId, { chatId: chat, event: { case: "message", value: message } }, items[n]!.headers)));
  const { rows } = await runPrepared(
    db,
    companyId,
    [SAVE_MESSAGES[0]!, SAVE_NEW],
    (lit, stmt) =>
      `EXECUTE ${stmt("crm_lock_chat")}(${lit(chat)}, ${lit(senders)});\n` +
      `EXECUTE ${stmt("crm_save_new_messages")}(${lit(chat)}, ${lit(json)}, ${lit(String(expected))}, ${lit(at.toISOString())}, ${lit(events)})`,
  );
  const r = rows[0] as { stored: string; last_seq: string | null };
  if (Number(r.stored) > 0) return messages.map((message) => ({ message, replayed: false }));
  return { lastSeq: r.last_seq === null ? null : BigInt(r.last_seq) };
}

/** The two-round-trip way (see SAVE_MESSAGES), right whatever the items are. */
async function saveChecked(db: Db, companyId: string, chat: string, items: SendItem[]): Promise<(Saved | Error)[]> {
  const json = JSON.stringify(items.map((i) => ({ s: i.userId, c: i.text, k: i.clientId })));
  const run = (lit: (v: string | null) => string, stmt: (name: string) => string) =>
    `EXECUTE ${stmt("crm_lock_chat")}(${lit(chat)}, ${lit(json)});\n` + `EXECUTE ${stmt("crm_save_messages")}(${lit(chat)}, ${lit(json)})`;
  const byOrd = new Map<number, Saved>();
  // The new messages' events, in seq order, built from the rows the INSERT returned.
  const events = (result: pg.QueryResult): OutboxMessage[] => {
    for (const r of result.rows as (MessageRow & { ord: string; replayed: boolean })[]) byOrd.set(Number(r.ord), { message: toMessage(r), replayed: r.replayed });
    return [...byOrd]
      .filter(([, s]) => !s.replayed)
      .sort(([, a], [, b]) => (a.message.seq < b.message.seq ? -1 : 1))
      .map(([ord, s]) => chatOutbox(companyId, { chatId: chat, event: { case: "message", value: s.message } }, items[ord - 1]!.headers));
  };
  await unique(runPrepared(db, companyId, SAVE_MESSAGES, run, events));
  return items.map((item, i) => {
    const saved = byOrd.get(i + 1);
    if (saved) return saved;
    // The same client_message_id earlier in this batch: that message, replayed.
    const first = item.clientId ? items.findIndex((x) => x.userId === item.userId && x.clientId === item.clientId) : -1;
    const original = first >= 0 && first < i ? byOrd.get(first + 1) : undefined;
    return original ? { message: original.message, replayed: true } : notFound(chat);
  });
}

/** A statement PREPAREd on a connection the first time that connection needs it. */
interface Prepared {
  name: string;
  /** Parameter types, e.g. "uuid, text". */
  params: string;
  body: string;
}

/** The chat's last seq and a page of its messages, when `$2` is a member of chat `$1` (else no row): after seq `$3`, or before it, `$4` at most. */
const pageOf = (name: string, forward: boolean): Prepared => ({
  name,
  params: "uuid, uuid, bigint, int",
  body: `SELECT c.last_seq AS chat_last_seq, msg.* FROM chats c JOIN chat_members m ON m.chat_id = c.id AND m.user_id = $2
    LEFT JOIN LATERAL (SELECT ${MESSAGE_COLUMNS} FROM messages WHERE chat_id = c.id AND seq ${forward ? ">" : "<"} $3 ORDER BY seq ${forward ? "ASC" : "DESC"} LIMIT $4) msg ON true
    WHERE c.id = $1 ORDER BY msg.seq ${forward ? "ASC" : "DESC"}`,
});
const READ_AFTER = pageOf("crm_read_after", true);
const READ_BEFORE = pageOf("crm_read_before", false);
/** "Before" with no bound: before the largest seq there can be. */
const MAX_SEQ = 9223372036854775807n;
const MEMBERSHIP: Prepared = {
  name: "crm_membership",
  params: "uuid, uuid",
  body: "SELECT c.last_seq, m.last_read_seq FROM chats c JOIN chat_members m ON m.chat_id = c.id AND m.user_id = $2 WHERE c.id = $1",
};

/**
 * The prepared statements each pooled connection holds (a replaced connection starts empty).
 * Names carry the connection's number: PGlite serves every connection from one session.
 */
const connections = new WeakMap<pg.PoolClient, { id: number; have: Set<string> }>();
let nextConnection = 0;

/**
 * `v` as an SQL string literal: what pg's `escapeLiteral` gives, by two regular expressions instead
 * of its loop over every character (the batch's JSON is kilobytes: that loop was ≈ 20 µs per message).
 */
export function quote(v: string): string {
  const q = v.replace(/'/g, "''");
  return v.includes("\\") ? ` E'${q.replace(/\\/g, "\\\\")}'` : `'${q}'`;
}

/**
 * Runs `statements` as ONE round trip in the tenant's transaction (db.tenantScript), after
 * PREPAREing whichever of `prepared` this connection lacks (in the same round trip), and returns
 * the result of the last statement. `lit` quotes a value as an SQL literal; `stmt` gives a
 * prepared statement's name on this connection. `outbox` (db.ts `Script.outbox`): messages made
 * from that result, written before COMMIT in a second round trip.
 */
async function runPrepared(
  db: Db,
  companyId: string,
  prepared: Prepared[],
  statements: (lit: (v: string | null) => string, stmt: (name: string) => string) => string,
  outbox?: (result: pg.QueryResult) => OutboxMessage[],
): Promise<pg.QueryResult> {
  let prepares: (() => void) | undefined;
  const result = await db.tenantScript(companyId, (client) => {
    let conn = connections.get(client);
    if (!conn) connections.set(client, (conn = { id: nextConnection++, have: new Set() }));
    const { id, have } = conn;
    const stmt = (name: string) => `${name}_${id}`;
    const missing = prepared.filter((p) => !have.has(p.name));
    prepares = () => missing.forEach((p) => have.add(p.name));
    const lit = (v: string | null) => (v === null ? "NULL" : quote(v));
    const prepare = missing.map((p) => `PREPARE ${stmt(p.name)}(${p.params}) AS ${p.body};\n`).join("");
    // A PREPARE outlives a failed transaction: the connection is dropped rather than tracking which stuck.
    return { text: `${prepare}${statements(lit, stmt)}`, keepsState: missing.length > 0, ...(outbox ? { outbox } : {}) };
  });
  prepares?.();
  return result;
}

export function chatStore({ db, afterOutbox }: ChatStoreDeps): ServiceImpl<typeof DbChatService> {
  const sends = keyedBatches<SendItem, Saved>(async (key, items) => {
    const [companyId, chat] = key.split(" ") as [string, string];
    const results = await saveBatch(db, companyId, chat, items);
    if (results.some((r) => !(r instanceof Error) && !r.replayed)) afterOutbox?.();
    return results;
    // A failure that is not an AppError (unavailable, a conflict) is PostgreSQL refusing something in
    // the batch: its transaction rolled back, so each item runs again alone and only the culprit fails.
  }, MAX_BATCH, { retryAlone: (err) => !(err instanceof AppError) });

  const tenant = <T>(ctx: HandlerContext, fn: (sql: Sql, p: Principal) => Promise<T>) => {
    const p = principalOf(ctx);
    return db.tenant(p.companyId, (sql) => fn(sql, p));
  };

  return {
    async createChat(req, ctx) {
      const name = req.name.trim();
      if (chars(name) < 1 || chars(name) > limits.name) throw invalid([{ field: "name", description: `must be 1..${limits.name} characters after trimming` }]);
      const ids = userIds(req.memberIds, "memberIds");
      const chat = await tenant(ctx, async (sql, p) => {
        const members = [...new Set([p.userId, ...ids])];
        const unknown = await unknownUsers(sql, members);
        if (unknown.length) throw notUsers("memberIds", unknown);
        const { rows } = await sql.query<{ id: string }>("INSERT INTO chats (company_id, name, created_by) VALUES ($1, $2, $3) RETURNING id", [p.companyId, name, p.userId]);
        const id = rows[0]!.id;
        await sql.query(
          "INSERT INTO chat_members (chat_id, user_id, company_id) SELECT $1, u, $2 FROM unnest($3::uuid[]) WITH ORDINALITY AS t(u, n) ORDER BY n",
          [id, p.companyId, members],
        );
        return loadChat(sql, id, p.userId);
      });
      return { chat: toChat(chat) };
    },

    async addUsersToChat(req, ctx) {
      const id = chatId(req.chatId);
      const ids = userIds(req.userIds, "userIds");
      const out = await tenant(ctx, async (sql, p) => {
        const c = await lockAsMember(sql, id, p.userId);
        const unknown = await unknownUsers(sql, ids);
        if (unknown.length) throw notUsers("userIds", unknown);
        // New members start with the history read: only what comes after they joined is unread.
        const { rows } = await sql.query<{ user_id: string }>(
          `INSERT INTO chat_members (chat_id, user_id, company_id, last_read_seq)
           SELECT $1, u, $2, $4 FROM unnest($3::uuid[]) WITH ORDINALITY AS t(u, n) ORDER BY n
           ON CONFLICT (chat_id, user_id) DO NOTHING RETURNING user_id`,
          [id, p.companyId, ids, c.last_seq],
        );
        return { chat: await loadChat(sql, id, p.userId), added: rows.map((r) => r.user_id) };
      });
      return { chat: toChat(out.chat), addedUserIds: out.added };
    },

    async removeUserFromChat(req, ctx) {
      const id = chatId(req.chatId);
      if (!isUuid(req.userId)) throw invalid([{ field: "userId", description: "must be a user id (UUID)" }]);
      const out = await tenant(ctx, async (sql, p) => {
        const c = await lockAsMember(sql, id, p.userId);
        if (req.userId !== p.userId && c.created_by !== p.userId && p.role !== "owner" && p.role !== "admin") {
          throw new AppError("permission_denied", "only the chat's creator or a company owner or admin can remove someone else; anyone can remove themselves");
        }
        const { rowCount } = await sql.query("DELETE FROM chat_members WHERE chat_id = $1 AND user_id = $2", [id, req.userId]);
        const removed = rowCount === 1;
        if (removed) await db.enqueue(sql, chatOutbox(p.companyId, { chatId: id, event: { case: "membersRemoved", value: { userIds: [req.userId] } } }));
        return { chat: await loadChat(sql, id, p.userId, false), removed };
      });
      if (out.removed) afterOutbox?.();
      return { chat: toChat(out.chat), removed: out.removed };
    },

    async listChats(req, ctx) {
      const size = req.pageSize > 0 ? Math.min(req.pageSize, 200) : 50;
      let after: [string, string] | undefined;
      if (req.pageToken) {
        try {
          const v = JSON.parse(Buffer.from(req.pageToken, "base64url").toString()) as unknown;
          if (Array.isArray(v) && v.length === 2 && typeof v[0] === "string" && isUuid(String(v[1])) && !Number.isNaN(Date.parse(v[0]))) after = [v[0], v[1] as string];
        } catch {
          /* reported below */
        }
        if (!after) throw invalid([{ field: "pageToken", description: "is not a token from ListChats: pass next_page_token as it was returned" }]);
      }
      const byRecord = recordFilter(recordArg(req.record), 5);
      const rows = await tenant(ctx, async (sql, p) => {
        const { rows } = await sql.query<ChatRow & { activity: string }>(
          `SELECT v.*, v.activity_text AS activity FROM (
             SELECT c.id, c.name, c.created_by, c.created_at, c.last_seq, c.last_message_at, m.last_read_seq,
               coalesce(c.last_message_at, c.created_at) AS activity_at,
               to_char(coalesce(c.last_message_at, c.created_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS activity_text,
               array(SELECT x.user_id FROM chat_members x WHERE x.chat_id = c.id ORDER BY x.joined_at, x.user_id) AS member_ids,
               (SELECT count(*) FROM messages g WHERE g.chat_id = c.id AND g.seq > m.last_read_seq AND g.sender_id <> $1) AS unread,${RECORD_COLUMNS}
             FROM chat_members m JOIN chats c ON c.id = m.chat_id
             WHERE m.user_id = $1 ${byRecord.sql} AND ($2::timestamptz IS NULL OR (coalesce(c.last_message_at, c.created_at), c.id) < ($2::timestamptz, $3::uuid))
             ORDER BY coalesce(c.last_message_at, c.created_at) DESC, c.id DESC
             LIMIT $4) v`,
          [p.userId, after?.[0] ?? null, after?.[1] ?? null, size + 1, byRecord.value],
        );
        return rows;
      });
      const page = rows.slice(0, size);
      const last = page[page.length - 1];
      return {
        chats: page.map(toChat),
        nextPageToken: rows.length > size && last ? Buffer.from(JSON.stringify([last.activity, last.id])).toString("base64url") : "",
      };
    },

    async saveMessage(req, ctx) {
      const id = chatId(req.chatId);
      const text = content(req.content);
      const clientId = req.clientMessageId;
      if (clientId.length > 64) throw invalid([{ field: "clientMessageId", description: "must be at most 64 characters" }]);
      const p = principalOf(ctx);
      // The sender's trace context, taken now: the batch that stores the message may run in another's.
      const headers = injectTraceHeaders({});
      return sends.submit(`${p.companyId} ${id}`, { userId: p.userId, text, clientId, headers });
    },

    async setChatRecordDB(req, ctx) {
      const id = chatId(req.chatId);
      const record = recordArg(req.record);
      const chat = await tenant(ctx, async (sql, p) => {
        await setChatRecord(sql, p, id, record);
        return loadChat(sql, id, p.userId);
      });
      return { chat: toChat(chat) };
    },

    async listMessages(req, ctx) {
      const id = chatId(req.chatId);
      if (req.beforeSeq !== undefined && req.afterSeq !== undefined) throw invalid([{ field: "beforeSeq", description: "set at most one of beforeSeq and afterSeq" }]);
      if ((req.beforeSeq ?? 0n) < 0n || (req.afterSeq ?? 0n) < 0n) throw invalid([{ field: req.beforeSeq !== undefined ? "beforeSeq" : "afterSeq", description: "must not be negative" }]);
      const limit = req.limit >= 1 && req.limit <= 200 ? req.limit : 50;
      const p = principalOf(ctx);
      const forward = req.afterSeq !== undefined;
      const bound = forward ? req.afterSeq! : (req.beforeSeq ?? null);
      // ONE round trip (the start, this statement, COMMIT; a hot read, and chat streams replay with
      // it): the membership and the page in one prepared statement, no row when the caller is not a member.
      const read = forward ? READ_AFTER : READ_BEFORE;
      const { rows } = (await runPrepared(db, p.companyId, [read], (lit, stmt) =>
        `EXECUTE ${stmt(read.name)}(${lit(id)}, ${lit(p.userId)}, ${lit(String(bound ?? MAX_SEQ))}, ${lit(String(limit + 1))})`,
      )) as pg.QueryResult<{ chat_last_seq: string } & (MessageRow | { [K in keyof MessageRow]: null })>;
      if (!rows[0]) throw notFound(id);
      const lastSeq = BigInt(rows[0].chat_last_seq);
      const found = rows.filter((r): r is { chat_last_seq: string } & MessageRow => r.id !== null);
      const hasMore = found.length > limit;
      const page = found.slice(0, limit);
      if (!forward) page.reverse();
      const messages = page.map(toMessage);
      const first = messages[0]?.seq;
      const last = messages[messages.length - 1]?.seq;
      return {
        messages,
        hasMore,
        lastSeq,
        nextBeforeSeq: first !== undefined && first > 1n ? first : undefined,
        nextAfterSeq: last !== undefined && last < lastSeq ? last : undefined,
      };
    },

    async markRead(req, ctx) {
      const id = chatId(req.chatId);
      if (req.seq < 0n) throw invalid([{ field: "seq", description: "must not be negative" }]);
      const out = await tenant(ctx, async (sql, p) => {
        const { rows } = await sql.query<{ last_read_seq: string }>(
          `UPDATE chat_members m SET last_read_seq = greatest(m.last_read_seq, least($3::bigint, c.last_seq))
           FROM chats c WHERE c.id = m.chat_id AND m.chat_id = $1 AND m.user_id = $2 RETURNING m.last_read_seq`,
          [id, p.userId, String(req.seq)],
        );
        if (!rows[0]) throw notFound(id);
        const { rows: u } = await sql.query<{ n: string }>("SELECT count(*) AS n FROM messages WHERE chat_id = $1 AND seq > $2 AND sender_id <> $3", [id, rows[0].last_read_seq, p.userId]);
        return { lastReadSeq: BigInt(rows[0].last_read_seq), unreadCount: BigInt(u[0]!.n) };
      });
      return out;
    },

    async getMembership(req, ctx) {
      const id = chatId(req.chatId);
      const p = principalOf(ctx);
      // ONE round trip: every chat stream asks this when it starts and whenever it is idle.
      const { rows } = (await runPrepared(db, p.companyId, [MEMBERSHIP], (lit, stmt) => `EXECUTE ${stmt(MEMBERSHIP.name)}(${lit(id)}, ${lit(p.userId)})`)) as pg.QueryResult<{
        last_seq: string;
        last_read_seq: string;
      }>;
      const row = rows[0];
      return row ? { member: true, lastSeq: BigInt(row.last_seq), lastReadSeq: BigInt(row.last_read_seq) } : { member: false, lastSeq: 0n, lastReadSeq: 0n };
    },
  };
}

/**
 * The transactional outbox. A store that must tell other services about a change calls
 * `enqueue(sql, msg)` inside the SAME transaction (db.tenant / db.system) that makes the change:
 * both commit or neither does. The relay (relay.ts) publishes committed rows to RabbitMQ with
 * publisher confirms and deletes them after the confirm: at-least-once, so consumers must be
 * idempotent (use `messageId`).
 *
 * - To a queue: exchange "" and routingKey = the queue's name (published `mandatory`: the row waits
 *   in the outbox until the queue exists).
 * - To an exchange: it must be one the relay declares (relay.ts `relayExchanges`).
 */
import { injectTraceHeaders } from "@crm/kit";
import type pg from "pg";

/** A connection in a transaction (db.ts's `Sql`; named here so that db.ts may import this module). */
type Sql = pg.PoolClient;

export interface OutboxMessage {
  exchange: string;
  routingKey: string;
  payload: Uint8Array;
  contentType: string;
  messageId?: string;
  headers?: Record<string, string>;
  companyId?: string;
}

const COLUMNS = "exchange, routing_key, payload, content_type, message_id, headers, company_id";

const payloadOf = (m: OutboxMessage) => Buffer.from(m.payload.buffer, m.payload.byteOffset, m.payload.byteLength);
/** A message's headers as stored: its own, with the current trace context added. */
const headersOf = (m: OutboxMessage) => injectTraceHeaders({ ...m.headers });

/** A message's values in COLUMNS' order (the payload as a Buffer, the headers as JSON with the trace context). */
function values(m: OutboxMessage): [string, string, Buffer, string, string | null, string, string | null] {
  return [m.exchange, m.routingKey, payloadOf(m), m.contentType, m.messageId ?? null, JSON.stringify(headersOf(m)), m.companyId ?? null];
}

/** The outbox's columns, for a statement that writes outbox rows itself (their values: `outboxValues`). */
export const OUTBOX_COLUMNS = COLUMNS;

/**
 * A message's values as stored, for a statement that writes its outbox rows itself (e.g. with a
 * payload or message id it computes: the records' versioned changes): the headers as JSON with the
 * current trace context.
 */
export function outboxValues(m: OutboxMessage): { exchange: string; routingKey: string; contentType: string; messageId: string | null; headers: string; companyId: string | null } {
  return { exchange: m.exchange, routingKey: m.routingKey, contentType: m.contentType, messageId: m.messageId ?? null, headers: JSON.stringify(headersOf(m)), companyId: m.companyId ?? null };
}

export async function enqueue(sql: Sql, msg: OutboxMessage): Promise<void> {
  await enqueueMany(sql, [msg]);
}

/** Many messages in ONE statement (e.g. the invitations of a bulk AddUsers), same semantics as `enqueue`. */
export async function enqueueMany(sql: Sql, msgs: OutboxMessage[]): Promise<void> {
  if (msgs.length === 0) return;
  const rows = msgs.map(values);
  // crm_app may only INSERT here (no RETURNING: that would need SELECT).
  await sql.query(
    `INSERT INTO outbox (${COLUMNS})
     SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[], $4::text[], $5::text[], $6::jsonb[], $7::uuid[])`,
    COLUMNS.split(", ").map((_, i) => rows.map((r) => r[i])),
  );
}

/**
 * The same INSERT as `enqueueMany` as SQL text with literal values (`lit` quotes one), for a
 * script that runs several statements in one round trip (db.ts `Script.outbox`). "" for none.
 */
export function enqueueText(msgs: OutboxMessage[], lit: (v: string) => string): string {
  if (msgs.length === 0) return "";
  const row = (m: OutboxMessage) => values(m).map((v) => (v === null ? "NULL" : lit(Buffer.isBuffer(v) ? `\\x${v.toString("hex")}` : v)));
  // In an INSERT, VALUES take the types of the columns (bytea from '\x…', jsonb, uuid).
  return `INSERT INTO outbox (${COLUMNS}) VALUES ${msgs.map((m) => `(${row(m).join(", ")})`).join(", ")}`;
}

/**
 * Messages as ONE JSON array, for a statement that writes them itself with `outboxInsertFromJson`
 * (e.g. only when another part of the same statement wrote something): the values of
 * `enqueueMany`, the payload in base64.
 */
export function outboxJson(msgs: OutboxMessage[]): string {
  return JSON.stringify(
    msgs.map((m) => ({ x: m.exchange, r: m.routingKey, p: payloadOf(m).toString("base64"), t: m.contentType, m: m.messageId ?? null, h: headersOf(m), c: m.companyId ?? null })),
  );
}

/**
 * The INSERT of the messages in `rows` (an SQL expression of a jsonb array made by `outboxJson`,
 * e.g. a statement parameter), in their order, if the SQL condition `when` holds: for a CTE.
 */
export function outboxInsertFromJson(rows: string, when = "true"): string {
  return `INSERT INTO outbox (${COLUMNS})
    SELECT o.e->>'x', o.e->>'r', decode(o.e->>'p', 'base64'), o.e->>'t', o.e->>'m', o.e->'h', (o.e->>'c')::uuid
    FROM jsonb_array_elements(${rows}) WITH ORDINALITY AS o(e, n) WHERE ${when} ORDER BY o.n`;
}

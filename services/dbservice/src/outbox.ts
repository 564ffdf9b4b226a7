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

export async function enqueue(sql: Sql, msg: OutboxMessage): Promise<void> {
  // crm_app may only INSERT here (no RETURNING: that would need SELECT).
  await sql.query(
    `INSERT INTO outbox (exchange, routing_key, payload, content_type, message_id, headers, company_id)
     VALUES ($1, $2, $3, $4, $5, $6, $7)`,
    [
      msg.exchange,
      msg.routingKey,
      Buffer.from(msg.payload.buffer, msg.payload.byteOffset, msg.payload.byteLength),
      msg.contentType,
      msg.messageId ?? null,
      JSON.stringify(injectTraceHeaders({ ...msg.headers })),
      msg.companyId ?? null,
    ],
  );
}

/** Many messages in ONE statement (e.g. the invitations of a bulk AddUsers), same semantics as `enqueue`. */
export async function enqueueMany(sql: Sql, msgs: OutboxMessage[]): Promise<void> {
  if (msgs.length === 0) return;
  await sql.query(
    `INSERT INTO outbox (exchange, routing_key, payload, content_type, message_id, headers, company_id)
     SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[], $4::text[], $5::text[], $6::jsonb[], $7::uuid[])`,
    [
      msgs.map((m) => m.exchange),
      msgs.map((m) => m.routingKey),
      msgs.map((m) => Buffer.from(m.payload.buffer, m.payload.byteOffset, m.payload.byteLength)),
      msgs.map((m) => m.contentType),
      msgs.map((m) => m.messageId ?? null),
      msgs.map((m) => JSON.stringify(injectTraceHeaders({ ...m.headers }))),
      msgs.map((m) => m.companyId ?? null),
    ],
  );
}

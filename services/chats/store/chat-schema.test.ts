/**
 * The chat tables' invariants live in the schema, not only in chat-store.ts: row-level security
 * hides other tenants' chats even from a query without a company filter, a member or sender of
 * another company cannot be inserted even by hand, and (chat, seq) is unique.
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, test } from "node:test";
import pg from "pg";
import { installHint, need, postgresUp } from "@crm/testkit";
import type { Db } from "@crm/dbservice/db";
import { migratedDatabase, type MigratedDatabase } from "../../dbservice/test/helpers.js";

const skip = need("PostgreSQL", await postgresUp(), installHint.postgres);

let m: MigratedDatabase;
let pool: pg.Pool;
let db: Db;
const A = { company: randomUUID(), user: randomUUID(), chat: randomUUID() };
const B = { company: randomUUID(), user: randomUUID(), chat: randomUUID() };

before(async () => {
  if (skip) return;
  m = await migratedDatabase();
  ({ pool, db } = m);
  for (const t of [A, B]) {
    await pool.query("INSERT INTO companies (id, name) VALUES ($1, 'Co')", [t.company]);
    await pool.query("INSERT INTO users (id, company_id, email, name, role) VALUES ($1, $2, $3, 'U', 'owner')", [t.user, t.company, `${t.user}@x.io`]);
    await db.tenant(t.company, async (sql) => {
      await sql.query("INSERT INTO chats (id, company_id, name, created_by) VALUES ($1, $2, 'chat', $3)", [t.chat, t.company, t.user]);
      await sql.query("INSERT INTO chat_members (chat_id, user_id, company_id) VALUES ($1, $2, $3)", [t.chat, t.user, t.company]);
      await sql.query("INSERT INTO messages (chat_id, seq, company_id, sender_id, content) VALUES ($1, 1, $2, $3, 'hello')", [t.chat, t.company, t.user]);
    });
  }
});
after(async () => {
  await m?.drop();
});

test("row-level security: a tenant sees only its own chats, members and messages, even without a filter", { skip }, async () => {
  const seen = await db.tenant(A.company, async (sql) => ({
    chats: (await sql.query("SELECT id FROM chats")).rows.map((r) => r.id),
    members: (await sql.query("SELECT chat_id FROM chat_members")).rows.length,
    messages: (await sql.query("SELECT chat_id FROM messages")).rows.map((r) => r.chat_id),
    updated: (await sql.query("UPDATE chats SET last_seq = 99 WHERE id = $1", [B.chat])).rowCount,
  }));
  assert.deepEqual(seen, { chats: [A.chat], members: 1, messages: [A.chat], updated: 0 });
});

test("schema: no member or sender from another company, no message into another tenant's chat, no duplicate seq", { skip }, async () => {
  // Tenant A tries to add B's user to A's chat (the composite foreign key refuses it).
  await assert.rejects(db.tenant(A.company, (sql) => sql.query("INSERT INTO chat_members (chat_id, user_id, company_id) VALUES ($1, $2, $3)", [A.chat, B.user, A.company])), /foreign key/);
  // Tenant A writes into B's chat while claiming B's company (RLS refuses it).
  await assert.rejects(db.tenant(A.company, (sql) => sql.query("INSERT INTO messages (chat_id, seq, company_id, sender_id, content) VALUES ($1, 2, $2, $3, 'x')", [B.chat, B.company, B.user])), /row-level security/);
  // Even the table owner cannot insert a cross-company member.
  await assert.rejects(pool.query("INSERT INTO chat_members (chat_id, user_id, company_id) VALUES ($1, $2, $3)", [A.chat, B.user, B.company]), /foreign key/);
  await assert.rejects(db.tenant(A.company, (sql) => sql.query("INSERT INTO messages (chat_id, seq, company_id, sender_id, content) VALUES ($1, 1, $2, $3, 'again')", [A.chat, A.company, A.user])), /messages_pkey|duplicate key/);
  await assert.rejects(db.tenant(A.company, (sql) => sql.query("INSERT INTO messages (chat_id, seq, company_id, sender_id, content) VALUES ($1, 2, $2, $3, '')", [A.chat, A.company, A.user])), /check constraint/);
});

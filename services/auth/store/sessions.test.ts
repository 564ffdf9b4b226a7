/**
 * A login's writes on the real PostgreSQL, below the service: CreateSession stores the session,
 * its refresh token, the auth.login audit row and that row's outbox message in two round trips
 * (the login scenario of bench/README.md counts them), and nothing at all for a user who is not
 * active.
 */
import assert from "node:assert/strict";
import { randomBytes, randomUUID } from "node:crypto";
import { after, before, test } from "node:test";
import type pg from "pg";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, createClient } from "@connectrpc/connect";
import { DbAuthService } from "@crm/gen/crm/db/v1/db_auth_pb";
import { createDb } from "@crm/dbservice/db";
import { expectError, inMemory, installHint, need, postgresUp } from "@crm/testkit";
import { auditLog } from "@crm/admin/store";
import { migratedDatabase, type MigratedDatabase } from "../../dbservice/test/helpers.js";
import { authStore } from "./auth-store.js";

const skip = need("PostgreSQL", await postgresUp(), installHint.postgres);

let m: MigratedDatabase;
const company = randomUUID();
let owner: string;
let gone: string;
/** Queries the store sent (each a round trip: node-postgres sends one only after the last answered). */
let trips = 0;
let store: ReturnType<typeof createClient<typeof DbAuthService>>;

before(async () => {
  if (skip) return;
  m = await migratedDatabase();
  await m.pool.query("INSERT INTO companies (id, name) VALUES ($1, 'Sessions test')", [company]);
  const user = async (status: string) =>
    (await m.pool.query<{ id: string }>("INSERT INTO users (company_id, email, name, role, status) VALUES ($1, $2, 'Olga', 'member', $3) RETURNING id", [company, `${randomUUID()}@example.com`, status])).rows[0]!.id;
  owner = await user("active");
  gone = await user("deactivated");
  // The pool as the store's Db sees it, counting the queries sent on the connections it takes.
  const counting = Object.create(m.pool, {
    connect: {
      value: async () => {
        const client = await m.pool.connect();
        const { query, release } = client;
        client.query = ((...args: Parameters<typeof query>) => (trips++, query.apply(client, args))) as typeof query;
        client.release = (...args: Parameters<typeof release>) => {
          Object.assign(client, { query, release });
          return release.apply(client, args);
        };
        return client;
      },
    },
  }) as pg.Pool;
  const db = createDb(counting);
  const world = inMemory();
  store = world.client(DbAuthService, world.serve((r) => r.service(DbAuthService, authStore(db, { audit: auditLog(db) }))), { service: "auth" });
});
after(async () => {
  await m?.drop();
});

const session = (refreshHash: Buffer) => ({ refreshHash, expiresAt: timestampFromMs(Date.now() + 86_400_000), userAgent: "Test agent", ip: "192.0.2.7" });

test("CreateSession: the session, its refresh token, the login's audit row and its outbox message, in two round trips", { skip }, async () => {
  const hash = randomBytes(32);
  trips = 0;
  const { sessionId } = await store.createSession({ userId: owner, companyId: company, session: session(hash) });
  assert.equal(trips, 2, "the start with the writes, then the outbox message with COMMIT");
  const s = await m.pool.query("SELECT company_id, user_id, user_agent, ip, expires_at > now() AS live FROM sessions WHERE id = $1", [sessionId]);
  assert.deepEqual(s.rows, [{ company_id: company, user_id: owner, user_agent: "Test agent", ip: "192.0.2.7", live: true }]);
  const t = await m.pool.query("SELECT session_id, company_id FROM refresh_tokens WHERE hash = $1", [hash]);
  assert.deepEqual(t.rows, [{ session_id: sessionId, company_id: company }]);
  const a = await m.pool.query("SELECT id, action, actor_type, actor_id, actor_name, user_id, target_type, ip FROM audit_events WHERE target_id = $1", [sessionId]);
  assert.equal(a.rows.length, 1);
  const { id: eventId, ...event } = a.rows[0] as { id: string };
  assert.deepEqual(event, { action: "auth.login", actor_type: "user", actor_id: owner, actor_name: "Olga", user_id: owner, target_type: "session", ip: "192.0.2.7" });
  const o = await m.pool.query("SELECT routing_key, company_id FROM outbox WHERE message_id = $1", [eventId]);
  assert.equal(o.rows.length, 1, "the audit row's message, for the audit queue");
  assert.equal(o.rows[0].company_id, company);
});

test("CreateSession for a user who is not active: not_found, and no session, token, audit row or message", { skip }, async () => {
  const count = async () => (await m.pool.query<{ n: string }>("SELECT (SELECT count(*) FROM sessions) + (SELECT count(*) FROM refresh_tokens) + (SELECT count(*) FROM audit_events) + (SELECT count(*) FROM outbox) AS n")).rows[0]!.n;
  const before = await count();
  await expectError(store.createSession({ userId: gone, companyId: company, session: session(randomBytes(32)) }), Code.NotFound);
  await expectError(store.createSession({ userId: owner, companyId: randomUUID(), session: session(randomBytes(32)) }), Code.NotFound);
  assert.equal(await count(), before);
});

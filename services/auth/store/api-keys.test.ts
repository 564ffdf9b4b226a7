/**
 * API keys on the real PostgreSQL, below the service: the store served in memory over a migrated
 * database (the acting user's role read from the database), crm_use_api_key's verdicts and its
 * once-a-minute, once-a-day bookkeeping, the audit rows written in the same transactions, and
 * revoked keys on the list the revocation keeper rebuilds Redis from.
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, test } from "node:test";
import pg from "pg";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, createClient } from "@connectrpc/connect";
import { DbAuthService, UseApiKeyDBResponse_Outcome as Outcome } from "@crm/gen/crm/db/v1/db_auth_pb";
import { newApiKey } from "@crm/contracts/tokens";
import { expectError, inMemory, installHint, need, postgresUp } from "@crm/testkit";
import { auditLog } from "@crm/admin/store";
import { migratedDatabase, type MigratedDatabase } from "../../dbservice/test/helpers.js";
import { authStore } from "./auth-store.js";

const skip = need("PostgreSQL", await postgresUp(), installHint.postgres);

let m: MigratedDatabase;
let pool: pg.Pool;
const company = randomUUID();
let owner: string;
let member: string;
const world = inMemory();
let store: ReturnType<typeof createClient<typeof DbAuthService>>;
let asAuth: ReturnType<typeof createClient<typeof DbAuthService>>;

before(async () => {
  if (skip) return;
  m = await migratedDatabase();
  pool = m.pool;
  await pool.query("INSERT INTO companies (id, name) VALUES ($1, 'Keys test')", [company]);
  const user = async (role: string) => (await pool.query<{ id: string }>("INSERT INTO users (company_id, email, name, role) VALUES ($1, $2, $3, $4) RETURNING id", [company, `${randomUUID()}@example.com`, `${role} one`, role])).rows[0]!.id;
  owner = await user("owner");
  member = await user("member");
  const served = world.serve((r) => r.service(DbAuthService, authStore(m.db, { audit: auditLog(m.db) })), { publicMethods: [`/${DbAuthService.typeName}/UseApiKeyDB`] });
  store = world.client(DbAuthService, served, world.user({ userId: owner, companyId: company, role: "owner" }));
  asAuth = world.client(DbAuthService, served, { service: "auth" });
});
after(async () => {
  await m?.drop();
});

const actions = async () => (await pool.query<{ action: string }>("SELECT action FROM audit_events WHERE company_id = $1 ORDER BY seq", [company])).rows.map((r) => r.action);

async function create(name: string, expiresAtMs?: number) {
  const k = newApiKey();
  const res = await store.createApiKeyDB({ name, prefix: k.prefix, keyHash: k.hash, scopes: ["deals:read"], requestsPerMinute: 60, ip: "192.0.2.9", expiresAt: expiresAtMs ? timestampFromMs(expiresAtMs) : undefined });
  return { ...k, id: res.apiKey!.apiKeyId };
}

test("created by an owner, audited in the same transaction; members cannot; the app role cannot delete a key", { skip }, async () => {
  const k = await create("first");
  const { rows } = await pool.query<{ key_hash: Buffer; prefix: string; created_by: string }>("SELECT key_hash, prefix, created_by FROM api_keys WHERE id = $1", [k.id]);
  assert.deepEqual(rows[0], { key_hash: k.hash, prefix: k.prefix, created_by: owner });
  assert.deepEqual(await actions(), ["api_key.created"]);
  const asMember = world.client(DbAuthService, world.serve((r) => r.service(DbAuthService, authStore(m.db, { audit: auditLog(m.db) }))), world.user({ userId: member, companyId: company, role: "member" }));
  const other = newApiKey();
  await expectError(asMember.createApiKeyDB({ name: "no", prefix: other.prefix, keyHash: other.hash, scopes: ["deals:read"], requestsPerMinute: 60 }), Code.PermissionDenied);
  await expectError(store.createApiKeyDB({ name: "bad", prefix: other.prefix, keyHash: other.hash, scopes: ["deals:burn"], requestsPerMinute: 60 }), Code.InvalidArgument, { fields: ["scopes[0]"] });
  const code = await m.db.tenant(company, (sql) => sql.query("DELETE FROM api_keys").then(() => "ok", (e: { code: string }) => e.code)).catch((e: { code?: string }) => e.code);
  assert.equal(code, "42501");
});

test("use: valid keys are recorded at most once a minute and audited once a UTC day; revoked, expired and unknown keys are refused", { skip }, async () => {
  const k = await create("used");
  const first = await asAuth.useApiKeyDB({ keyHash: k.hash, ip: "198.51.100.1" });
  assert.equal(first.outcome, Outcome.VALID);
  assert.deepEqual([first.companyId, first.apiKey?.createdBy, first.apiKey?.lastUsedIp, first.apiKey?.scopes], [company, owner, "198.51.100.1", ["deals:read"]]);
  const again = await asAuth.useApiKeyDB({ keyHash: k.hash, ip: "198.51.100.2" });
  assert.equal(again.apiKey?.lastUsedIp, "198.51.100.1", "within a minute: not written again");
  // A minute later (moved back in the database), the same day: written, not audited again.
  await pool.query("UPDATE api_keys SET last_used_at = now() - interval '61 seconds' WHERE id = $1", [k.id]);
  const later = await asAuth.useApiKeyDB({ keyHash: k.hash, ip: "198.51.100.3" });
  assert.equal(later.apiKey?.lastUsedIp, "198.51.100.3");
  // Last used yesterday (UTC): this use is the day's first.
  await pool.query("UPDATE api_keys SET last_used_at = date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' - interval '1 second' WHERE id = $1", [k.id]);
  await asAuth.useApiKeyDB({ keyHash: k.hash, ip: "198.51.100.4" });
  const used = await pool.query<{ actor_type: string; actor_name: string; user_id: string; ip: string }>(
    "SELECT actor_type, actor_name, user_id, ip FROM audit_events WHERE action = 'api_key.used' AND target_id = $1 ORDER BY seq",
    [k.id],
  );
  assert.deepEqual(used.rows, [
    { actor_type: "api_key", actor_name: "API key used", user_id: owner, ip: "198.51.100.1" },
    { actor_type: "api_key", actor_name: "API key used", user_id: owner, ip: "198.51.100.4" },
  ]);
  const outbox = await pool.query("SELECT count(*) FROM outbox WHERE routing_key = 'audit_events' AND message_id IN (SELECT id::text FROM audit_events WHERE target_id = $1 AND action = 'api_key.used')", [k.id]);
  assert.equal(Number(outbox.rows[0].count), 2, "each audited use went to the outbox with its row");

  assert.equal((await asAuth.useApiKeyDB({ keyHash: newApiKey().hash, ip: "" })).outcome, Outcome.UNKNOWN);
  const soon = await create("soon", Date.now() + 60_000);
  await pool.query("UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE id = $1", [soon.id]);
  assert.equal((await asAuth.useApiKeyDB({ keyHash: soon.hash, ip: "" })).outcome, Outcome.EXPIRED);
  await store.revokeApiKeyDB({ apiKeyId: k.id, ip: "192.0.2.9" });
  assert.equal((await asAuth.useApiKeyDB({ keyHash: k.hash, ip: "" })).outcome, Outcome.REVOKED);
  // Only the auth service may use keys.
  await expectError(store.useApiKeyDB({ keyHash: k.hash, ip: "" }), Code.PermissionDenied);
});

test("a revoked key is on the list the revocation keeper rebuilds Redis from; a deactivated creator's key is refused", { skip }, async () => {
  const k = await create("to revoke");
  const revoked = await store.revokeApiKeyDB({ apiKeyId: k.id, ip: "" });
  assert.equal(revoked.revokedNow, true);
  assert.equal((await store.revokeApiKeyDB({ apiKeyId: k.id, ip: "" })).revokedNow, false, "again: nothing changes");
  const { rows } = await m.db.system((sql) => sql.query<{ session_id: string; ttl_seconds: number }>("SELECT * FROM crm_recently_revoked_sessions(960)"));
  const entry = rows.find((r) => r.session_id === k.id);
  assert.ok(entry && entry.ttl_seconds > 950 && entry.ttl_seconds <= 960);
  const audited = await pool.query("SELECT count(*) FROM audit_events WHERE action = 'api_key.revoked' AND target_id = $1", [k.id]);
  assert.equal(Number(audited.rows[0].count), 1, "revoked once, audited once");
  await expectError(store.revokeApiKeyDB({ apiKeyId: randomUUID(), ip: "" }), Code.NotFound);

  const live = await create("creator leaves");
  await pool.query("UPDATE users SET status = 'deactivated' WHERE id = $1", [owner]);
  try {
    assert.equal((await asAuth.useApiKeyDB({ keyHash: live.hash, ip: "" })).outcome, Outcome.CREATOR_INACTIVE);
  } finally {
    await pool.query("UPDATE users SET status = 'active' WHERE id = $1", [owner]);
  }
});

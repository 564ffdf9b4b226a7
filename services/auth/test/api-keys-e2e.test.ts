/**
 * API keys and the audit log end to end, through the all-in-one on the real PostgreSQL: an owner
 * creates a key, calls with it (Authorization: Bearer crm_live_…), is refused what the key's
 * scopes do not allow, revokes it, and the very next call is unauthenticated; the audit log holds
 * each step and is closed to members; the CSV export carries the same events.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import pg from "pg";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { AuthService } from "@crm/gen/crm/auth/v1/auth_pb";
import { ApiKeyService, ListApiKeysResponseSchema } from "@crm/gen/crm/auth/v1/api_keys_pb";
import { toJsonString } from "@bufbuild/protobuf";
import { ActorType, AuditService } from "@crm/gen/crm/admin/v1/audit_pb";
import { AdminService } from "@crm/gen/crm/admin/v1/admin_pb";
import { CompanyService } from "@crm/gen/crm/records/v1/company_pb";
import { TimerService } from "@crm/gen/crm/timer/v1/timer_pb";
import { freshDatabase, installHint, need, postgresUp, until, type TestApp, type TestDatabase } from "@crm/testkit";
import { startTestApp } from "@crm/all/test-app";

const skip = need("PostgreSQL", await postgresUp(), installHint.postgres);

let tdb: TestDatabase;
let app: TestApp;
let sql: pg.Pool;
let owner: { token: string; userId: string; companyId: string };

before(async () => {
  if (skip) return;
  tdb = await freshDatabase();
  sql = new pg.Pool({ connectionString: tdb.url, max: 2 });
  app = await startTestApp({ DATABASE_URL: tdb.url, API_KEY_ACCESS_TTL_SECONDS: "60" });
  const r = await app.client(AuthService).registerCompany({ companyName: "Keys Inc", email: "owner@keys.test", phone: "+14155550111", password: "a long enough passphrase", ownerName: "Olga Owner", locale: "en" });
  owner = { token: r.accessToken, userId: r.userId, companyId: r.companyId };
});
after(async () => {
  await app?.close();
  await sql?.end();
  await tdb?.drop();
});

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return "ok";
  } catch (err) {
    return Code[ConnectError.from(err).code]!;
  }
}

const actions = async () => (await sql.query<{ action: string }>("SELECT action FROM audit_events ORDER BY seq")).rows.map((r) => r.action);

test("a key: created once with its secret, used with its scopes, refused beyond them, revoked at once", { skip }, async () => {
  const keys = app.client(ApiKeyService, { token: owner.token });
  const created = await keys.createApiKey({ name: "Zapier sync", scopes: ["companies:read", "timers:write", "timers:read"], expiresAt: timestampFromMs(Date.now() + 86_400_000) });
  assert.match(created.secret, /^crm_live_[0-9a-f]{12}_[A-Za-z0-9_-]{43}$/);
  assert.equal(created.apiKey?.prefix, created.secret.slice(0, 21));
  assert.deepEqual(created.apiKey?.scopes, ["companies:read", "timers:read", "timers:write"]);
  // Stored hashed: the secret is nowhere in the database.
  const stored = await sql.query<{ key_hash: Buffer }>("SELECT key_hash FROM api_keys");
  assert.equal(stored.rows.length, 1);
  assert.equal(stored.rows[0]!.key_hash.length, 32);
  const listed = await keys.listApiKeys({});
  assert.equal(listed.apiKeys.length, 1);
  assert.ok(!toJsonString(ListApiKeysResponseSchema, listed).includes(created.secret.slice(21)), "the secret is never listed");

  // Reads of its scope pass; it acts for its creator.
  const check = await app.client(AuthService, { token: created.secret }).check({});
  assert.equal(check.userId, owner.userId);
  assert.equal(check.sessionId, created.apiKey?.apiKeyId);
  assert.equal(await codeOf(app.client(CompanyService, { token: created.secret }).listCompanies({})), "ok");
  const timer = await app.client(TimerService, { token: created.secret }).startTimer({ description: "by key" });
  assert.equal(timer.timer?.userId, owner.userId);
  // Beyond its scopes: permission_denied, for writes without write scope and for admin RPCs.
  assert.equal(await codeOf(app.client(CompanyService, { token: created.secret }).createCompany({ company: { name: "Nope" } })), "PermissionDenied");
  assert.equal(await codeOf(app.client(AdminService, { token: created.secret }).listUsers({})), "PermissionDenied");
  assert.equal(await codeOf(app.client(AuditService, { token: created.secret }).listAuditEvents({})), "PermissionDenied");
  // Keys never manage keys, nor sessions.
  assert.equal(await codeOf(app.client(ApiKeyService, { token: created.secret }).listApiKeys({})), "PermissionDenied");
  assert.equal(await codeOf(app.client(AuthService, { token: created.secret }).logout({})), "PermissionDenied");

  // Its use is recorded (time and address), and the first use of the day is audited.
  const used = (await keys.listApiKeys({})).apiKeys[0]!;
  assert.ok(used.lastUsedAt, "last used time");
  assert.equal(used.lastUsedIp, "127.0.0.1");

  await keys.revokeApiKey({ apiKeyId: created.apiKey!.apiKeyId });
  // At once: the very next call, with the key cached as verified in this process, is refused.
  assert.equal(await codeOf(app.client(CompanyService, { token: created.secret }).listCompanies({})), "Unauthenticated");
  assert.equal(await codeOf(app.client(AuthService, { token: created.secret }).check({})), "Unauthenticated");
  assert.equal((await keys.listApiKeys({})).apiKeys.length, 0, "revoked keys are listed only when asked");
  assert.ok((await keys.listApiKeys({ includeRevoked: true })).apiKeys[0]?.revokedAt);

  const all = await actions();
  for (const a of ["auth.company_registered", "auth.login", "api_key.created", "api_key.used", "api_key.revoked"]) assert.ok(all.includes(a), `${a} in ${all.join(", ")}`);
  assert.equal(all.filter((a) => a === "api_key.used").length, 1, "first use of the day only");
});

test("unknown and malformed keys are unauthenticated; an admin-scoped key acts as its creator, audited as the key", { skip }, async () => {
  assert.equal(await codeOf(app.client(AuthService, { token: "crm_live_000000000000_" + "A".repeat(43) }).check({})), "Unauthenticated");
  assert.equal(await codeOf(app.client(AuthService, { token: "crm_live_zz" }).check({})), "Unauthenticated");
  const admin = app.client(AdminService, { token: owner.token });
  const added = await admin.addUsers({ users: [{ email: "ada@keys.test", name: "Ada Admin", role: 2 }] });
  const adaId = added.results[0]!.userId;
  const keys = app.client(ApiKeyService, { token: owner.token });
  const k = await keys.createApiKey({ name: "owner's", scopes: ["admin"] });
  const asKey = app.client(AdminService, { token: k.secret });
  assert.equal(await codeOf(asKey.listUsers({})), "ok");
  // An admin-scoped key may act as its creator's role allows: deactivate Ada.
  await asKey.deactivateUser({ userId: adaId });
  const byKey = await sql.query<{ actor_type: string; actor_name: string }>("SELECT actor_type, actor_name FROM audit_events WHERE action = 'admin.user_deactivated'");
  assert.deepEqual(byKey.rows, [{ actor_type: "api_key", actor_name: "API key owner's" }]);
});

test("the audit log: owners and admins list and filter it, members cannot, the export is CSV", { skip }, async () => {
  const audit = app.client(AuditService, { token: owner.token });
  const page = await audit.listAuditEvents({ pageSize: 2 });
  assert.equal(page.events.length, 2);
  assert.ok(page.nextPageToken);
  const next = await audit.listAuditEvents({ pageSize: 2, pageToken: page.nextPageToken });
  assert.ok(next.events.length > 0);
  assert.ok(next.events[0]!.occurredAt!.seconds <= page.events[1]!.occurredAt!.seconds, "newest first");
  const keyEvents = await audit.listAuditEvents({ actions: ["api_key.created", "api_key.revoked"] });
  assert.ok(keyEvents.events.length >= 2 && keyEvents.events.every((e) => e.action.startsWith("api_key.")));
  assert.deepEqual([...new Set(keyEvents.events.map((e) => `${ActorType[e.actorType]} ${e.actorName}`))], ["USER Olga Owner"]);
  const mine = await audit.listAuditEvents({ actorId: owner.userId, pageSize: 500 });
  assert.ok(mine.events.length > 0 && mine.events.every((e) => e.actorId === owner.userId));
  const none = await audit.listAuditEvents({ startTime: timestampFromMs(Date.now() + 3_600_000) });
  assert.equal(none.events.length, 0);
  assert.equal(await codeOf(audit.listAuditEvents({ actorId: "not-a-uuid" })), "InvalidArgument");

  // A failed login of a known account is audited (in the background: poll).
  assert.equal(await codeOf(app.client(AuthService).login({ email: "owner@keys.test", password: "wrong password here" })), "Unauthenticated");
  await until("auth.login_failed recorded", async () => (await actions()).includes("auth.login_failed"));

  let csv = "";
  for await (const chunk of audit.exportAuditEvents({})) csv += chunk.csv;
  const lines = csv.trimEnd().split("\r\n");
  assert.equal(lines[0], "occurred_at,action,actor_type,actor_id,actor_name,user_id,target_type,target_id,ip,details,event_id");
  const total = Number((await sql.query("SELECT count(*) FROM audit_events")).rows[0].count);
  assert.equal(lines.length, total + 1);
  assert.ok(lines.some((l) => l.includes(",api_key.revoked,")));

  // A member (an invited user who accepted) cannot read the audit log.
  const added = await app.client(AdminService, { token: owner.token }).addUsers({ users: [{ email: "mo@keys.test", name: "Mo Member" }] });
  assert.equal(added.stats?.created, 1);
  const memberToken = await loginAsNewMember("mo@keys.test");
  assert.equal(await codeOf(app.client(AuditService, { token: memberToken }).listAuditEvents({})), "PermissionDenied");
  assert.equal(await codeOf(app.client(ApiKeyService, { token: memberToken }).createApiKey({ name: "x", scopes: ["deals:read"] })), "PermissionDenied");
});

/** Sets a password for an invited user through the store's own token table, then logs in. */
async function loginAsNewMember(email: string): Promise<string> {
  const { createHash, randomBytes } = await import("node:crypto");
  const token = randomBytes(32).toString("base64url");
  await sql.query("UPDATE invite_tokens SET hash = $1 WHERE user_id = (SELECT id FROM users WHERE email = $2)", [createHash("sha256").update(token).digest(), email]);
  const r = await app.client(AuthService).acceptInvite({ token, password: "another long passphrase" });
  return r.accessToken;
}

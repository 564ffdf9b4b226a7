/**
 * ApiKeyService's handlers in memory: the service built by its factory, served through the kit's
 * interceptors with the real token issuer and a real kit verifier that exchanges keys through the
 * served ExchangeApiKey, over the in-memory DbAuthService (../test/fake-store.ts). So a key is
 * created, used as a Bearer token on another served service, refused beyond its scopes, and
 * revoked, all in this process. The same on real servers: ../test/api-keys-e2e.test.ts.
 */
import assert from "node:assert/strict";
import { createHash, generateKeyPairSync } from "node:crypto";
import { test } from "node:test";
import { timestampFromMs, timestampMs } from "@bufbuild/protobuf/wkt";
import { Code, createClient, type ServiceImpl } from "@connectrpc/connect";
import { createTokenVerifier, memoryRevocations, principalOf } from "@crm/kit";
import { apiKeyExchange } from "@crm/kit/api-key-exchange";
import { ApiKeyService } from "@crm/gen/crm/auth/v1/api_keys_pb";
import { AuthService } from "@crm/gen/crm/auth/v1/auth_pb";
import { DbAuthService } from "@crm/gen/crm/db/v1/db_auth_pb";
import { TimerService } from "@crm/gen/crm/timer/v1/timer_pb";
import { AdminService } from "@crm/gen/crm/admin/v1/admin_pb";
import { PermissionService } from "@crm/gen/crm/records/v1/permission_pb";
import { ReportService } from "@crm/gen/crm/records/v1/report_pb";
import { expectError, inMemory, TEST_CLIENT_IP } from "@crm/testkit";
import { fakeAuthStore, fakeDirectory } from "../test/fake-store.js";
import { apiKeyService } from "./api-keys.js";
import { createTokenIssuer, publicJwk } from "./tokens.js";

const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
const jwks = { keys: [await publicJwk(privateKey, "k1")] };
const KEY_TTL = 120;

function setup() {
  const clock = { now: Date.now() };
  const revocations = memoryRevocations();
  const exchange = { calls: 0 };
  // The verifier every served service uses: keys are exchanged through the served ApiKeyService.
  let keysClient: ReturnType<typeof createClient<typeof ApiKeyService>> | undefined;
  const counted = apiKeyExchange(() => keysClient!);
  const verifier = createTokenVerifier({
    jwks,
    issuer: "crm-auth",
    audience: "crm-api",
    revocations,
    apiKeys: (key, call) => (exchange.calls++, counted(key, call)),
  });
  const world = inMemory({ verifier });
  const dir = fakeDirectory(() => clock.now);
  const db = createClient(DbAuthService, world.serve((r) => r.service(DbAuthService, fakeAuthStore(dir)), { from: "auth" }));
  const impl = apiKeyService({
    db,
    tokens: createTokenIssuer({ key: { privateKey, kid: "k1" }, issuer: "crm-auth", audience: "crm-api", accessTtlSeconds: 900, now: () => clock.now }),
    revocations,
    keyTokenTtlSeconds: KEY_TTL,
    revocationTtlSeconds: 960,
    log: world.log,
    now: () => clock.now,
  });
  const api = world.serve((r) => r.service(ApiKeyService, impl), { publicMethods: [`/${ApiKeyService.typeName}/ExchangeApiKey`] });
  keysClient = world.client(ApiKeyService, api, { service: "gateway-test" });
  // Services a key calls: they answer who called (timers: scoped; admin: needs the admin scope; auth's Check: any key).
  const echo = (name: string) => async (_req: unknown, ctx: Parameters<typeof principalOf>[0]) => ({ timer: { timerId: principalOf(ctx).userId, description: name } });
  const timers = world.serve((r) =>
    r.service(TimerService, { startTimer: echo("start"), listTimers: async () => ({ timers: [] }), getWorkingTimer: echo("working") } as Partial<ServiceImpl<typeof TimerService>>),
  );
  const admin = world.serve((r) => r.service(AdminService, { listUsers: async () => ({ users: [] }) }));
  const auth = world.serve((r) => r.service(AuthService, { check: async (_req, ctx) => ({ userId: principalOf(ctx).userId, sessionId: principalOf(ctx).sessionId }), logout: async () => ({}) }));
  const company = dir.addCompany();
  const owner = dir.addUser(company, { role: "owner", name: "Olga" });
  const ownerP = world.user({ userId: owner.id, companyId: company, role: "owner" });
  const as = (who: Parameters<typeof world.client>[2]) => world.client(ApiKeyService, api, who);
  return { world, dir, clock, revocations, exchange, api, timers, admin, auth, company, owner, ownerP, as, keys: as(ownerP) };
}

const hashOf = (key: string) => createHash("sha256").update(key).digest("hex");

test("owners and admins create keys; the secret is shown once and only its hash is kept", async () => {
  const s = setup();
  const created = await s.keys.createApiKey({ name: "  Zapier  ", scopes: ["deals:write", "companies:read", "deals:read"], requestsPerMinute: 0 });
  assert.match(created.secret, /^crm_live_[0-9a-f]{12}_[A-Za-z0-9_-]{43}$/);
  assert.equal(created.apiKey?.name, "Zapier");
  assert.equal(created.apiKey?.prefix, created.secret.slice(0, 21));
  assert.deepEqual(created.apiKey?.scopes, ["companies:read", "deals:read", "deals:write"], "known order, each once");
  assert.equal(created.apiKey?.requestsPerMinute, 600);
  const stored = [...s.dir.apiKeys.values()];
  assert.equal(stored.length, 1);
  assert.equal(stored[0]!.hash, hashOf(created.secret));
  const listed = await s.keys.listApiKeys({});
  assert.deepEqual(listed.apiKeys.map((k) => k.prefix), [created.apiKey?.prefix]);
  assert.deepEqual(s.dir.audit.map((e) => [e.action, e.actor.name, e.ip]), [["api_key.created", "Olga", TEST_CLIENT_IP]]);

  const admin = s.dir.addUser(s.company, { role: "admin" });
  await s.as(s.world.user({ userId: admin.id, companyId: s.company, role: "admin" })).createApiKey({ name: "admin's", scopes: ["admin"] });
  const member = s.dir.addUser(s.company, { role: "member" });
  await expectError(s.as(s.world.user({ userId: member.id, companyId: s.company, role: "member" })).createApiKey({ name: "x", scopes: ["deals:read"] }), Code.PermissionDenied);
  await expectError(s.as({}).listApiKeys({}), Code.Unauthenticated);
});

test("bad settings: invalid_argument naming every field, nothing stored", async () => {
  const s = setup();
  await expectError(
    s.keys.createApiKey({ name: " ", scopes: ["deals:read", "deals:delete", "admin:write"], expiresAt: timestampFromMs(s.clock.now - 1000), requestsPerMinute: 100_001 }),
    Code.InvalidArgument,
    { fields: ["name", "scopes[1]", "scopes[2]", "expiresAt", "requestsPerMinute"] },
  );
  await expectError(s.keys.createApiKey({ name: "x".repeat(101), scopes: [] }), Code.InvalidArgument, { fields: ["name", "scopes"] });
  await expectError(s.keys.createApiKey({ name: "far", scopes: ["admin"], expiresAt: timestampFromMs(s.clock.now + 6 * 365 * 86_400_000) }), Code.InvalidArgument, { fields: ["expiresAt"] });
  await expectError(s.keys.revokeApiKey({ apiKeyId: "nope" }), Code.InvalidArgument, { fields: ["apiKeyId"] });
  assert.equal(s.dir.apiKeys.size, 0);
  assert.equal(s.dir.audit.length, 0);
});

test("a key calls as its creator within its scopes; writes, admin RPCs and session RPCs beyond them are permission_denied", async () => {
  const s = setup();
  const { secret, apiKey } = await s.keys.createApiKey({ name: "sync", scopes: ["timers:read"] });
  const timers = s.world.client(TimerService, s.timers, { token: secret });
  // Reads (NO_SIDE_EFFECTS in the proto) pass, as the creator.
  assert.equal((await timers.getWorkingTimer({})).timer?.timerId, s.owner.id);
  await timers.listTimers({});
  await expectError(timers.startTimer({ description: "x" }), Code.PermissionDenied, { reason: "permission_denied", message: /lacks the scope timers:write/ });
  await expectError(s.world.client(AdminService, s.admin, { token: secret }).listUsers({}), Code.PermissionDenied, { message: /admin/ });
  const auth = s.world.client(AuthService, s.auth, { token: secret });
  assert.equal((await auth.check({})).sessionId, apiKey?.apiKeyId, "its session is the key");
  await expectError(auth.logout({}), Code.PermissionDenied, { message: /needs a user's session/ });
  await expectError(s.world.client(ApiKeyService, s.api, { token: secret }).listApiKeys({}), Code.PermissionDenied);
  // Exchanged once; every later call answered from the verifier's memory.
  assert.equal(s.exchange.calls, 1);
});

test("the CRM's reports with reports:read; its currency settings and members' grants with admin", async () => {
  const s = setup();
  const answer = async () => ({});
  const reportsImpl = Object.fromEntries(ReportService.methods.map((m) => [m.localName, answer])) as Partial<ServiceImpl<typeof ReportService>>;
  const reports = s.world.serve((r) => r.service(ReportService, reportsImpl));
  const perms = s.world.serve((r) => r.service(PermissionService, { getRecordPermissions: answer, setMembersEditAll: answer }));
  await expectError(s.keys.createApiKey({ name: "x", scopes: ["reports:write"] }), Code.InvalidArgument, { fields: ["scopes[0]"] });

  const reader = (await s.keys.createApiKey({ name: "bi", scopes: ["reports:read"] })).secret;
  const r = s.world.client(ReportService, reports, { token: reader });
  await r.getPipelineValue({});
  await r.getWinRate({});
  await r.getTimeInStage({});
  await r.getCurrencySettings({});
  await r.listExchangeRates({});
  for (const write of [() => r.setBaseCurrency({}), () => r.setExchangeRate({}), () => r.deleteExchangeRate({})]) {
    await expectError(write(), Code.PermissionDenied, { message: /lacks the scope admin/ });
  }
  const p = s.world.client(PermissionService, perms, { token: reader });
  await expectError(p.getRecordPermissions({}), Code.PermissionDenied, { message: /lacks the scope admin/ });

  const admin = (await s.keys.createApiKey({ name: "ops", scopes: ["admin"] })).secret;
  await s.world.client(ReportService, reports, { token: admin }).setExchangeRate({});
  await s.world.client(PermissionService, perms, { token: admin }).getRecordPermissions({});
  await s.world.client(PermissionService, perms, { token: admin }).setMembersEditAll({});
  await expectError(s.world.client(ReportService, reports, { token: admin }).getWinRate({}), Code.PermissionDenied, { message: /lacks the scope reports:read/ });
});

test("revoking a key ends it at once, though its token is cached; revoking again changes nothing", async () => {
  const s = setup();
  const { secret, apiKey } = await s.keys.createApiKey({ name: "ci", scopes: ["timers:read"] });
  const timers = s.world.client(TimerService, s.timers, { token: secret });
  await timers.getWorkingTimer({});
  const revoked = await s.keys.revokeApiKey({ apiKeyId: apiKey!.apiKeyId });
  assert.ok(revoked.apiKey?.revokedAt);
  assert.equal(await s.revocations.isSessionRevoked(apiKey!.apiKeyId), true);
  await expectError(timers.getWorkingTimer({}), Code.Unauthenticated, { reason: "session_ended", message: /API key ci was revoked/ });
  await s.keys.revokeApiKey({ apiKeyId: apiKey!.apiKeyId });
  assert.deepEqual(s.dir.audit.map((e) => e.action), ["api_key.created", "api_key.used", "api_key.revoked"]);
  assert.equal((await s.keys.listApiKeys({})).apiKeys.length, 0);
  assert.equal((await s.keys.listApiKeys({ includeRevoked: true })).apiKeys.length, 1);
  // Another company's key is not found.
  const other = s.dir.addCompany();
  const stranger = s.dir.addUser(other, { role: "owner" });
  await expectError(s.as(s.world.user({ userId: stranger.id, companyId: other, role: "owner" })).revokeApiKey({ apiKeyId: apiKey!.apiKeyId }), Code.NotFound);
});

test("the exchange: unknown, revoked, expired keys and keys of deactivated creators are unauthenticated; the token ends with the key", async () => {
  const s = setup();
  const ex = s.as({});
  await expectError(ex.exchangeApiKey({ key: "crm_live_nope" }), Code.Unauthenticated, { reason: "token_invalid", message: /not an API key/ });
  await expectError(ex.exchangeApiKey({ key: `crm_live_000000000000_${"A".repeat(43)}` }), Code.Unauthenticated, { message: /unknown API key/ });
  const soon = await s.keys.createApiKey({ name: "soon", scopes: ["deals:read"], expiresAt: timestampFromMs(s.clock.now + 30_000) });
  const t = await ex.exchangeApiKey({ key: soon.secret });
  assert.ok(timestampMs(t.accessExpiresAt!) <= s.clock.now + 30_000, "never past the key's expiry");
  assert.deepEqual([t.userId, t.companyId, t.apiKeyId, t.scopes], [s.owner.id, s.company, soon.apiKey?.apiKeyId, ["deals:read"]]);
  s.clock.now += 31_000;
  await expectError(ex.exchangeApiKey({ key: soon.secret }), Code.Unauthenticated, { message: /expired/ });
  const mine = await s.keys.createApiKey({ name: "mine", scopes: ["deals:read"] });
  s.owner.status = "deactivated";
  await expectError(ex.exchangeApiKey({ key: mine.secret }), Code.Unauthenticated, { message: /deactivated/ });
});

test("a key's use: time and address at most once a minute, audited on its first use of each UTC day; the address from our services only", async () => {
  const s = setup();
  s.clock.now = Date.UTC(2030, 0, 1, 23, 58);
  const { secret, apiKey } = await s.keys.createApiKey({ name: "n", scopes: ["notes:read"] });
  const key = s.dir.apiKeys.get(apiKey!.apiKeyId)!;
  const anyone = s.as({ ip: "198.51.100.7" });
  await anyone.exchangeApiKey({ key: secret, clientIp: "10.0.0.1" });
  assert.deepEqual([key.lastUsedAt, key.lastUsedIp], [s.clock.now, "198.51.100.7"], "a client cannot name its own address");
  s.clock.now += 30_000;
  await s.as({ service: "records", ip: "10.9.9.9" }).exchangeApiKey({ key: secret, clientIp: "203.0.113.5" });
  assert.equal(key.lastUsedIp, "198.51.100.7", "within the minute: not written again");
  s.clock.now += 60_000; // 23:59:30
  // A service of ours whose verifier exchanged the key names the address (the gateway's is its X-Real-IP, the connection's address here).
  await s.as({ service: "records", ip: "10.9.9.9" }).exchangeApiKey({ key: secret, clientIp: "203.0.113.5" });
  assert.equal(key.lastUsedIp, "203.0.113.5", "our services say where the key was used from");
  s.clock.now += 61_000; // 00:00:31 the next day
  await anyone.exchangeApiKey({ key: secret });
  assert.deepEqual(
    s.dir.audit.filter((e) => e.action === "api_key.used").map((e) => [e.actor.type, e.actor.name, e.actor.userId]),
    [
      ["api_key", "API key n", s.owner.id],
      ["api_key", "API key n", s.owner.id],
    ],
    "once per UTC day",
  );
});

test("a key's calls per minute are limited where its calls enter", async () => {
  const s = setup();
  const { secret } = await s.keys.createApiKey({ name: "busy", scopes: ["timers:read"], requestsPerMinute: 3 });
  const timers = s.world.client(TimerService, s.timers, { token: secret });
  for (let i = 0; i < 3; i++) await timers.listTimers({});
  const err = await expectError(timers.listTimers({}), Code.ResourceExhausted, { reason: "rate_limited", message: /more than 3 calls this minute/ });
  assert.ok(Number(err.metadata.get("retry-after")) > 0);
});

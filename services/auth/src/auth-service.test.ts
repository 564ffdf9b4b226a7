/**
 * AuthService's handlers in memory: the service built by its factory, served through the kit's
 * interceptors with the real token issuer and verifier, over in-memory DbAuthService,
 * DbAdminService (one-time tokens) and DbEmailService fakes on one directory of companies, users
 * and sessions (../test/fake-store.ts and the admin and email services' test fakes). The same
 * flows on real servers: ../test/auth-*.test.ts.
 */
import assert from "node:assert/strict";
import { createHash, generateKeyPairSync } from "node:crypto";
import { test } from "node:test";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { Code, createClient } from "@connectrpc/connect";
import { AppError, createTokenVerifier, memoryCounter, memoryRevocations } from "@crm/kit";
import { AuthService, Role as ProtoRole } from "@crm/gen/crm/auth/v1/auth_pb";
import { DbAdminService } from "@crm/gen/crm/db/v1/db_admin_pb";
import { DbAuthService } from "@crm/gen/crm/db/v1/db_auth_pb";
import { DbEmailService } from "@crm/gen/crm/db/v1/db_email_pb";
import { EmailKind } from "@crm/gen/crm/email/v1/email_pb";
import { expectError, inMemory, tap, TEST_CLIENT_IP, type Who } from "@crm/testkit";
import { fakeAdminStore } from "../../admin/test/fake-store.js";
import { fakeEmailStore } from "../../email/test/fake-store.js";
import { fakeAuthStore, fakeDirectory } from "../test/fake-store.js";
import { authService } from "./auth-service.js";
import { hashPassword } from "./passwords.js";
import { createLoginThrottle } from "./throttle.js";
import { createTokenIssuer, publicJwk } from "./tokens.js";

const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
const jwks = { keys: [await publicJwk(privateKey, "k1")] };
const PASSWORD = "correct horse battery staple";
const passwordHash = await hashPassword(PASSWORD);
const ACCESS_TTL = 900;
const REFRESH_TTL = 30 * 86_400;
const publicMethods = ["RegisterCompany", "Login", "Refresh", "RequestPasswordReset", "ResetPassword", "AcceptInvite", "GetJwks"].map((m) => `/${AuthService.typeName}/${m}`);

function setup(o: { links?: boolean } = {}) {
  const clock = { now: Date.now() };
  const revocations = memoryRevocations(() => clock.now);
  // Access tokens are real JWTs: the auth interceptor verifies what Login and Refresh issued.
  const world = inMemory({ verifier: createTokenVerifier({ jwks, issuer: "crm-auth", audience: "crm-api", revocations }) });
  const dir = fakeDirectory(() => clock.now);
  const authCalls = tap();
  const peer = { from: "auth", tap: authCalls };
  const db = createClient(DbAuthService, world.serve((r) => r.service(DbAuthService, fakeAuthStore(dir)), peer));
  const admin = fakeAdminStore(dir);
  const email = fakeEmailStore(() => clock.now);
  const counter = memoryCounter(() => clock.now);
  const links = {
    admin: createClient(DbAdminService, world.serve((r) => r.service(DbAdminService, admin.impl), peer)),
    email: createClient(DbEmailService, world.serve((r) => r.service(DbEmailService, email.impl), peer)),
    counter,
    log: world.log,
    appUrl: () => "https://crm.example.com",
    resetTtlMinutes: 30,
    resetPerLogin: 2,
    resetPerIp: 5,
    resetMinResponseMs: 0,
  };
  const impl = authService({
    db,
    tokens: createTokenIssuer({ key: { privateKey, kid: "k1" }, issuer: "crm-auth", audience: "crm-api", accessTtlSeconds: ACCESS_TTL }),
    jwks,
    revocations,
    throttle: createLoginThrottle(counter, { perAccountAndIp: 3, perIp: 5, windowSeconds: 900 }),
    refreshTtlSeconds: REFRESH_TTL,
    log: world.log,
    now: () => clock.now,
    links: o.links === false ? undefined : links,
  });
  const api = world.serve((r) => r.service(AuthService, impl), { publicMethods });
  const company = dir.addCompany({ name: "Acme" });
  const owner = dir.addUser(company, { role: "owner", email: "olga@acme.test", phone: "+14155550100", passwordHash, name: "Olga" });
  const auth = (who: Who = {}) => world.client(AuthService, api, who);
  /** A caller holding an access token that the handlers issued. */
  const bearer = (token: string): Who => ({ token });
  return { clock, world, dir, authCalls, admin, email, revocations, company, owner, auth, bearer };
}

const sha256hex = (s: string) => createHash("sha256").update(s).digest("hex");
const linkToken = (text: string, path: string) => new RegExp(`https://crm\\.example\\.com${path}#token=([A-Za-z0-9_-]{43})`).exec(text)?.[1];

test("RegisterCompany creates the company, its owner and a session, and answers with tokens in the body and as cookies", async () => {
  const s = setup();
  let headers = new Headers();
  const res = await s.auth().registerCompany(
    { companyName: " Beta ", ownerName: " Bea ", email: " Bea@Beta.TEST ", phone: "+1 (415) 555-0199", password: PASSWORD, locale: "RU" },
    { onHeader: (h) => (headers = h), headers: { "user-agent": "Browser/1.0" } },
  );
  const owner = s.dir.users.get(res.userId)!;
  assert.deepEqual([owner.companyId, owner.email, owner.phone, owner.name, owner.role, owner.status], [res.companyId, "bea@beta.test", "+14155550199", "Bea", "owner", "active"]);
  assert.match(owner.passwordHash!, /^\$argon2id\$/, "only a hash is stored");
  assert.deepEqual(s.dir.companies.get(res.companyId), { id: res.companyId, name: "Beta", address: "", locale: "ru" });
  const session = s.dir.sessions.get(res.sessionId)!;
  assert.deepEqual([session.userId, session.userAgent, session.ip, session.expiresAt], [res.userId, "Browser/1.0", TEST_CLIENT_IP, s.clock.now + REFRESH_TTL * 1000]);
  assert.equal(s.dir.refreshTokens.get(sha256hex(res.refreshToken))?.sessionId, res.sessionId, "the refresh token's hash opens the session");
  assert.equal(timestampMs(res.refreshExpiresAt!), s.clock.now + REFRESH_TTL * 1000);
  const cookies = headers.getSetCookie();
  assert.ok(cookies.some((c) => c.startsWith(`access_token=${res.accessToken};`) && /HttpOnly; Secure; SameSite=Strict/.test(c)), cookies.join("\n"));
  assert.ok(cookies.some((c) => c.startsWith(`refresh_token=${res.refreshToken};`)));

  const me = await s.auth(s.bearer(res.accessToken)).check({});
  assert.deepEqual([me.userId, me.companyId, me.role, me.sessionId], [res.userId, res.companyId, ProtoRole.OWNER, res.sessionId]);
});

test("RegisterCompany refuses bad input naming every field, and a login taken in any company naming it", async () => {
  const s = setup();
  await expectError(
    s.auth().registerCompany({ companyName: " ", ownerName: "", address: "a".repeat(501), email: "nope", phone: "555", password: "short", locale: "de" }),
    Code.InvalidArgument,
    { reason: "invalid_argument", fields: ["companyName", "ownerName", "address", "email", "phone", "password", "locale"] },
  );
  await expectError(s.auth().registerCompany({ companyName: "C", ownerName: "O", email: "same@example.com", password: "same@example.com" }), Code.InvalidArgument, { fields: ["password"], message: /must not be your e-mail address/ });
  assert.deepEqual(s.authCalls.calls, [], "refused before the store");
  await expectError(s.auth().registerCompany({ companyName: "C", ownerName: "O", email: "OLGA@acme.test", password: PASSWORD }), Code.AlreadyExists, { reason: "already_exists", fields: ["email"] });
  await expectError(s.auth().registerCompany({ companyName: "C", ownerName: "O", email: "new@example.com", phone: "+14155550100", password: PASSWORD }), Code.AlreadyExists, { fields: ["phone"] });
  assert.equal(s.dir.companies.size, 1, "nothing was created");
});

test("Login by e-mail or phone opens a session; wrong passwords and unknown accounts get the same answer; deactivated accounts are refused", async () => {
  const s = setup();
  const byEmail = await s.auth().login({ email: " OLGA@acme.test", password: PASSWORD });
  assert.deepEqual([byEmail.userId, byEmail.companyId, byEmail.role], [s.owner.id, s.company, ProtoRole.OWNER]);
  assert.equal(s.dir.sessions.get(byEmail.sessionId)?.userId, s.owner.id);
  const byPhone = await s.auth().login({ phone: "+1 415 555 0100", password: PASSWORD });
  assert.notEqual(byPhone.sessionId, byEmail.sessionId, "each login is a session");

  const wrong = await expectError(s.auth().login({ email: "olga@acme.test", password: "not the password" }), Code.Unauthenticated, { reason: "invalid_credentials" });
  const unknown = await expectError(s.auth().login({ email: "nobody@acme.test", password: PASSWORD }), Code.Unauthenticated, { reason: "invalid_credentials" });
  assert.equal(unknown.rawMessage, wrong.rawMessage, "an unknown account looks like a wrong password");
  s.dir.addUser(s.company, { email: "invited@acme.test", status: "invited" });
  await expectError(s.auth().login({ email: "invited@acme.test", password: PASSWORD }), Code.Unauthenticated, { reason: "invalid_credentials" });
  s.dir.addUser(s.company, { email: "gone@acme.test", status: "deactivated", passwordHash });
  await expectError(s.auth().login({ email: "gone@acme.test", password: PASSWORD }), Code.PermissionDenied, { message: /deactivated/ });

  const calls = s.authCalls.calls.length;
  await expectError(s.auth().login({ email: "a@b.test", phone: "+14155550100", password: "" }), Code.InvalidArgument, { fields: ["email", "password"] });
  await expectError(s.auth().login({ email: "", phone: "", password: "x".repeat(1025) }), Code.InvalidArgument, { fields: ["email", "password"] });
  await expectError(s.auth().login({ phone: "12", password: PASSWORD }), Code.InvalidArgument, { fields: ["phone"] });
  assert.equal(s.authCalls.calls.length, calls);
});

test("Login failures are throttled per account and address: the guesser is locked out, the owner from elsewhere is not", async () => {
  const s = setup();
  const attacker = s.auth({ ip: "203.0.113.66" });
  for (let i = 0; i < 3; i++) await expectError(attacker.login({ email: "olga@acme.test", password: `guess ${i}` }), Code.Unauthenticated);
  const e = await expectError(attacker.login({ email: "olga@acme.test", password: PASSWORD }), Code.ResourceExhausted, { reason: "rate_limited", message: /too many failed logins/ });
  assert.equal(e.metadata.get("retry-after"), "900", "when to try again");
  assert.equal((await s.auth({ ip: "198.51.100.7" }).login({ email: "olga@acme.test", password: PASSWORD })).userId, s.owner.id);
  s.clock.now += 901_000;
  assert.equal((await attacker.login({ email: "olga@acme.test", password: PASSWORD })).userId, s.owner.id, "the window ended");
});

test("Login: a success forgives the address's earlier failures for the account", async () => {
  const s = setup();
  const owner = s.auth({ ip: "198.51.100.7" });
  for (let i = 0; i < 2; i++) await expectError(owner.login({ email: "olga@acme.test", password: `typo ${i}` }), Code.Unauthenticated);
  assert.equal((await owner.login({ email: "olga@acme.test", password: PASSWORD })).userId, s.owner.id);
  for (let i = 0; i < 2; i++) await expectError(owner.login({ email: "olga@acme.test", password: `typo again ${i}` }), Code.Unauthenticated);
  assert.equal((await owner.login({ email: "olga@acme.test", password: PASSWORD })).userId, s.owner.id, "4 failures in the window, but only 2 since the success (the limit is 3)");
});

test("Refresh rotates the refresh token; a spent one used again ends the session for everyone holding it", async () => {
  const s = setup();
  const login = await s.auth().login({ email: "olga@acme.test", password: PASSWORD });
  s.clock.now += 60_000;
  const next = await s.auth().refresh({ refreshToken: login.refreshToken });
  assert.deepEqual([next.sessionId, timestampMs(next.refreshExpiresAt!)], [login.sessionId, Math.floor((s.clock.now - 60_000 + REFRESH_TTL * 1000) / 1000) * 1000], "rotation never extends the session");
  assert.notEqual(next.refreshToken, login.refreshToken);
  const fromCookie = await s.auth().refresh({}, { headers: { cookie: `theme=dark; refresh_token=${next.refreshToken}` } });
  assert.equal(fromCookie.sessionId, login.sessionId);

  const reused = await expectError(s.auth().refresh({ refreshToken: login.refreshToken }), Code.Unauthenticated, { reason: "refresh_token_reused" });
  assert.ok(reused.metadata.getSetCookie().some((c) => c.startsWith("refresh_token=; ")), "cookies cleared");
  assert.notEqual(s.dir.sessions.get(login.sessionId)?.revokedAt, null);
  assert.equal(await s.revocations.isSessionRevoked(login.sessionId), true, "its access tokens stop working now");
  await expectError(s.auth(s.bearer(fromCookie.accessToken)).check({}), Code.Unauthenticated, { reason: "session_ended" });
  await expectError(s.auth().refresh({ refreshToken: fromCookie.refreshToken }), Code.Unauthenticated, { reason: "session_ended" });

  await expectError(s.auth().refresh({}), Code.InvalidArgument, { fields: ["refreshToken"] });
  await expectError(s.auth().refresh({ refreshToken: "not a token" }), Code.Unauthenticated, { reason: "session_ended" });
  await expectError(s.auth().refresh({ refreshToken: "A".repeat(43) }), Code.Unauthenticated, { reason: "session_ended" });
});

test("Check, ListSessions, RevokeSession, Logout and LogoutAll act on the caller's own sessions", async () => {
  const s = setup();
  const a = await s.auth().login({ email: "olga@acme.test", password: PASSWORD }, { headers: { "user-agent": "Phone" } });
  s.clock.now += 1000;
  const b = await s.auth().login({ email: "olga@acme.test", password: PASSWORD }, { headers: { "user-agent": "Laptop" } });
  const c = await s.auth().login({ email: "olga@acme.test", password: PASSWORD });
  const stranger = await s.auth().registerCompany({ companyName: "Other", ownerName: "Sam", email: "sam@other.test", password: PASSWORD });
  const asB = s.auth(s.bearer(b.accessToken));

  const listed = await asB.listSessions({});
  assert.deepEqual(listed.sessions.map((x) => [x.sessionId, x.current]).sort(), [[a.sessionId, false], [b.sessionId, true], [c.sessionId, false]].sort());
  assert.equal(listed.sessions.find((x) => x.sessionId === a.sessionId)?.userAgent, "Phone");

  await asB.revokeSession({ sessionId: a.sessionId });
  await expectError(s.auth(s.bearer(a.accessToken)).check({}), Code.Unauthenticated, { reason: "session_ended" });
  await expectError(asB.revokeSession({ sessionId: a.sessionId }), Code.NotFound, { reason: "not_found", message: /no active session/ });
  await expectError(asB.revokeSession({ sessionId: stranger.sessionId }), Code.NotFound, { message: /no active session/ });
  assert.equal(s.dir.sessions.get(stranger.sessionId)?.revokedAt, null);
  await expectError(asB.revokeSession({ sessionId: "s1" }), Code.InvalidArgument, { fields: ["sessionId"] });

  let headers = new Headers();
  await asB.logout({}, { onHeader: (h) => (headers = h) });
  assert.ok(headers.getSetCookie().some((x) => x.startsWith("access_token=; Path=/; Max-Age=0")));
  await expectError(asB.check({}), Code.Unauthenticated, { reason: "session_ended" });

  const d = await s.auth().login({ email: "olga@acme.test", password: PASSWORD });
  assert.equal((await s.auth(s.bearer(d.accessToken)).logoutAll({})).revoked, 2, "c and d");
  await expectError(s.auth(s.bearer(c.accessToken)).check({}), Code.Unauthenticated, { reason: "session_ended" });
  assert.equal((await s.auth(s.bearer(stranger.accessToken)).check({})).userId, stranger.userId, "another user's sessions live on");

  await expectError(s.auth().check({}), Code.Unauthenticated, { reason: "unauthenticated" });
  await expectError(s.auth(s.bearer("forged")).logout({}), Code.Unauthenticated, { reason: "token_invalid" });
});

test("GetJwks publishes the public key that verifies access tokens", async () => {
  const s = setup();
  const { keys } = await s.auth().getJwks({});
  assert.deepEqual(keys.map((k) => [k.kid, k.kty, k.alg, k.use, k.n === jwks.keys[0]!.n]), [["k1", "RSA", "RS256", "sig", true]]);
});

test("RequestPasswordReset e-mails a one-time link to active accounts only, answering the same either way; its limits", async () => {
  const s = setup();
  await s.auth().requestPasswordReset({ email: "Olga@acme.test" });
  assert.equal(s.email.tasks.length, 1);
  const mail = s.email.tasks[0]!;
  assert.deepEqual([mail.companyId, mail.email.to, mail.email.kind], [s.company, "olga@acme.test", EmailKind.PASSWORD_RESET]);
  const token = linkToken(mail.email.text, "/reset-password");
  assert.ok(token, mail.email.text);
  const reset = s.dir.passwordResets.get(sha256hex(token));
  assert.deepEqual(reset && [reset.userId, reset.expiresAt, reset.spent], [s.owner.id, s.clock.now + 30 * 60_000, false], "only the hash, for 30 minutes");

  await s.auth().requestPasswordReset({ email: "nobody@acme.test" });
  s.dir.addUser(s.company, { email: "gone@acme.test", status: "deactivated" });
  await s.auth().requestPasswordReset({ email: "gone@acme.test" });
  assert.equal(s.email.tasks.length, 1, "same answer, no e-mail");
  await s.auth().requestPasswordReset({ email: "olga@acme.test" });
  assert.equal(s.email.tasks.length, 2);
  await s.auth().requestPasswordReset({ email: "olga@acme.test" });
  assert.equal(s.email.tasks.length, 2, "past the per-login limit nothing more is sent, and nothing tells");

  await expectError(s.auth().requestPasswordReset({ email: "x", phone: "+1" }), Code.InvalidArgument, { fields: ["email"] });
  const other = s.auth({ ip: "203.0.113.9" });
  for (let i = 0; i < 5; i++) await other.requestPasswordReset({ email: `n${i}@acme.test` });
  await expectError(other.requestPasswordReset({ email: "olga@acme.test" }), Code.ResourceExhausted, { reason: "rate_limited", message: /from this address/ });
});

test("ResetPassword sets the new password once, ends every session, and follows the password rules", async () => {
  const s = setup();
  const before = await s.auth().login({ email: "olga@acme.test", password: PASSWORD });
  await s.auth().requestPasswordReset({ email: "olga@acme.test" });
  const token = linkToken(s.email.tasks[0]!.email.text, "/reset-password")!;

  await expectError(s.auth().resetPassword({ token: "short", newPassword: "short" }), Code.InvalidArgument, { fields: ["token", "newPassword"] });
  await expectError(s.auth().resetPassword({ token, newPassword: "OLGA@acme.test" }), Code.InvalidArgument, { fields: ["newPassword"], message: /must not be your e-mail address/ });
  assert.equal(s.dir.passwordResets.get(sha256hex(token))?.spent, false, "a refused password does not spend the token");

  await s.auth().resetPassword({ token, newPassword: "a brand new passphrase" });
  assert.equal(await s.revocations.isSessionRevoked(before.sessionId), true);
  await expectError(s.auth(s.bearer(before.accessToken)).check({}), Code.Unauthenticated, { reason: "session_ended" });
  await expectError(s.auth().login({ email: "olga@acme.test", password: PASSWORD }), Code.Unauthenticated);
  assert.equal((await s.auth().login({ email: "olga@acme.test", password: "a brand new passphrase" })).userId, s.owner.id);
  await expectError(s.auth().resetPassword({ token, newPassword: "yet another passphrase" }), Code.InvalidArgument, { fields: ["token"], message: /not valid or was already used/ });

  s.clock.now += 60_000;
  await s.auth().requestPasswordReset({ phone: "+14155550100" });
  const late = linkToken(s.email.tasks[1]!.email.text, "/reset-password")!;
  s.clock.now += 31 * 60_000;
  await expectError(s.auth().resetPassword({ token: late, newPassword: "yet another passphrase" }), Code.InvalidArgument, { fields: ["token"], message: /has expired/ });
});

test("AcceptInvite activates the invited user with their password and logs them in, once", async () => {
  const s = setup();
  const invited = s.dir.addUser(s.company, { email: "ivan@acme.test", role: "admin", status: "invited" });
  const token = "I".repeat(43);
  s.dir.inviteTokens.set(sha256hex(token), { userId: invited.id, companyId: s.company, expiresAt: s.clock.now + 3_600_000, spent: false });

  await expectError(s.auth().acceptInvite({ token, password: "ivan@acme.test" }), Code.InvalidArgument, { fields: ["password"], message: /e-mail address/ });
  const res = await s.auth().acceptInvite({ token, password: "my own passphrase" });
  assert.deepEqual([res.userId, res.companyId, res.role], [invited.id, s.company, ProtoRole.ADMIN]);
  assert.deepEqual([invited.status, s.dir.sessions.get(res.sessionId)?.userId], ["active", invited.id]);
  assert.equal((await s.auth(s.bearer(res.accessToken)).check({})).role, ProtoRole.ADMIN);
  assert.equal((await s.auth().login({ email: "ivan@acme.test", password: "my own passphrase" })).userId, invited.id);
  await expectError(s.auth().acceptInvite({ token, password: "my own passphrase" }), Code.InvalidArgument, { fields: ["token"], message: /invitation link is not valid or was already used/ });

  const late = s.dir.addUser(s.company, { email: "late@acme.test", status: "invited" });
  s.dir.inviteTokens.set(sha256hex("L".repeat(43)), { userId: late.id, companyId: s.company, expiresAt: s.clock.now - 1, spent: false });
  await expectError(s.auth().acceptInvite({ token: "L".repeat(43), password: "my own passphrase" }), Code.InvalidArgument, { fields: ["token"], message: /has expired: ask an admin/ });
  assert.equal(late.status, "invited");
  await expectError(s.auth().acceptInvite({ token: "", password: "" }), Code.InvalidArgument, { fields: ["token", "password"] });
});

test("without the e-mailed links configured, their RPCs are unimplemented", async () => {
  const s = setup({ links: false });
  await expectError(s.auth().requestPasswordReset({ email: "olga@acme.test" }), Code.Unimplemented);
  await expectError(s.auth().acceptInvite({ token: "I".repeat(43), password: "my own passphrase" }), Code.Unimplemented);
});

test("store failures reach the caller with their code; a store bug is internal and says nothing of it", async () => {
  const s = setup();
  s.authCalls.failNext(new AppError("unavailable", "the database did not answer; try again shortly"), "LoginDB");
  await expectError(s.auth().login({ email: "olga@acme.test", password: PASSWORD }), Code.Unavailable, { reason: "unavailable" });
  s.authCalls.failNext(new Error("null value in column \"company_id\""), "CreateSession");
  const e = await expectError(s.auth().login({ email: "olga@acme.test", password: PASSWORD }), Code.Internal);
  assert.doesNotMatch(e.message, /company_id/);
  assert.equal(s.dir.sessions.size, 0);
});

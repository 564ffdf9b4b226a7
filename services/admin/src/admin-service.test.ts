/**
 * AdminService's handlers in memory: the service built by its factory, served through the kit's
 * interceptors, over an in-memory DbAdminService (../test/fake-store.ts) on a directory of
 * companies, users and sessions. The same rules on real servers: ../test/admin*.test.ts.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { test } from "node:test";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { Code, createClient } from "@connectrpc/connect";
import { AppError, memoryRevocations, type Principal, type Role } from "@crm/kit";
import { AddUserStatus, AdminService, UserStatus } from "@crm/gen/crm/admin/v1/admin_pb";
import { Role as ProtoRole } from "@crm/gen/crm/auth/v1/auth_pb";
import { DbAdminService } from "@crm/gen/crm/db/v1/db_admin_pb";
import { EmailKind } from "@crm/gen/crm/email/v1/email_pb";
import { expectError, inMemory, tap } from "@crm/testkit";
import { fakeDirectory, type StoredUser } from "../../auth/test/fake-store.js";
import { fakeAdminStore } from "../test/fake-store.js";
import { adminService, chunksBySize } from "./admin-service.js";

const row = (n: number, htmlBytes: number) => ({ email: `u${n}@example.com`, phone: "", name: `U${n}`, inviteEmail: { to: `u${n}@example.com`, subject: "s", text: "t", html: "h".repeat(htmlBytes) } });

test("AddUsers chunks: consecutive, in order, each under the budget (a row bigger than the budget goes alone)", () => {
  const rows = Array.from({ length: 10 }, (_, i) => row(i, i === 4 ? 5000 : 300));
  const chunks = chunksBySize(rows, 1500);
  assert.deepEqual(chunks.flatMap((c) => c.items), rows);
  for (const c of chunks) assert.deepEqual(c.items, rows.slice(c.offset, c.offset + c.items.length));
  assert.ok(chunks.some((c) => c.items.length === 1 && c.items[0] === rows[4]));
  assert.ok(chunks.length >= 4);
  assert.equal(chunksBySize(rows, 1 << 20).length, 1);
  assert.deepEqual(chunksBySize([], 100), []);
});

const NOW = Date.parse("2026-03-04T12:00:00.000Z");
const HOUR = 3_600_000;

function setup() {
  const clock = { now: NOW };
  const world = inMemory();
  const dir = fakeDirectory(() => clock.now);
  const store = fakeAdminStore(dir);
  const storeCalls = tap();
  const db = createClient(DbAdminService, world.serve((r) => r.service(DbAdminService, store.impl), { from: "admin", tap: storeCalls }));
  const revocations = memoryRevocations(() => clock.now);
  const impl = adminService({ db, revocations, log: world.log, appUrl: () => "https://crm.example.com/", inviteTtlHours: 72, revocationTtlSeconds: 3660, now: () => clock.now });
  const api = world.serve((r) => r.service(AdminService, impl));
  const company = dir.addCompany({ name: "Acme" });
  /** A stored user of `companyId` and their caller identity (the token's role as stored). */
  const person = (role: Role, init: Partial<StoredUser> = {}, companyId = company): [StoredUser, Principal] => {
    const u = dir.addUser(companyId, { role, ...init });
    return [u, world.user({ userId: u.id, companyId, role })];
  };
  const [ownerRow, owner] = person("owner", { name: "Olga Owner", email: "olga@acme.test" });
  const [adminRow, admin] = person("admin", { name: "Adam Admin", email: "adam@acme.test" });
  const [memberRow, member] = person("member", { name: "Mia Member", email: "mia@acme.test", phone: "+14155550100" });
  const [foreignRow, foreigner] = person("owner", { name: "Fred Foreign", email: "fred@other.test" }, dir.addCompany({ name: "Other" }));
  const admins = (p: Principal | undefined) => world.client(AdminService, api, p ? { user: p } : {});
  return { clock, world, dir, store, storeCalls, revocations, company, person, owner, ownerRow, admin, adminRow, member, memberRow, foreigner, foreignRow, admins };
}

const sha256hex = (s: string) => createHash("sha256").update(s).digest("hex");

test("AddUsers creates invited users, stores their invite tokens' hashes and queues an invitation linking to each token", async () => {
  const s = setup();
  const res = await s.admins(s.admin).addUsers({
    users: [
      { email: " Nina@Example.COM ", name: " Nina ", role: ProtoRole.MEMBER },
      { email: "ivan@example.com", phone: "+1 415 555 2671", name: "Ivan", role: ProtoRole.ADMIN },
    ],
  });
  assert.deepEqual(res.stats, { $typeName: "crm.admin.v1.AddUsersStats", created: 2, alreadyExisting: 0, failed: 0, emailsQueued: 2 });
  assert.deepEqual(res.results.map((r) => [r.index, r.email, r.status, r.emailQueued]), [[0, "nina@example.com", AddUserStatus.CREATED, true], [1, "ivan@example.com", AddUserStatus.CREATED, true]]);
  const nina = s.dir.users.get(res.results[0]!.userId)!;
  assert.deepEqual([nina.companyId, nina.email, nina.name, nina.role, nina.status, nina.passwordHash], [s.company, "nina@example.com", "Nina", "member", "invited", null]);
  assert.deepEqual([s.dir.users.get(res.results[1]!.userId)?.phone, s.dir.users.get(res.results[1]!.userId)?.role], ["+14155552671", "admin"]);

  assert.equal(s.store.queued.length, 2);
  const mail = s.store.queued[0]!;
  assert.deepEqual([mail.companyId, mail.email.to, mail.email.kind, mail.email.locale], [s.company, "nina@example.com", EmailKind.WELCOME, "en"]);
  assert.match(mail.email.text, /Adam Admin/, "the inviter is named");
  const token = /https:\/\/crm\.example\.com\/accept-invite#token=([A-Za-z0-9_-]{43})/.exec(mail.email.text)?.[1];
  assert.ok(token, mail.email.text);
  const stored = s.dir.inviteTokens.get(sha256hex(token));
  assert.deepEqual(stored && [stored.userId, stored.expiresAt, stored.spent], [nina.id, NOW + 72 * HOUR, false], "only the token's hash is stored, valid for inviteTtlHours");
});

test("AddUsers judges each row on its own: bad fields, repeats, owners added by a non-owner and taken logins are reported per row", async () => {
  const s = setup();
  const before = s.dir.users.size;
  const res = await s.admins(s.admin).addUsers({
    users: [
      { email: "not-an-email", phone: "12", name: " ", role: 9 as ProtoRole },
      { email: "ok@example.com", name: "Ok" },
      { email: "OK@example.com", name: "Again" },
      { email: "boss@example.com", name: "Boss", role: ProtoRole.OWNER },
      { email: "fred@other.test", name: "Taken elsewhere" },
      { email: "new@example.com", phone: "+14155550100", name: "Phone taken" },
    ],
  });
  assert.deepEqual(res.results.map((r) => r.status), [AddUserStatus.INVALID, AddUserStatus.CREATED, AddUserStatus.INVALID, AddUserStatus.INVALID, AddUserStatus.ALREADY_EXISTS, AddUserStatus.ALREADY_EXISTS]);
  assert.equal(res.results[0]!.reason, "email: must be a valid e-mail address like name@example.com; phone: must be in E.164 format like +14155552671; name: is required; role: must be ROLE_OWNER, ROLE_ADMIN or ROLE_MEMBER");
  assert.match(res.results[2]!.reason, /email: repeats row 1/);
  assert.match(res.results[3]!.reason, /only an owner can add owners/);
  assert.match(res.results[4]!.reason, /email fred@other.test is already someone's login/, "logins are unique across companies");
  assert.match(res.results[5]!.reason, /phone \+14155550100 is already someone's login/);
  assert.deepEqual(res.stats && [res.stats.created, res.stats.alreadyExisting, res.stats.failed, res.stats.emailsQueued], [1, 2, 3, 1]);
  assert.equal(s.dir.users.size, before + 1, "only the good row was created");
  assert.deepEqual(s.store.queued.map((q) => q.email.to), ["ok@example.com"]);

  // An owner may add owners.
  const byOwner = await s.admins(s.owner).addUsers({ users: [{ email: "boss@example.com", name: "Boss", role: ProtoRole.OWNER }] });
  assert.equal(s.dir.users.get(byOwner.results[0]!.userId)?.role, "owner");
});

test("AddUsers: no valid row reaches no store; 0 or 1001 rows are invalid_argument naming users", async () => {
  const s = setup();
  const res = await s.admins(s.admin).addUsers({ users: [{ email: "", name: "" }] });
  assert.deepEqual([res.results[0]!.status, res.results[0]!.reason], [AddUserStatus.INVALID, "email: is required; name: is required"]);
  await expectError(s.admins(s.admin).addUsers({ users: [] }), Code.InvalidArgument, { reason: "invalid_argument", fields: ["users"] });
  await expectError(s.admins(s.admin).addUsers({ users: Array.from({ length: 1001 }, (_, i) => ({ email: `u${i}@example.com`, name: "U" })) }), Code.InvalidArgument, { fields: ["users"], message: /got 1001/ });
  await expectError(s.admins(s.admin).addUsers({ users: [{ email: "a@example.com", name: "Tab\tName" }] }), Code.InvalidArgument, { fields: ["users[0].name"] });
  assert.deepEqual(s.storeCalls.calls, []);
});

test("every AdminService call needs an owner or admin: members are refused before the store, and the store reads the current role", async () => {
  const s = setup();
  const m = s.admins(s.member);
  await expectError(m.addUsers({ users: [{ email: "x@example.com", name: "X" }] }), Code.PermissionDenied, { reason: "permission_denied", message: /needs role owner or admin; you are member/ });
  await expectError(m.listUsers({}), Code.PermissionDenied);
  await expectError(m.deactivateUser({ userId: s.adminRow.id }), Code.PermissionDenied);
  await expectError(m.changeRole({ userId: s.memberRow.id, role: ProtoRole.ADMIN }), Code.PermissionDenied);
  await expectError(s.admins(undefined).listUsers({}), Code.Unauthenticated, { reason: "unauthenticated" });
  assert.deepEqual(s.storeCalls.calls, []);
  // The token still says admin; the directory says member since: the store refuses.
  s.adminRow.role = "member";
  await expectError(s.admins(s.admin).listUsers({}), Code.PermissionDenied, { message: /you are member/ });
  await expectError(s.admins(s.admin).addUsers({ users: [{ email: "x@example.com", name: "X" }] }), Code.PermissionDenied);
  assert.equal(s.dir.users.size, 4);
});

test("ListUsers: the company's users by name, filtered by text and status, paged", async () => {
  const s = setup();
  s.dir.addUser(s.company, { name: "Zed Invited", email: "zed@acme.test", status: "invited" });
  const a = s.admins(s.admin);
  const all = await a.listUsers({});
  assert.deepEqual(all.users.map((u) => u.name), ["Adam Admin", "Mia Member", "Olga Owner", "Zed Invited"], "never another company's");
  const mia = all.users[1]!;
  assert.deepEqual([mia.email, mia.phone, mia.role, mia.status, timestampMs(mia.createdAt!)], ["mia@acme.test", "+14155550100", ProtoRole.MEMBER, UserStatus.ACTIVE, NOW]);
  assert.deepEqual((await a.listUsers({ query: "  OLGA " })).users.map((u) => u.name), ["Olga Owner"]);
  assert.deepEqual((await a.listUsers({ query: "5550100" })).users.map((u) => u.name), ["Mia Member"]);
  assert.deepEqual((await a.listUsers({ status: UserStatus.INVITED })).users.map((u) => u.name), ["Zed Invited"]);
  const first = await a.listUsers({ pageSize: 3 });
  const rest = await a.listUsers({ pageSize: 3, pageToken: first.nextPageToken });
  assert.deepEqual([...first.users, ...rest.users].map((u) => u.name), all.users.map((u) => u.name));
  assert.equal(rest.nextPageToken, "");

  const calls = s.storeCalls.calls.length;
  await expectError(a.listUsers({ query: "q".repeat(201), pageSize: 501, status: 7 as UserStatus, pageToken: "t".repeat(2049) }), Code.InvalidArgument, { fields: ["query", "pageSize", "status", "pageToken"] });
  assert.equal(s.storeCalls.calls.length, calls);
  await expectError(a.listUsers({ pageToken: "bm9wZQ" }), Code.InvalidArgument, { fields: ["pageToken"], message: /not a token from a previous ListUsers/ });
});

test("ListMembers: any member reads the directory (id, name, role, status), never an e-mail or phone; paged; a deactivated one may not", async () => {
  const s = setup();
  s.dir.addUser(s.company, { name: "Zed Invited", email: "zed@acme.test", status: "invited" });
  const m = s.admins(s.member);
  const all = await m.listMembers({});
  assert.deepEqual(all.members.map((u) => u.name), ["Adam Admin", "Mia Member", "Olga Owner", "Zed Invited"], "never another company's");
  const olga = all.members[2]!;
  assert.deepEqual([olga.userId, olga.role, olga.status], [s.ownerRow.id, ProtoRole.OWNER, UserStatus.ACTIVE]);
  assert.deepEqual(Object.keys(olga).filter((k) => !k.startsWith("$")).sort(), ["name", "role", "status", "userId"]);
  assert.doesNotMatch(JSON.stringify(all), /@|\+1415/, "no e-mail address or phone");
  const first = await m.listMembers({ pageSize: 3 });
  assert.doesNotMatch(Buffer.from(first.nextPageToken, "base64url").toString("utf8"), /@/, "the page token holds no e-mail address either");
  const rest = await m.listMembers({ pageSize: 3, pageToken: first.nextPageToken });
  assert.deepEqual([...first.members, ...rest.members].map((u) => u.name), all.members.map((u) => u.name));
  assert.equal(rest.nextPageToken, "");
  await expectError(m.listMembers({ pageSize: 501, pageToken: "t".repeat(2049) }), Code.InvalidArgument, { fields: ["pageSize", "pageToken"] });
  await expectError(s.admins(undefined).listMembers({}), Code.Unauthenticated);
  s.memberRow.status = "deactivated";
  await expectError(m.listMembers({}), Code.PermissionDenied);
  await expectError(m.listUsers({}), Code.PermissionDenied);
});

test("DeactivateUser ends the user's sessions at once (the revocation list) and spends their open tokens", async () => {
  const s = setup();
  const sessions = [s.dir.addSession(s.memberRow.id), s.dir.addSession(s.memberRow.id)];
  s.dir.passwordResets.set("ab", { userId: s.memberRow.id, companyId: s.company, expiresAt: NOW + HOUR, spent: false });
  const res = await s.admins(s.admin).deactivateUser({ userId: s.memberRow.id });
  assert.deepEqual([res.user?.status, res.revokedSessions, timestampMs(res.user!.createdAt!)], [UserStatus.DEACTIVATED, 2, NOW]);
  assert.deepEqual([s.memberRow.status, s.memberRow.deactivatedAt], ["deactivated", NOW]);
  for (const x of sessions) assert.equal(await s.revocations.isSessionRevoked(x.id), true, "access tokens of the session stop working now");
  assert.equal(s.dir.passwordResets.get("ab")?.spent, true);
  const again = await s.admins(s.admin).deactivateUser({ userId: s.memberRow.id });
  assert.deepEqual([again.user?.status, again.revokedSessions], [UserStatus.DEACTIVATED, 0], "already deactivated: nothing more");
});

test("DeactivateUser: not yourself, owners only by an owner, never the last owner; another company's user is not_found", async () => {
  const s = setup();
  await expectError(s.admins(s.admin).deactivateUser({ userId: s.adminRow.id }), Code.FailedPrecondition, { reason: "failed_precondition", message: /cannot deactivate yourself/ });
  await expectError(s.admins(s.admin).deactivateUser({ userId: s.ownerRow.id }), Code.PermissionDenied, { message: /only an owner can deactivate an owner/ });
  const [, second] = s.person("owner", { email: "second@acme.test" });
  await s.admins(second).deactivateUser({ userId: s.ownerRow.id });
  await expectError(s.admins(s.owner).deactivateUser({ userId: second.userId }), Code.PermissionDenied, { message: /not an active user/ });
  await expectError(s.admins(s.admin).deactivateUser({ userId: s.foreignRow.id }), Code.NotFound, { reason: "not_found" });
  assert.equal(s.foreignRow.status, "active");
  await expectError(s.admins(s.admin).deactivateUser({ userId: "" }), Code.InvalidArgument, { fields: ["userId"], message: /is required/ });
  await expectError(s.admins(s.admin).deactivateUser({ userId: "42" }), Code.InvalidArgument, { fields: ["userId"], message: /user id \(UUID\)/ });
});

test("ListUserSessions: a user's active sessions, most recently used first, the caller's own marked current", async () => {
  const s = setup();
  const older = s.dir.addSession(s.memberRow.id);
  Object.assign(older, { userAgent: "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0", ip: "203.0.113.7" });
  s.clock.now += HOUR;
  const newer = s.dir.addSession(s.memberRow.id);
  s.dir.addSession(s.memberRow.id).revokedAt = NOW;
  s.dir.addSession(s.memberRow.id, undefined, NOW + HOUR / 2); // expired by now
  s.dir.addSession(s.adminRow.id);
  const res = await s.admins(s.admin).listUserSessions({ userId: s.memberRow.id });
  assert.deepEqual(res.sessions.map((x) => x.sessionId), [newer.id, older.id], "ended and expired sessions and other users' are not listed");
  const o = res.sessions[1]!;
  assert.deepEqual([o.userAgent, o.ip, timestampMs(o.createdAt!), timestampMs(o.lastUsedAt!), timestampMs(o.expiresAt!), o.current], [older.userAgent, "203.0.113.7", NOW, NOW, older.expiresAt, false]);
  const mine = s.dir.addSession(s.adminRow.id);
  const own = await s.admins(s.world.user({ userId: s.adminRow.id, companyId: s.company, role: "admin", sessionId: mine.id })).listUserSessions({ userId: s.adminRow.id });
  assert.deepEqual(own.sessions.filter((x) => x.current).map((x) => x.sessionId), [mine.id]);
});

test("RevokeUserSession ends one session at once (the revocation list), audited; the account and the other sessions stay", async () => {
  const s = setup();
  const [one, two] = [s.dir.addSession(s.memberRow.id), s.dir.addSession(s.memberRow.id)];
  assert.deepEqual(await s.admins(s.admin).revokeUserSession({ userId: s.memberRow.id, sessionId: one.id }), { $typeName: "crm.admin.v1.RevokeUserSessionResponse" });
  assert.equal(await s.revocations.isSessionRevoked(one.id), true, "its access tokens stop working now");
  assert.equal(await s.revocations.isSessionRevoked(two.id), false);
  assert.deepEqual([one.revokedAt, two.revokedAt, s.memberRow.status], [NOW, null, "active"]);
  const logged = s.dir.audit.at(-1)!;
  assert.deepEqual([logged.action, logged.actor.id, logged.target, logged.details], ["admin.session_revoked", s.adminRow.id, { type: "session", id: one.id }, { user_id: s.memberRow.id, email: "mia@acme.test" }]);
  await expectError(s.admins(s.admin).revokeUserSession({ userId: s.memberRow.id, sessionId: one.id }), Code.NotFound, { reason: "not_found", message: /no active session/ });
  // A session of someone else, named with this user's id, is not this user's.
  const adams = s.dir.addSession(s.adminRow.id);
  await expectError(s.admins(s.admin).revokeUserSession({ userId: s.memberRow.id, sessionId: adams.id }), Code.NotFound);
  assert.equal(adams.revokedAt, null);
  assert.equal(await s.revocations.isSessionRevoked(adams.id), false);
});

test("RevokeUserSessions ends every session of the user at once, audited, and the user stays active", async () => {
  const s = setup();
  const sessions = [s.dir.addSession(s.memberRow.id), s.dir.addSession(s.memberRow.id), s.dir.addSession(s.memberRow.id)];
  const keep = s.dir.addSession(s.adminRow.id);
  const res = await s.admins(s.admin).revokeUserSessions({ userId: s.memberRow.id });
  assert.equal(res.revokedSessions, 3);
  for (const x of sessions) assert.equal(await s.revocations.isSessionRevoked(x.id), true);
  assert.equal(await s.revocations.isSessionRevoked(keep.id), false);
  assert.equal(s.memberRow.status, "active");
  const logged = s.dir.audit.at(-1)!;
  assert.deepEqual([logged.action, logged.target, logged.details], ["admin.sessions_revoked", { type: "user", id: s.memberRow.id }, { email: "mia@acme.test", sessions_ended: "3" }]);
  const audited = s.dir.audit.length;
  assert.equal((await s.admins(s.admin).revokeUserSessions({ userId: s.memberRow.id })).revokedSessions, 0, "nothing left to end");
  assert.equal(s.dir.audit.length, audited, "nothing ended, nothing audited");
});

test("user sessions: owners and admins only, an owner's only by an owner, other companies' users not_found, bad ids name their fields", async () => {
  const s = setup();
  const ownerSession = s.dir.addSession(s.ownerRow.id);
  const foreignSession = s.dir.addSession(s.foreignRow.id);
  const m = s.admins(s.member);
  await expectError(m.listUserSessions({ userId: s.adminRow.id }), Code.PermissionDenied, { message: /needs role owner or admin/ });
  await expectError(m.revokeUserSession({ userId: s.ownerRow.id, sessionId: ownerSession.id }), Code.PermissionDenied);
  await expectError(m.revokeUserSessions({ userId: s.adminRow.id }), Code.PermissionDenied);
  await expectError(s.admins(undefined).revokeUserSessions({ userId: s.adminRow.id }), Code.Unauthenticated);
  assert.deepEqual(s.storeCalls.calls, [], "refused before the store");

  const a = s.admins(s.admin);
  await expectError(a.listUserSessions({ userId: s.ownerRow.id }), Code.PermissionDenied, { message: /only an owner can see an owner's sessions/ });
  await expectError(a.revokeUserSession({ userId: s.ownerRow.id, sessionId: ownerSession.id }), Code.PermissionDenied, { message: /only an owner can end an owner's sessions/ });
  await expectError(a.revokeUserSessions({ userId: s.ownerRow.id }), Code.PermissionDenied);
  assert.equal(ownerSession.revokedAt, null);
  const [, second] = s.person("owner", { email: "second@acme.test" });
  assert.equal((await s.admins(second).revokeUserSessions({ userId: s.ownerRow.id })).revokedSessions, 1, "an owner may");

  await expectError(a.listUserSessions({ userId: s.foreignRow.id }), Code.NotFound, { reason: "not_found" });
  await expectError(a.revokeUserSession({ userId: s.foreignRow.id, sessionId: foreignSession.id }), Code.NotFound);
  await expectError(s.admins(s.foreigner).revokeUserSession({ userId: s.foreignRow.id, sessionId: ownerSession.id }), Code.NotFound, { message: /no active session/ });
  await expectError(a.revokeUserSessions({ userId: s.foreignRow.id }), Code.NotFound);
  assert.equal(foreignSession.revokedAt, null);

  // The token still says admin; the directory says member since: the store refuses.
  s.adminRow.role = "member";
  await expectError(a.revokeUserSessions({ userId: s.memberRow.id }), Code.PermissionDenied, { message: /you are member/ });
  s.adminRow.role = "admin";

  const calls = s.storeCalls.calls.length;
  await expectError(a.listUserSessions({ userId: "" }), Code.InvalidArgument, { fields: ["userId"], message: /is required/ });
  await expectError(a.revokeUserSession({ userId: "42", sessionId: "nope" }), Code.InvalidArgument, { fields: ["userId", "sessionId"], message: /session id \(UUID\)/ });
  await expectError(a.revokeUserSession({ userId: s.memberRow.id, sessionId: "" }), Code.InvalidArgument, { fields: ["sessionId"], message: /is required/ });
  await expectError(a.revokeUserSessions({ userId: "x" }), Code.InvalidArgument, { fields: ["userId"] });
  assert.equal(s.storeCalls.calls.length, calls, "bad ids never reach the store");
});

test("ChangeRole: admins change members and admins; owner changes need an owner; the last owner stays", async () => {
  const s = setup();
  const res = await s.admins(s.admin).changeRole({ userId: s.memberRow.id, role: ProtoRole.ADMIN });
  assert.deepEqual([res.user?.userId, res.user?.role, s.memberRow.role], [s.memberRow.id, ProtoRole.ADMIN, "admin"]);
  await expectError(s.admins(s.admin).changeRole({ userId: s.memberRow.id, role: ProtoRole.OWNER }), Code.PermissionDenied, { message: /only an owner can grant the owner role/ });
  await expectError(s.admins(s.admin).changeRole({ userId: s.ownerRow.id, role: ProtoRole.MEMBER }), Code.PermissionDenied);
  await expectError(s.admins(s.owner).changeRole({ userId: s.ownerRow.id, role: ProtoRole.ADMIN }), Code.FailedPrecondition, { message: /last active owner cannot be demoted/ });
  await s.admins(s.owner).changeRole({ userId: s.memberRow.id, role: ProtoRole.OWNER });
  assert.equal((await s.admins(s.owner).changeRole({ userId: s.ownerRow.id, role: ProtoRole.MEMBER })).user?.role, ProtoRole.MEMBER, "another owner exists now");
  await expectError(s.admins(s.admin).changeRole({ userId: s.foreignRow.id, role: ProtoRole.MEMBER }), Code.NotFound);

  const calls = s.storeCalls.calls.length;
  await expectError(s.admins(s.admin).changeRole({ userId: "x", role: ProtoRole.UNSPECIFIED }), Code.InvalidArgument, { fields: ["userId"] });
  await expectError(s.admins(s.admin).changeRole({ userId: s.adminRow.id, role: ProtoRole.UNSPECIFIED }), Code.InvalidArgument, { fields: ["role"] });
  assert.equal(s.storeCalls.calls.length, calls);
});

test("store failures reach the caller with their code; a store bug is internal and says nothing of it", async () => {
  const s = setup();
  s.storeCalls.failNext(new AppError("unavailable", "the database did not answer; try again shortly"), "RegisterUsersInCompany");
  await expectError(s.admins(s.admin).addUsers({ users: [{ email: "a@example.com", name: "A" }] }), Code.Unavailable, { reason: "unavailable" });
  s.storeCalls.failNext(new Error("relation \"users\" does not exist"), "GetCompanyDB");
  const e = await expectError(s.admins(s.admin).addUsers({ users: [{ email: "a@example.com", name: "A" }] }), Code.Internal);
  assert.doesNotMatch(e.message, /relation/);
  assert.equal(s.dir.users.size, 4);
});

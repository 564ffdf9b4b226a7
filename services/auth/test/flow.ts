/** The register → login → refresh → reuse → check → logout flow, run against each database backend. */
import assert from "node:assert/strict";
import { Code, ConnectError } from "@connectrpc/connect";
import { AuthService, Role } from "@crm/gen/crm/auth/v1/auth_pb";
import { ChatService } from "@crm/gen/crm/chat/v1/chat_pb";
import type { TestApp } from "@crm/testkit";

export const owner = (n: string | number) => ({
  companyName: `Company ${n}`,
  address: "1 Main St",
  email: `owner-${n}@example.com`,
  phone: `+1415${String([...String(n)].reduce((h, c) => (h * 31 + c.charCodeAt(0)) % 10_000_000, 7)).padStart(7, "0")}`,
  password: "correct horse battery staple",
  ownerName: `Owner ${n}`,
  locale: "en",
});

export async function expectCode(p: Promise<unknown>, code: Code, message?: RegExp) {
  await assert.rejects(p, (err: unknown) => {
    const e = ConnectError.from(err);
    assert.equal(Code[e.code], Code[code], `${e.code} ${e.rawMessage}`);
    if (message) assert.match(e.rawMessage, message);
    return true;
  });
}

export async function fullFlow(app: TestApp, n: string | number) {
  const auth = app.client(AuthService);
  const reg = await auth.registerCompany(owner(n));
  assert.ok(reg.companyId && reg.userId && reg.accessToken && reg.refreshToken);

  const login = await auth.login({ email: owner(n).email.toUpperCase(), password: owner(n).password });
  assert.equal(login.userId, reg.userId);
  assert.equal(login.role, Role.OWNER);
  const byPhone = await auth.login({ phone: owner(n).phone, password: owner(n).password });
  assert.equal(byPhone.userId, reg.userId);

  const refreshed = await auth.refresh({ refreshToken: login.refreshToken });
  assert.notEqual(refreshed.refreshToken, login.refreshToken);
  assert.equal(refreshed.sessionId, login.sessionId);

  // The spent token again: the whole family (session) is revoked, including the new pair.
  await expectCode(auth.refresh({ refreshToken: login.refreshToken }), Code.Unauthenticated, /already used/);
  await expectCode(auth.refresh({ refreshToken: refreshed.refreshToken }), Code.Unauthenticated, /session has ended/);
  await expectCode(app.client(AuthService, { token: refreshed.accessToken }).check({}), Code.Unauthenticated, /session has ended/);

  // The phone session is untouched; check, list, logout.
  const me = app.client(AuthService, { token: byPhone.accessToken });
  const check = await me.check({});
  assert.equal(check.companyId, reg.companyId);
  assert.equal(check.role, Role.OWNER);
  const sessions = await me.listSessions({});
  assert.ok(sessions.sessions.some((s) => s.sessionId === byPhone.sessionId && s.current));
  assert.ok(!sessions.sessions.some((s) => s.sessionId === login.sessionId), "revoked sessions are not listed");
  await me.logout({});
  await expectCode(me.check({}), Code.Unauthenticated);
  await expectCode(auth.refresh({ refreshToken: byPhone.refreshToken }), Code.Unauthenticated);

  // LogoutAll ends every session at once.
  const a = await auth.login({ email: owner(n).email, password: owner(n).password });
  const b = await auth.login({ email: owner(n).email, password: owner(n).password });
  const all = await app.client(AuthService, { token: a.accessToken }).logoutAll({});
  assert.ok(all.revoked >= 3, `revoked ${all.revoked}`);
  await expectCode(app.client(AuthService, { token: b.accessToken }).check({}), Code.Unauthenticated);

  // Wrong password and unknown account: the same error.
  await expectCode(auth.login({ email: owner(n).email, password: "not the password at all" }), Code.Unauthenticated, /^wrong email\/phone or password$/);
  await expectCode(auth.login({ email: `nobody-${n}@example.com`, password: "not the password at all" }), Code.Unauthenticated, /^wrong email\/phone or password$/);

  // Duplicates.
  await expectCode(auth.registerCompany({ ...owner(n), phone: "" }), Code.AlreadyExists, /email .* already registered/);
  await expectCode(auth.registerCompany({ ...owner(n), email: `other-${n}@example.com` }), Code.AlreadyExists, /phone .* already registered/);

  // A fresh login's token works on another service (chats): a new company has no chats yet.
  const fresh = await auth.login({ email: owner(n).email, password: owner(n).password });
  assert.deepEqual((await app.client(ChatService, { token: fresh.accessToken }).listChats({})).chats, []);
  return reg;
}

/** Twenty malformed registrations: each names the field, none leaves a row. */
export const badRegistrations: [string, Record<string, string>][] = [
  ["companyName", { companyName: "" }],
  ["companyName", { companyName: "   " }],
  ["companyName", { companyName: "x".repeat(201) }],
  ["ownerName", { ownerName: "" }],
  ["ownerName", { ownerName: "y".repeat(201) }],
  ["address", { address: "z".repeat(501) }],
  ["email", { email: "" }],
  ["email", { email: "not-an-email" }],
  ["email", { email: "a@b" }],
  ["email", { email: `${"a".repeat(250)}@example.com` }],
  ["phone", { phone: "12345" }],
  ["phone", { phone: "+0123456789" }],
  ["phone", { phone: "phone" }],
  ["password", { password: "" }],
  ["password", { password: "short" }],
  ["password", { password: "password123" }],
  ["password", { password: "p".repeat(129) }],
  ["password", { password: "iloveyou12" }],
  ["locale", { locale: "de" }],
  ["locale", { locale: "english" }],
];

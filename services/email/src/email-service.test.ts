/**
 * EmailService's handlers in memory: the service built by its factory, served through the kit's
 * interceptors (its RPCs public there: the handlers check the caller), over an in-memory
 * DbEmailService (../test/fake-store.ts). Delivery on real servers: ../test/delivery.test.ts.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { Code, createClient } from "@connectrpc/connect";
import { AppError, type Principal } from "@crm/kit";
import { DbEmailService } from "@crm/gen/crm/db/v1/db_email_pb";
import { EmailKind, EmailService, EmailStatus } from "@crm/gen/crm/email/v1/email_pb";
import { expectError, inMemory, tap, type Who } from "@crm/testkit";
import { fakeEmailStore } from "../test/fake-store.js";
import { emailService } from "./email-service.js";

const NOW = Date.parse("2026-03-04T12:00:00.000Z");
/** As the service's module serves them: public at the interceptor, the handlers check the caller. */
const publicMethods = ["SendEmail", "GetEmailStatus"].map((m) => `/${EmailService.typeName}/${m}`);

function setup() {
  const world = inMemory();
  const store = fakeEmailStore(() => NOW);
  const storeCalls = tap();
  const db = createClient(DbEmailService, world.serve((r) => r.service(DbEmailService, store.impl), { from: "email", tap: storeCalls }));
  const impl = emailService({ db, verifier: world.verifier });
  const api = world.serve((r) => r.service(EmailService, impl), { publicMethods });
  const owner = world.user({ role: "owner" });
  const admin = world.user({ companyId: owner.companyId, role: "admin" });
  const member = world.user({ companyId: owner.companyId, role: "member" });
  const stranger = world.user({ role: "owner" });
  const emails = (who: Who | Principal = {}) => world.client(EmailService, api, who);
  return { world, store, storeCalls, owner, admin, member, stranger, emails };
}

const mail = { email: "Dana@Example.com ", subject: "  Your report ", body: "It is ready.\n\nBye" };

test("SendEmail by an owner or admin queues the e-mail for their company, normalised", async () => {
  const s = setup();
  const res = await s.emails(s.owner).sendEmail({ ...mail, html: "<p>It is ready.</p>" });
  assert.deepEqual([res.status, res.replayed], [EmailStatus.QUEUED, false]);
  const stored = s.store.emails.get(res.emailId)!;
  assert.equal(stored.companyId, s.owner.companyId);
  assert.deepEqual(
    [stored.email.to, stored.email.subject, stored.email.text, stored.email.html, stored.email.kind, stored.email.locale],
    ["dana@example.com", "Your report", "It is ready.\n\nBye", "<p>It is ready.</p>", EmailKind.CUSTOM, "en"],
  );
  assert.deepEqual(s.store.tasks.map((t) => t.id), [res.emailId], "its task is on the outbox");
  const byAdmin = await s.emails(s.admin).sendEmail({ ...mail, kind: EmailKind.WELCOME, locale: "ru-RU", companyId: s.owner.companyId });
  assert.deepEqual([s.store.emails.get(byAdmin.emailId)?.email.kind, s.store.emails.get(byAdmin.emailId)?.email.locale], [EmailKind.WELCOME, "ru-RU"]);
});

test("SendEmail with an idempotency key replays the first e-mail of the company and queues nothing new", async () => {
  const s = setup();
  const first = await s.emails(s.owner).sendEmail({ ...mail, idempotencyKey: "report-42" });
  const again = await s.emails(s.admin).sendEmail({ ...mail, subject: "changed", idempotencyKey: "report-42" });
  assert.deepEqual([again.emailId, again.replayed, again.status], [first.emailId, true, EmailStatus.QUEUED]);
  const elsewhere = await s.emails(s.stranger).sendEmail({ ...mail, idempotencyKey: "report-42" });
  assert.notEqual(elsewhere.emailId, first.emailId, "keys are per company");
  assert.equal(s.store.tasks.length, 2);
});

test("who may send: owners and admins with a token, our services naming the company; members, strangers' companies and anonymous callers may not", async () => {
  const s = setup();
  await expectError(s.emails(s.member).sendEmail(mail), Code.PermissionDenied, { reason: "permission_denied", message: /you are member/ });
  await expectError(s.emails(s.owner).sendEmail({ ...mail, companyId: s.stranger.companyId }), Code.PermissionDenied, { message: /your own company/ });
  await expectError(s.emails().sendEmail({ ...mail, companyId: s.owner.companyId }), Code.Unauthenticated, { reason: "unauthenticated" });
  await expectError(s.emails({ service: "auth" }).sendEmail(mail), Code.InvalidArgument, { fields: ["companyId"], message: /when a service calls without a user's token/ });
  s.world.endSession(s.admin.sessionId);
  await expectError(s.emails(s.admin).sendEmail(mail), Code.Unauthenticated, { reason: "session_ended" });
  assert.deepEqual(s.storeCalls.calls, []);

  const asService = await s.emails({ service: "auth" }).sendEmail({ ...mail, companyId: s.stranger.companyId });
  assert.equal(s.store.emails.get(asService.emailId)?.companyId, s.stranger.companyId, "a service acting for no user names the company");
  const forMember = await s.emails({ service: "chats", user: s.member }).sendEmail(mail);
  assert.equal(s.store.emails.get(forMember.emailId)?.companyId, s.member.companyId, "a service forwarding a member's token sends for the member's company");
  // The gateway passes users' calls on; it is not a service acting for itself.
  await expectError(s.emails({ service: "gateway", user: s.member }).sendEmail(mail), Code.PermissionDenied);
});

test("SendEmail refuses bad input naming every field, and queues nothing", async () => {
  const s = setup();
  const o = s.emails(s.owner);
  await expectError(
    o.sendEmail({ email: "two@example.com, three@example.com", subject: " ", body: "", html: "x".repeat(1024 * 1024 + 1), idempotencyKey: "k".repeat(129), kind: 42 as EmailKind, locale: "English!" }),
    Code.InvalidArgument,
    { reason: "invalid_argument", fields: ["email", "subject", "body", "html", "idempotencyKey", "kind", "locale"] },
  );
  await expectError(o.sendEmail({ ...mail, subject: "Two\r\nlines: Bcc: x@evil.test" }), Code.InvalidArgument, { fields: ["subject"], message: /control character U\+000D/ });
  await expectError(o.sendEmail({ ...mail, email: "" }), Code.InvalidArgument, { fields: ["email"], message: /email: is required/ });
  assert.deepEqual(s.storeCalls.calls, []);
  assert.equal(s.store.emails.size, 0);
});

test("GetEmailStatus tells where the company's e-mail is; another company's is not_found", async () => {
  const s = setup();
  const { emailId } = await s.emails(s.owner).sendEmail(mail);
  const queued = await s.emails(s.admin).getEmailStatus({ emailId });
  assert.deepEqual([queued.status, queued.attempts, queued.sentAt, timestampMs(queued.createdAt!)], [EmailStatus.QUEUED, 0, undefined, NOW]);
  const stored = s.store.emails.get(emailId)!;
  Object.assign(stored, { status: EmailStatus.SENT, attempts: 2, lastError: "421 try later", sentAt: NOW + 5_000 });
  const sent = await s.emails({ service: "auth" }).getEmailStatus({ emailId, companyId: s.owner.companyId });
  assert.deepEqual([sent.status, sent.attempts, sent.lastError, timestampMs(sent.sentAt!)], [EmailStatus.SENT, 2, "421 try later", NOW + 5_000]);

  await expectError(s.emails(s.stranger).getEmailStatus({ emailId }), Code.NotFound, { reason: "not_found" });
  await expectError(s.emails({ service: "auth" }).getEmailStatus({ emailId, companyId: s.stranger.companyId }), Code.NotFound);
  await expectError(s.emails(s.member).getEmailStatus({ emailId }), Code.PermissionDenied);
  const calls = s.storeCalls.calls.length;
  await expectError(s.emails(s.owner).getEmailStatus({ emailId: "e-1" }), Code.InvalidArgument, { fields: ["emailId"] });
  assert.equal(s.storeCalls.calls.length, calls);
});

test("store failures reach the caller with their code; a store bug is internal and says nothing of it", async () => {
  const s = setup();
  s.storeCalls.failNext(new AppError("unavailable", "the database did not answer; try again shortly"), "QueueEmail");
  await expectError(s.emails(s.owner).sendEmail(mail), Code.Unavailable, { reason: "unavailable", message: /try again shortly/ });
  s.storeCalls.failNext(new Error("duplicate key value violates unique constraint \"emails_pkey\""));
  const e = await expectError(s.emails(s.owner).sendEmail(mail), Code.Internal);
  assert.doesNotMatch(e.message, /emails_pkey/);
  assert.equal(s.store.emails.size, 0);
});

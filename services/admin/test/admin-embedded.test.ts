/**
 * The laptop path: all-in-one with nothing installed (PGlite, in-memory bus, no SMTP_URL). Invitations
 * and reset links arrive as .eml files under DATA_DIR/outbox and work end to end.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { Code } from "@connectrpc/connect";
import { AdminService } from "@crm/gen/crm/admin/v1/admin_pb";
import { AuthService, Role } from "@crm/gen/crm/auth/v1/auth_pb";
import { emlTo, type TestApp } from "@crm/testkit";
import { startTestApp } from "@crm/all/test-app";
import { PASSWORD, expectCode, mailParts, registerOwner, tokenIn } from "./helpers.js";

let app: TestApp;
before(async () => {
  app = await startTestApp({ RESET_MIN_RESPONSE_MS: "0" });
});
after(async () => {
  await app?.close();
});

async function untilEml(to: string, n = 1): Promise<string[]> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const found = emlTo(app, to);
    if (found.length >= n) return found;
    assert.ok(Date.now() < deadline, `an .eml file for ${to} within 20 s`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test("embedded: invitations and reset links are written as .eml files and work", async () => {
  const owner = await registerOwner(app, "emb", "ru");
  const res = await app.client(AdminService, { token: owner.accessToken }).addUsers({
    users: [{ email: "Ivan@Example.com", name: "Иван <script>", role: Role.MEMBER, phone: "" }],
  });
  assert.equal(res.stats!.emailsQueued, 1);
  const [raw] = await untilEml("ivan@example.com");
  const { text, html } = mailParts(raw!);
  assert.match(text, /^Здравствуйте, Иван <script>!/, "the company's language (ru)");
  assert.ok(html.includes("Иван &lt;script&gt;") && !html.includes("<script>"));
  const accepted = await app.client(AuthService).acceptInvite({ token: tokenIn(raw!), password: PASSWORD });
  assert.equal(accepted.role, Role.MEMBER);
  assert.ok(await app.client(AuthService, { token: accepted.accessToken }).check({}));

  await app.client(AuthService).requestPasswordReset({ email: "ivan@example.com" });
  const mails = await untilEml("ivan@example.com", 2);
  const reset = mails.find((m) => /Сброс пароля/.test(mailParts(m).text) || /reset-password/.test(m))!;
  await app.client(AuthService).resetPassword({ token: tokenIn(reset), newPassword: "новый длинный пароль" });
  await expectCode(app.client(AuthService, { token: accepted.accessToken }).check({}), Code.Unauthenticated);
  assert.ok((await app.client(AuthService).login({ email: "ivan@example.com", password: "новый длинный пароль" })).accessToken);
});

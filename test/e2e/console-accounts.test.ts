/**
 * The console's account screens in a real browser against the all-in-one started here, with the
 * links taken from the .eml files the app writes: "forgot password" → the reset e-mail → the
 * link opens the console's reset screen → the new password works; an invitation e-mail → its link
 * → set a password → signed in as the invited person; the sessions list, ending another browser's
 * session. Field errors from the server show next to their fields; axe-core on every screen.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { AdminService } from "@crm/gen/crm/admin/v1/admin_pb";
import { AuthService, Role } from "@crm/gen/crm/auth/v1/auth_pb";
import { emlTo, until, type TestApp } from "@crm/testkit";
import { startTestApp } from "@crm/all/test-app";
import type { Browser, Page } from "playwright-core";
import { axe, buildWebIfStale, chromiumSkip, launchChromium, logIn, screenshot, watchProblems } from "./browser.ts";
import { mailParts, registerOwner } from "../../services/admin/test/helpers.ts";

const skip = chromiumSkip();

let app: TestApp;
let browser: Browser;
const problems: string[] = [];

before(async () => {
  if (skip) return;
  buildWebIfStale();
  [app, browser] = await Promise.all([startTestApp({ RESET_MIN_RESPONSE_MS: "0" }), launchChromium()]);
});

after(async () => {
  await browser?.close();
  await app?.close();
});

async function newPage(locale = "en-US"): Promise<Page> {
  const context = await browser.newContext({ locale });
  const page = await context.newPage();
  page.setDefaultTimeout(10_000);
  watchProblems(page, problems);
  return page;
}

/** The link starting with `prefix` in the newest of `n` e-mails to `to`. */
async function linkTo(to: string, prefix: string, n = 1): Promise<string> {
  await until(`${n} e-mail(s) to ${to}`, () => emlTo(app, to).length >= n, 20_000);
  const text = mailParts(emlTo(app, to).at(-1)!).text;
  const at = text.indexOf(prefix);
  assert.ok(at >= 0, `the e-mail links to ${prefix}…:\n${text}`);
  return /^\S+/.exec(text.slice(at))![0];
}

/** The error shown next to the field labelled `label` (aria-describedby). */
async function fieldError(page: Page, label: string): Promise<string> {
  const input = page.getByLabel(label, { exact: true });
  await until(`an error next to ${label}`, async () => (await input.getAttribute("aria-invalid")) === "true", 10_000);
  const ids = ((await input.getAttribute("aria-describedby")) ?? "").split(" ").filter((id) => id.endsWith("-error"));
  assert.equal(ids.length, 1, `${label} is described by its error`);
  return (await page.locator(`[id="${ids[0]}"]`).textContent()) ?? "";
}

test("forgot password → the e-mailed link → the console's reset screen → the new password works", { skip }, async () => {
  const owner = await registerOwner(app);
  const page = await newPage();
  await page.goto(`${app.baseUrl}/login`);
  await page.getByRole("link", { name: "Forgot your password?" }).click();
  await page.getByRole("heading", { name: "Forgot your password?" }).waitFor();
  await axe(page, "forgot password");
  await page.getByLabel("E-mail or phone").fill("not an address");
  await page.getByRole("button", { name: "Send me a link" }).click();
  assert.match(await fieldError(page, "E-mail or phone"), /e-mail|email/i, "the server's field error, next to the field");
  await page.getByLabel("E-mail or phone").fill(owner.email);
  await page.getByRole("button", { name: "Send me a link" }).click();
  await page.getByRole("status").filter({ hasText: "a link to choose a new password is on its way" }).waitFor();

  const link = await linkTo(owner.email, `${app.baseUrl}/reset-password#token=`);
  await page.goto(link);
  await page.getByRole("heading", { name: "Choose a new password" }).waitFor();
  assert.equal(new URL(page.url()).hash, "", "the token is taken out of the address bar");
  await axe(page, "reset password");
  await screenshot(page, "reset-password");

  await page.getByLabel("New password").fill("a brand new long passphrase");
  await page.getByLabel("The same password again").fill("something else");
  await page.getByRole("button", { name: "Set the new password" }).click();
  assert.match(await fieldError(page, "The same password again"), /differ/);
  await page.getByLabel("New password").fill("password");
  await page.getByLabel("The same password again").fill("password");
  await page.getByRole("button", { name: "Set the new password" }).click();
  assert.match(await fieldError(page, "New password"), /\S/, "the server's reason, next to the new password");
  await axe(page, "reset password with errors");

  await page.getByLabel("New password").fill("a brand new long passphrase");
  await page.getByLabel("The same password again").fill("a brand new long passphrase");
  await page.getByRole("button", { name: "Set the new password" }).click();
  await page.getByRole("status").filter({ hasText: "Your password is changed" }).waitFor();
  await page.getByRole("link", { name: "Log in" }).click();
  await page.getByLabel("E-mail or phone").fill(owner.email);
  await page.getByLabel("Password").fill("a brand new long passphrase");
  await page.getByRole("button", { name: "Log in" }).click();
  await page.getByRole("heading", { name: "Chats", exact: true }).waitFor();

  // The link works once.
  await page.goto(link);
  await page.getByLabel("New password").fill("yet another long passphrase");
  await page.getByLabel("The same password again").fill("yet another long passphrase");
  await page.getByRole("button", { name: "Set the new password" }).click();
  await page.getByRole("alert").filter({ hasText: /not valid or was already used/ }).waitFor();
  await page.context().close();
});

test("an invitation e-mail's link: set a password, signed in as the invited person; a spent or token-less link says so", { skip }, async () => {
  const owner = await registerOwner(app);
  const email = `ina-${owner.tag}@example.com`;
  const added = await app.client(AdminService, { token: owner.accessToken }).addUsers({ users: [{ email, name: "Ina", role: Role.MEMBER, phone: "" }] });
  const userId = added.results[0]!.userId;
  const link = await linkTo(email, `${app.baseUrl}/accept-invite#token=`);

  const page = await newPage("ru-RU");
  await page.goto(link);
  await page.getByRole("heading", { name: "Примите приглашение" }).waitFor();
  await axe(page, "accept invitation (ru)");
  await page.getByLabel("Язык").selectOption("en");
  await page.getByRole("heading", { name: "Accept your invitation" }).waitFor();
  await screenshot(page, "accept-invite");
  await page.getByLabel("New password").fill("Ina's own long passphrase");
  await page.getByLabel("The same password again").fill("Ina's own long passphrase");
  await page.getByRole("button", { name: "Activate my account" }).click();
  await page.getByRole("heading", { name: "Chats", exact: true }).waitFor();
  assert.equal(await page.locator(".shell").getAttribute("data-user"), userId, "signed in as the invited user");
  assert.equal(await page.getByRole("link", { name: "Admin" }).count(), 0, "a member sees no admin menu");
  assert.ok((await app.client(AuthService).login({ email, password: "Ina's own long passphrase" })).accessToken);

  const again = await newPage();
  await again.goto(link);
  await again.getByLabel("New password").fill("another long passphrase");
  await again.getByLabel("The same password again").fill("another long passphrase");
  await again.getByRole("button", { name: "Activate my account" }).click();
  await again.getByRole("alert").filter({ hasText: /not valid or was already used/ }).waitFor();
  await again.goto(`${app.baseUrl}/accept-invite`);
  await again.getByRole("alert").filter({ hasText: "This link has no token" }).waitFor();
  await axe(again, "accept invitation without a token");
  await page.context().close();
  await again.context().close();
});

test("account: the sessions list marks this browser; ending the other browser's session signs it out", { skip }, async () => {
  const owner = await registerOwner(app);
  const password = "correct horse battery staple";
  const other = await newPage();
  await logIn(other, app.baseUrl, owner.email, password);
  const page = await newPage();
  await logIn(page, app.baseUrl, owner.email, password);
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Account" }).click();
  await page.getByRole("heading", { name: "Your account" }).waitFor();
  await page.getByText("Your role: Owner.").waitFor();
  const rows = page.getByRole("table", { name: "Your sessions" }).locator("tbody tr");
  await until("the sessions", async () => (await rows.count()) === 3, 10_000); // the API's, and two browsers
  await page.getByRole("cell", { name: /\(this browser\)/ }).waitFor();
  await axe(page, "account");
  await screenshot(page, "account");

  const otherSession = await other.evaluate(async () => {
    const res = await fetch("/crm.auth.v1.AuthService/Check", { method: "POST", headers: { "content-type": "application/json" }, body: "{}", credentials: "include" });
    return ((await res.json()) as { sessionId: string }).sessionId;
  });
  await page.locator(`tr[data-session="${otherSession}"]`).getByRole("button", { name: /^End session: Chrome/ }).click();
  await page.getByRole("status").filter({ hasText: "The session has ended." }).waitFor();
  await until("two sessions left", async () => (await rows.count()) === 2, 10_000);
  await other.reload();
  await other.getByRole("heading", { name: "Log in" }).waitFor();
  assert.deepEqual(problems, [], "no CSP violation or uncaught error on any page");
  await page.context().close();
  await other.context().close();
});

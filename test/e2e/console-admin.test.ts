/**
 * The console's admin screens in a real browser against the all-in-one started here: the members
 * list, inviting one person (the server's reasons next to the fields), inviting many from an
 * uploaded CSV file with each row's result, then opening one invitation from the written .eml,
 * setting a password and logging in as that person; that person's sessions, one ended and then
 * all (signed out at once, the account still active); a role change, a deactivation that signs the
 * person out, and a member who sees no admin menu and whom the server refuses anyway.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { emlTo, until, type TestApp } from "@crm/testkit";
import { startTestApp } from "@crm/all/test-app";
import type { Browser, Page } from "playwright-core";
import { axe, buildWebIfStale, chromiumSkip, launchChromium, logIn, screenshot, watchProblems } from "./browser.ts";
import { mailParts, registerOwner } from "../../services/admin/test/helpers.ts";

const skip = chromiumSkip();

let app: TestApp;
let browser: Browser;
const problems: string[] = [];
let owner: Awaited<ReturnType<typeof registerOwner>>;
let page: Page;
const password = "correct horse battery staple";
const tag = `${process.pid}${Date.now().toString(36)}`;
const mia = `mia-${tag}@example.com`;
const csvPeople = { ann: `ann-${tag}@example.com`, bob: `bob-${tag}@example.com` };

before(async () => {
  if (skip) return;
  buildWebIfStale();
  [app, browser] = await Promise.all([startTestApp(), launchChromium()]);
  owner = await registerOwner(app);
});

after(async () => {
  await browser?.close();
  await app?.close();
});

async function newPage(locale = "en-US"): Promise<Page> {
  const context = await browser.newContext({ locale });
  const p = await context.newPage();
  p.setDefaultTimeout(10_000);
  watchProblems(p, problems);
  return p;
}

/** The error shown next to the field labelled `label` (aria-describedby). */
async function fieldError(p: Page, label: string): Promise<string> {
  const input = p.getByLabel(label, { exact: true });
  await until(`an error next to ${label}`, async () => (await input.getAttribute("aria-invalid")) === "true", 10_000);
  const id = ((await input.getAttribute("aria-describedby")) ?? "").split(" ").find((x) => x.endsWith("-error"));
  assert.ok(id, `${label} is described by its error`);
  return (await p.locator(`[id="${id}"]`).textContent()) ?? "";
}

test("the owner's admin menu: the members list with role and status", { skip }, async () => {
  page = await newPage();
  await logIn(page, app.baseUrl, owner.email, password);
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Admin" }).click();
  await page.getByRole("heading", { name: "Members" }).waitFor();
  assert.match(page.url(), /\/admin\/members$/);
  const row = page.getByRole("row").filter({ hasText: owner.email });
  await row.waitFor();
  assert.match((await row.textContent()) ?? "", /Active/);
  assert.equal(await row.getByRole("combobox").inputValue(), "1", "the owner's role");
  assert.ok(await row.getByRole("combobox").isDisabled(), "nobody changes their own role here");
  await axe(page, "admin members");
});

test("invite one person: the server's reasons next to the fields, then the invitation", { skip }, async () => {
  await page.getByRole("navigation", { name: "Admin sections" }).getByRole("link", { name: "Invite people" }).click();
  await page.getByRole("heading", { name: "Invite one person" }).waitFor();
  const one = page.getByRole("region", { name: "Invite one person" });
  // The browser's own check would stop an empty or malformed field first: these pass it, the server's rules do not.
  await one.getByLabel("Name").fill("   ");
  await one.getByLabel("E-mail").fill(mia);
  await one.getByLabel("Phone (optional)").fill("12345");
  await one.getByRole("button", { name: "Send the invitation" }).click();
  assert.match(await fieldError(page, "Name"), /required/);
  assert.match(await fieldError(page, "Phone (optional)"), /E\.164/);
  await one.getByRole("alert").filter({ hasText: "Please correct the marked fields." }).waitFor();
  assert.equal(emlTo(app, mia).length, 0, "nothing was sent");
  await axe(page, "invite with field errors");

  await one.getByLabel("Name").fill("Mia");
  await one.getByLabel("Phone (optional)").fill("");
  await one.getByLabel("Role").selectOption({ label: "Admin" });
  await one.getByRole("button", { name: "Send the invitation" }).click();
  await one.getByRole("status").filter({ hasText: `Invitation e-mailed to ${mia}.` }).waitFor();
  assert.equal(await one.getByLabel("E-mail").inputValue(), "", "the form is emptied for the next one");

  await one.getByLabel("Name").fill("Mia again");
  await one.getByLabel("E-mail").fill(mia);
  await one.getByRole("button", { name: "Send the invitation" }).click();
  assert.match(await fieldError(page, "E-mail"), /Already someone's login/);
});

test("invite many from a CSV file: each row's result; one invitee opens the e-mailed link, sets a password and logs in", { skip }, async () => {
  const many = page.getByRole("region", { name: "Invite many from CSV" });
  const csv = [
    "name;email;role;phone",
    `Ann;${csvPeople.ann};member;`,
    `"Bob, Jr.";${csvPeople.bob};admin;+14155552671`,
    `Nobody;not-an-email;member;`,
    `Olga again;${owner.email};member;`,
    `Boss;boss-${tag}@example.com;boss;`,
    `Ann twice;${csvPeople.ann};;`,
  ].join("\r\n");
  await many.getByLabel("CSV file").setInputFiles({ name: "people.csv", mimeType: "text/csv", buffer: Buffer.from(csv) });
  await many.getByText("people.csv: 6 rows read.").waitFor();
  await many.getByRole("button", { name: "Invite 6 people" }).click();
  await many.getByRole("status").filter({ hasText: "Created 2, already existing 1, not valid 3; 2 invitations e-mailed." }).waitFor();
  const result = async (line: number) => (await many.locator(`tr[data-line="${line}"]`).textContent()) ?? "";
  assert.match(await result(2), new RegExp(`${csvPeople.ann}.*Invited`));
  assert.match(await result(3), /Invited/);
  assert.match(await result(4), /Not valid.*E-mail: must be a valid e-mail address/);
  assert.match(await result(5), /Already someone's login/);
  assert.match(await result(6), /Not valid.*Role: "boss" is not a role/);
  assert.match(await result(7), /Not valid.*E-mail: repeats row 0/);
  await axe(page, "invite from CSV with results");
  await screenshot(page, "admin-invite");

  // Ann opens the link from her e-mail, chooses a password, and is signed in; then logs in again.
  await until("Ann's invitation", () => emlTo(app, csvPeople.ann).length > 0, 20_000);
  const text = mailParts(emlTo(app, csvPeople.ann)[0]!).text;
  const link = /\S+\/accept-invite#token=[A-Za-z0-9_-]{43}/.exec(text)?.[0];
  assert.ok(link?.startsWith(app.baseUrl), `the link leads to this console:\n${text}`);
  const ann = await newPage();
  await ann.goto(link!);
  await ann.getByLabel("New password").fill("Ann's long passphrase");
  await ann.getByLabel("The same password again").fill("Ann's long passphrase");
  await ann.getByRole("button", { name: "Activate my account" }).click();
  await ann.getByRole("heading", { name: "Chats", exact: true }).waitFor();
  await ann.getByRole("button", { name: "Log out", exact: true }).click();
  // Logged out first: /login with the session still alive leads back to the chats, not the form.
  await ann.getByRole("heading", { name: "Log in" }).waitFor();
  await logIn(ann, app.baseUrl, csvPeople.ann, "Ann's long passphrase");
  await ann.context().close();
});

/** A Connect call from outside the browser (a CLI's own User-Agent): its HTTP status and JSON. */
async function call(path: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; json: Record<string, string> }> {
  const res = await fetch(`${app.baseUrl}${path}`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify(body) });
  return { status: res.status, json: (await res.json()) as Record<string, string> };
}

test("a member's sessions: the admin ends one (its tokens refused at once), then signs them out everywhere; the account stays active", { skip }, async () => {
  const ann = await newPage();
  await logIn(ann, app.baseUrl, csvPeople.ann, "Ann's long passphrase");
  const cli = await call("/crm.auth.v1.AuthService/Login", { email: csvPeople.ann, password: "Ann's long passphrase" }, { "user-agent": "crm-cli/1.0 (sessions test)" });
  assert.equal(cli.status, 200);

  await page.getByRole("navigation", { name: "Admin sections" }).getByRole("link", { name: "Members" }).click();
  await page.getByLabel("Search by name, e-mail or phone").fill(csvPeople.ann);
  const row = page.locator("tr[data-user]").filter({ hasText: csvPeople.ann });
  await row.waitFor();
  await row.getByRole("button", { name: "Sessions of Ann" }).click();
  const panel = page.getByRole("region", { name: "Sessions of Ann" });
  const cliRow = panel.locator(`tr[data-session="${cli.json.sessionId}"]`);
  await cliRow.waitFor();
  assert.match((await cliRow.textContent()) ?? "", /crm-cli\/1\.0/);
  await panel.locator("td", { hasText: "Chrome · Linux" }).first().waitFor(); // Ann's browser
  await axe(page, "admin: a member's sessions");
  await screenshot(page, "admin-user-sessions");

  await cliRow.getByRole("button", { name: /^End session of Ann: crm-cli/ }).click();
  await page.getByRole("status").filter({ hasText: "A session of Ann has ended." }).waitFor();
  await cliRow.waitFor({ state: "detached" });
  const check = await call("/crm.auth.v1.AuthService/Check", {}, { authorization: `Bearer ${cli.json.accessToken}` });
  assert.deepEqual([check.status, check.json.code], [401, "unauthenticated"], "the ended session's access token is refused at once");
  const refresh = await call("/crm.auth.v1.AuthService/Refresh", { refreshToken: cli.json.refreshToken });
  assert.equal(refresh.status, 401, "and its refresh token no longer works");
  await ann.reload();
  await ann.getByRole("heading", { name: "Chats", exact: true }).waitFor(); // the browser's session goes on

  page.once("dialog", (d) => void d.accept());
  await panel.getByRole("button", { name: "Sign out everywhere: Ann" }).click();
  await page.getByRole("status").filter({ hasText: /Ann is signed out everywhere; [1-9]\d* sessions ended\./ }).waitFor();
  await panel.getByText("Ann has no active sessions.").waitFor();
  await ann.reload();
  await ann.getByRole("heading", { name: "Log in" }).waitFor();
  assert.match((await row.textContent()) ?? "", /Active/, "still active");
  await logIn(ann, app.baseUrl, csvPeople.ann, "Ann's long passphrase");
  await ann.context().close();
  await row.getByRole("button", { name: "Sessions of Ann" }).click();
  await panel.waitFor({ state: "detached" });
});

test("change a role, deactivate (the person is signed out at once); a member sees no admin menu and is refused", { skip }, async () => {
  await page.getByRole("navigation", { name: "Admin sections" }).getByRole("link", { name: "Members" }).click();
  await page.getByLabel("Search by name, e-mail or phone").fill("bob-");
  const bob = page.getByRole("row").filter({ hasText: csvPeople.bob });
  await bob.waitFor();
  await until("the search narrows the list", async () => (await page.locator("tbody tr").count()) === 1, 10_000);
  assert.match((await bob.textContent()) ?? "", /Invited/);
  await bob.getByLabel("Role of Bob, Jr.").selectOption({ label: "Member" });
  await bob.getByRole("button", { name: "Save role of Bob, Jr." }).click();
  await page.getByRole("status").filter({ hasText: "Bob, Jr. is now Member." }).waitFor();

  // Ann, signed in elsewhere, is deactivated: her session ends, and she cannot log in again.
  const ann = await newPage();
  await logIn(ann, app.baseUrl, csvPeople.ann, "Ann's long passphrase");
  assert.equal(await ann.getByRole("link", { name: "Admin" }).count(), 0, "a member sees no admin menu");
  await ann.goto(`${app.baseUrl}/admin/members`);
  await ann.getByRole("heading", { name: "This page is for the owners and admins of the company." }).waitFor();
  const refused = await ann.evaluate(async () => {
    const res = await fetch("/crm.admin.v1.AdminService/ListUsers", { method: "POST", headers: { "content-type": "application/json" }, body: "{}", credentials: "include" });
    return { status: res.status, code: ((await res.json()) as { code: string }).code };
  });
  assert.deepEqual(refused, { status: 403, code: "permission_denied" }, "the server refuses a member anyway");

  await page.getByLabel("Search by name, e-mail or phone").fill(csvPeople.ann);
  const row = page.getByRole("row").filter({ hasText: csvPeople.ann });
  await until("only Ann", async () => (await page.locator("tbody tr").count()) === 1, 10_000);
  page.once("dialog", (d) => void d.accept());
  await row.getByRole("button", { name: "Deactivate Ann" }).click();
  await page.getByRole("status").filter({ hasText: /Ann is deactivated; [1-9]\d* sessions ended\./ }).waitFor();
  await until("Ann's row says so", async () => /Deactivated/.test((await row.textContent()) ?? ""), 10_000);
  await ann.reload();
  await ann.getByRole("heading", { name: "Log in" }).waitFor();
  await ann.getByLabel("E-mail or phone").fill(csvPeople.ann);
  await ann.getByLabel("Password").fill("Ann's long passphrase");
  await ann.getByRole("button", { name: "Log in" }).click();
  await ann.getByRole("alert").filter({ hasText: /deactivated/ }).waitFor();

  await page.getByLabel("Search by name, e-mail or phone").fill("");
  await page.getByLabel("Status").selectOption({ label: "Deactivated" });
  await until("only the deactivated", async () => (await page.locator("tbody tr").count()) === 1, 10_000);

  await page.getByLabel("Language").selectOption("ru");
  await page.getByRole("heading", { name: "Сотрудники" }).waitFor();
  await axe(page, "admin members (ru)");
  await page.getByLabel("Язык").selectOption("en");
  assert.deepEqual(problems, [], "no CSP violation or uncaught error on any page");
});

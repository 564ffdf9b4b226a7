/**
 * The web console in a real browser (Debian's chromium driven by playwright-core) against the
 * all-in-one started here: sign up, the shell, a chat shared by two browser contexts (a message
 * shows up in the other within 1 s), a timer that survives a reload, log out and log out
 * everywhere, and an axe-core check of every screen (no serious or critical violation).
 * web/dist is built first when it is missing or older than web/src (scripts/build-web.mjs).
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { until, type TestApp } from "@crm/testkit";
import { startTestApp } from "@crm/all/test-app";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { axe, buildWebIfStale, chromiumPath, chromiumSkip, launchChromium, logIn, screenshot, watchProblems } from "./browser.ts";

const skip = chromiumSkip();

let app: TestApp;
let browser: Browser;
const contexts: BrowserContext[] = [];
/** Every CSP violation or uncaught error any page reports: the console must have none. */
const pageProblems: string[] = [];
const password = "correct horse battery staple";
const email = `olga.${process.pid}@acme.test`;

before(async () => {
  if (skip) return;
  buildWebIfStale();
  [app, browser] = await Promise.all([startTestApp(), launchChromium()]);
});

after(async () => {
  await browser?.close();
  await app?.close();
});

async function newPage(locale = "en-US"): Promise<Page> {
  const context = await browser.newContext({ locale });
  contexts.push(context);
  const page = await context.newPage();
  page.setDefaultTimeout(10_000);
  watchProblems(page, pageProblems);
  return page;
}

/** What keyboard focus visits in `presses` Tabs: each stop's role and accessible name ("button \"Log in\""). */
async function tabStops(page: Page, presses: number): Promise<string[]> {
  const stops: string[] = [];
  for (let i = 0; i < presses; i++) {
    await page.keyboard.press("Tab");
    const focused = page.locator(":focus");
    stops.push((await focused.count()) ? (await focused.ariaSnapshot()).split("\n")[0]!.replace(/^- /, "").replace(/:$/, "") : "(nothing)");
  }
  return stops;
}

function reaches(stops: string[], expected: string[], screen: string) {
  for (const e of expected) assert.ok(stops.some((s) => s.startsWith(e)), `${screen}: Tab never reaches ${e}; it visits ${JSON.stringify(stops)}`);
}

let owner: Page;

test("sign up: the login screen, the sign-up form, then the shell with navigation", { skip }, async () => {
  owner = await newPage();
  const started = performance.now();
  await owner.goto(`${app.baseUrl}/`);
  await owner.getByRole("heading", { name: "Log in" }).waitFor();
  const firstScreenMs = performance.now() - started;
  process.stderr.write(`console: first screen (login) usable ${firstScreenMs.toFixed(0)} ms after navigation\n`);
  assert.match(owner.url(), /\/login$/, "a visitor is sent to /login");
  await axe(owner, "login");
  reaches(await tabStops(owner, 7), ['combobox "Language"', 'textbox "E-mail or phone"', 'textbox "Password"', 'button "Log in"', 'link "Forgot your password?"', 'link "Register your company"'], "login");

  // A wrong password is refused with a message, and nothing else happens.
  await owner.getByLabel("E-mail or phone").fill("nobody@acme.test");
  await owner.getByLabel("Password").fill("not the password");
  await owner.getByRole("button", { name: "Log in" }).click();
  await owner.getByRole("alert").filter({ hasText: "Wrong e-mail/phone or password." }).waitFor();
  assert.match(owner.url(), /\/login$/);

  await owner.getByRole("link", { name: "Register your company" }).click();
  await owner.getByRole("heading", { name: "Register your company" }).waitFor();
  await axe(owner, "sign up");
  await screenshot(owner, "sign-up");
  await owner.getByLabel("Company name").fill("Acme");
  await owner.getByLabel("Your name").fill("Olga");
  await owner.getByLabel("E-mail").fill(email);
  await owner.getByLabel("Password").fill(password);
  await owner.getByRole("button", { name: "Create the company" }).click();

  await owner.getByRole("heading", { name: "Chats", exact: true }).waitFor();
  assert.match(owner.url(), /\/chats$/);
  const nav = owner.getByRole("navigation", { name: "Main" });
  await nav.getByRole("link", { name: "Chats" }).waitFor();
  assert.equal(await nav.getByRole("link", { name: "Chats" }).getAttribute("aria-current"), "page");
  reaches(await tabStops(owner, 17), ['link "Skip to content"', 'link "Companies"', 'link "People"', 'link "Deals"', 'link "Tasks"', 'link "Reports"', 'link "Chats"', 'link "Timers"', 'link "Account"', 'link "Admin"', 'combobox "Language"', 'button "Log out"', 'textbox "New chat name"', 'button "Create chat"'], "shell");
  const cookies = await owner.context().cookies();
  for (const name of ["access_token", "refresh_token"]) {
    const c = cookies.find((x) => x.name === name);
    assert.ok(c?.httpOnly, `${name} is an HttpOnly cookie the page cannot read`);
  }
  assert.equal(await owner.evaluate("document.cookie"), "", "no token is visible to scripts");
});

test("two browser contexts in one chat: a message sent in one appears in the other within 1 s", { skip }, async () => {
  await owner.getByLabel("New chat name").fill("General");
  await owner.getByRole("button", { name: "Create chat" }).click();
  await owner.getByRole("status").filter({ hasText: "Live" }).waitFor();
  const chatUrl = owner.url();
  assert.match(chatUrl, /\/chats\/[^/]+$/);

  // The second context logs in through the form (by e-mail) and opens the chat by its URL.
  const other = await newPage();
  await logIn(other, app.baseUrl, email, password);
  await other.goto(chatUrl);
  await other.getByRole("status").filter({ hasText: "Live" }).waitFor();

  const text = `hello from the first window ${Date.now()}`;
  await owner.getByLabel("Message", { exact: true }).fill(text);
  const sent = performance.now();
  await owner.getByLabel("Message", { exact: true }).press("Enter");
  await other.getByRole("log").getByText(text).waitFor({ timeout: 5_000 });
  const ms = performance.now() - sent;
  process.stderr.write(`console: message seen in the other context after ${ms.toFixed(0)} ms\n`);
  assert.ok(ms < 1_000, `the message took ${ms.toFixed(0)} ms to appear in the other context`);
  await owner.getByRole("log").getByText(text).waitFor();
  assert.equal(await owner.getByLabel("Message", { exact: true }).inputValue(), "", "the composer is cleared after sending");

  // And back, while the first one stays on the page.
  const reply = `and hello back ${Date.now()}`;
  await other.getByLabel("Message", { exact: true }).fill(reply);
  await other.getByRole("button", { name: "Send" }).click();
  await owner.getByRole("log").getByText(reply).waitFor({ timeout: 5_000 });
  await axe(owner, "chats");
  await other.close();
});

test("a timer keeps running across a reload, stops from the header, and is listed for this week", { skip }, async () => {
  await owner.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Timers" }).click();
  await owner.getByRole("heading", { name: "Timers" }).waitFor();
  await owner.getByLabel("What are you working on?").fill("Writing the proposal");
  await owner.getByRole("button", { name: "Start timer" }).click();
  const clock = owner.getByRole("timer");
  await clock.waitFor();
  const startedAt = await clock.getAttribute("data-started");
  assert.ok(startedAt);
  await owner.getByRole("cell", { name: "Writing the proposal", exact: true }).waitFor();
  await axe(owner, "timers");

  await owner.reload();
  await clock.waitFor();
  assert.equal(await clock.getAttribute("data-started"), startedAt, "the same timer, from the server");
  // The clock ticks: its text changes within a couple of seconds.
  const shown = await clock.textContent();
  await until("the clock to tick", async () => (await clock.textContent()) !== shown, 3_000);

  await owner.getByRole("group", { name: "Running timer" }).getByRole("button", { name: "Stop timer" }).click();
  await owner.getByText("No timer running").waitFor();
  const row = owner.getByRole("row").filter({ hasText: "Writing the proposal" });
  await row.waitFor();
  assert.ok(!(await row.textContent())?.includes("running"), "the entry has an end time now");
});

test("Russian: the whole screen switches, dates and numbers per locale", { skip }, async () => {
  await owner.getByLabel("Language").selectOption("ru");
  await owner.getByRole("heading", { name: "Таймеры" }).waitFor();
  await owner.getByRole("navigation", { name: "Главное меню" }).getByRole("link", { name: "Чаты" }).waitFor();
  assert.equal(await owner.evaluate("document.documentElement.lang"), "ru");
  const caption = (await owner.locator("caption").textContent()) ?? "";
  assert.match(caption, /^Всего за неделю: \d+(,\d)? ч$/, "the week's total in Russian hours, with a decimal comma");
  await axe(owner, "timers (ru)");
  await owner.reload();
  await owner.getByRole("heading", { name: "Таймеры" }).waitFor(); // the choice is kept
  await owner.getByLabel("Язык").selectOption("en");
  await owner.getByRole("heading", { name: "Timers" }).waitFor();
});

test("silent refresh: two tabs renew the session before it expires, one at a time, and both stay signed in", { skip }, async () => {
  // Refresh tokens are single-use: two tabs refreshing with the same cookie at once would end the
  // session (refresh_token_reused). The page clocks are moved 14.5 minutes ahead, past the moment
  // (a minute before the 15-minute access token expires) when both tabs renew it.
  const context = await browser.newContext();
  contexts.push(context);
  const refreshes: number[] = [];
  context.on("response", (r) => {
    if (r.url().endsWith("/crm.auth.v1.AuthService/Refresh")) refreshes.push(r.status());
  });
  const a = await context.newPage();
  a.setDefaultTimeout(10_000);
  await a.clock.install();
  await a.goto(`${app.baseUrl}/login`);
  await a.getByLabel("E-mail or phone").fill(email);
  await a.getByLabel("Password").fill(password);
  await a.getByRole("button", { name: "Log in" }).click();
  await a.getByRole("heading", { name: "Chats", exact: true }).waitFor();
  const b = await context.newPage();
  b.setDefaultTimeout(10_000);
  await b.clock.install();
  await b.goto(`${app.baseUrl}/timers`);
  await b.getByRole("heading", { name: "Timers" }).waitFor();
  const cookieBefore = (await context.cookies()).find((c) => c.name === "refresh_token")?.value;

  await Promise.all([a.clock.fastForward("14:30"), b.clock.fastForward("14:30")]);
  await until("a silent refresh", () => refreshes.length > 0, 10_000);
  assert.notEqual((await context.cookies()).find((c) => c.name === "refresh_token")?.value, cookieBefore, "the refresh cookie was rotated");

  // Both tabs go on working with the renewed cookies.
  await b.getByLabel("What are you working on?").fill("after the refresh");
  await b.getByRole("button", { name: /Start timer|Switch to this/ }).click();
  await b.getByRole("cell", { name: "after the refresh", exact: true }).waitFor();
  await a.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Timers" }).click();
  await a.getByRole("cell", { name: "after the refresh", exact: true }).waitFor();
  await a.getByRole("group", { name: "Running timer" }).getByRole("button", { name: "Stop timer" }).click();
  await a.getByText("No timer running").waitFor();
  assert.deepEqual(refreshes.filter((s) => s !== 200), [], `every refresh succeeded (statuses ${JSON.stringify(refreshes)})`);
  await context.close();
});

test("over plain HTTP on a non-local name the browser refuses the Secure cookies: the login says so", { skip }, async () => {
  // crm.test resolves to this machine's loopback, but is not "localhost": not a secure context.
  const { port } = new URL(app.baseUrl);
  const { chromium } = await import("playwright-core");
  const lan = await chromium.launch({ executablePath: chromiumPath, args: ["--headless", "--no-sandbox", "--disable-gpu", "--host-resolver-rules=MAP crm.test 127.0.0.1"] });
  try {
    const page = await lan.newPage();
    page.setDefaultTimeout(10_000);
    await page.goto(`http://crm.test:${port}/login`);
    await page.getByLabel("E-mail or phone").fill(email);
    await page.getByLabel("Password").fill(password);
    await page.getByRole("button", { name: "Log in" }).click();
    await page.getByRole("alert").filter({ hasText: `only over HTTPS or on localhost` }).waitFor();
    await page.getByRole("alert").filter({ hasText: `http://localhost:${port}/` }).waitFor();
    await page.getByRole("heading", { name: "Log in" }).waitFor(); // still here, not a half-signed-in shell
  } finally {
    await lan.close();
  }
});

test("log out ends the session; log out everywhere ends the other browser's too", { skip }, async () => {
  const second = await newPage();
  await logIn(second, app.baseUrl, email, password);

  // Keyboard only: Tab to "Log out" and press Enter.
  await second.getByRole("button", { name: "Log out", exact: true }).focus();
  await second.keyboard.press("Enter");
  await second.getByRole("heading", { name: "Log in" }).waitFor();
  assert.deepEqual((await second.context().cookies()).filter((c) => c.value !== "").map((c) => c.name), [], "the server cleared the cookies");
  await second.goto(`${app.baseUrl}/timers`);
  await second.getByRole("heading", { name: "Log in" }).waitFor();

  // Log the second one in again, then end every session from the first.
  await second.getByLabel("E-mail or phone").fill(email);
  await second.getByLabel("Password").fill(password);
  await second.getByRole("button", { name: "Log in" }).click();
  await second.getByRole("heading", { name: "Chats", exact: true }).waitFor();
  await owner.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Account" }).click(); // beside the sessions it ends
  await owner.getByRole("button", { name: "Log out everywhere" }).click();
  await owner.getByRole("heading", { name: "Log in" }).waitFor();
  await owner.getByRole("status").filter({ hasText: /Logged out of \d+ sessions/ }).waitFor();
  await second.reload();
  await second.getByRole("heading", { name: "Log in" }).waitFor();
  assert.deepEqual(pageProblems, [], "no CSP violation or uncaught error on any page");
});

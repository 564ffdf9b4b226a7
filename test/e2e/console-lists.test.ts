/**
 * The console's long lists in a real browser against the all-in-one started here on a PostgreSQL
 * database of its own (issue 19: "lists of 10,000 rows scroll smoothly"): 10,000 companies, 300
 * people and 150 deals written by the demo generator (`services/records/demo/bulk.ts`, COPY: a
 * second, where 10,000 rows through the import take minutes on PGlite), then each list is scrolled
 * to its end. The DOM keeps a bounded number of rows the whole way (the lists are virtualized),
 * pages load by their keyset token as the end comes near, the last record appears, ↑ ↓ PageDown
 * move the focus through rows that were not in the DOM, and axe-core finds nothing serious, in
 * English and Russian. Changes made through the API while the list is scrolled to its end reach it
 * in place (renamed, trashed, created: the count kept), with at most two list calls, not 200.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { freshDatabase, installHint, need, postgresUp, until, type TestApp, type TestDatabase } from "@crm/testkit";
import { startTestApp } from "@crm/all/test-app";
import type { Browser, Page } from "playwright-core";
import { axe, buildWebIfStale, chromiumSkip, launchChromium, logIn, watchProblems } from "./browser.ts";
import { nav } from "./records-flow.ts";
import { PASSWORD, registerOwner } from "../../services/admin/test/helpers.ts";
import { generate } from "../../services/records/demo/bulk.ts";
import { AuthService } from "@crm/gen/crm/auth/v1/auth_pb";
import { CompanyService } from "@crm/gen/crm/records/v1/company_pb";

const skip = chromiumSkip() || need("PostgreSQL", await postgresUp(), installHint.postgres);

let tdb: TestDatabase;
let app: TestApp;
let browser: Browser;
let page: Page;
let ownerEmail = "";
const problems: string[] = [];
const total = 10_000;
/** The most rows a virtualized list may hold in the DOM at 1280×900 (those in view and the overscan). */
const bounded = 80;
/** The generator's company names (bulk.ts): company i was created before company i + 1. */
const LAST = ["Lee", "Mueller", "Novak", "Okafor", "Petrov", "Rossi", "Sato", "Schmidt", "Silva", "Tanaka", "Walsh", "Ivanova", "Garcia", "Chen", "Dubois", "Kowalski"];
const INDUSTRIES = ["Software", "Retail", "Manufacturing", "Healthcare", "Logistics", "Energy", "Finance", "Travel"];
const companyName = (i: number) => `${LAST[i % LAST.length]} ${INDUSTRIES[i % INDUSTRIES.length]} ${i}`;
/** The list's k-th row, newest first (the default order). */
const nthRow = (k: number) => companyName(total - 1 - k);

before(async () => {
  if (skip) return;
  buildWebIfStale();
  tdb = await freshDatabase();
  [app, browser] = await Promise.all([startTestApp({ DATABASE_URL: tdb.url }), launchChromium()]);
  const context = await browser.newContext({ locale: "en-US", viewport: { width: 1280, height: 900 } });
  page = await context.newPage();
  page.setDefaultTimeout(30_000); // the box is shared: generous, never a sleep
  page.setDefaultNavigationTimeout(60_000);
  watchProblems(page, problems);
});

after(async () => {
  await browser?.close();
  await app?.close();
  await tdb?.drop();
});

const rowNames = async (p: Page) => p.locator("table.records tbody tr[data-index] th[scope=row]").allTextContents();
const domRows = async (p: Page) => p.locator("table.records tbody tr").count();
const toBottom = (p: Page) => p.evaluate("window.scrollTo(0, document.documentElement.scrollHeight)");
const focusedLabel = async (p: Page) => (await p.evaluate("document.activeElement?.getAttribute('aria-label')")) as string | null;
const number = (n: number) => n.toLocaleString("en-US");

/** Scrolls the page's list to its end (each step to the bottom brings the next pages); the most rows the DOM held. */
async function scrollToEnd(p: Page, count: number, timeoutMs: number): Promise<{ most: number; steps: number }> {
  let most = 0;
  let steps = 0;
  await until(
    `row ${count} of the list`,
    async () => {
      steps++;
      await toBottom(p);
      most = Math.max(most, await domRows(p));
      return (await p.locator(`table.records tbody tr[aria-rowindex="${count + 1}"]`).count()) === 1;
    },
    timeoutMs,
  );
  return { most, steps };
}

test("10,000 companies: scrolled to the end with a bounded DOM, pages by token, the last record shown", { skip }, async () => {
  const owner = await registerOwner(app);
  ownerEmail = owner.email;
  const made = await generate({ databaseUrl: tdb.url, companyId: owner.companyId, companies: total, people: 300, deals: 150 });
  console.log(`# the generator wrote ${total} companies, 300 people and 150 deals in ${made.seconds} s`);
  await logIn(page, app.baseUrl, owner.email, PASSWORD);

  await nav(page, "Companies").click();
  await page.getByRole("heading", { name: "Companies" }).waitFor();
  await until("the newest first", async () => (await rowNames(page))[0] === nthRow(0), 20_000);
  const table = page.getByRole("table", { name: "Companies" });
  assert.ok(["-1", String(total + 1)].includes((await table.getAttribute("aria-rowcount")) ?? ""), "the total for screen readers, or unknown while the server only estimates it");
  assert.ok((await domRows(page)) <= bounded, `at most ${bounded} rows in the DOM`);
  await axe(page, "companies list (10,000)");

  // To the end: the DOM never holds more than the view needs.
  const started = Date.now();
  const { most, steps } = await scrollToEnd(page, total, 240_000);
  console.log(`# scrolled to row ${total} in ${steps} steps, ${((Date.now() - started) / 1000).toFixed(1)} s; at most ${most} rows in the DOM`);
  assert.ok(most <= bounded, `at most ${bounded} rows in the DOM while scrolling (saw ${most})`);
  await page.getByText(`${number(total)} of ${number(total)}`).waitFor();
  assert.equal(await page.getByRole("button", { name: "Load more" }).count(), 0, "nothing more to load");
  assert.equal(await table.getAttribute("aria-rowcount"), String(total + 1), "every row loaded: the total is known");
  const names = await rowNames(page);
  assert.equal(names.at(-1), nthRow(total - 1), "the oldest company last");
  const first = total - names.length;
  assert.deepEqual(names, names.map((_, k) => nthRow(first + k)), "in order, no gap, no row twice");
  await axe(page, "companies list (scrolled to the end)");
});

test("changes made elsewhere reach the scrolled list in place: no reread of its 200 pages", { skip }, async () => {
  // Someone else (the API, outside this page) renames a row in view, trashes another, creates one.
  const { accessToken } = await app.client(AuthService).login({ email: ownerEmail, password: PASSWORD });
  const companies = app.client(CompanyService, { token: accessToken });
  const listCalls: string[] = [];
  page.on("request", (r) => {
    if (r.url().endsWith("/crm.records.v1.CompanyService/ListCompanies")) listCalls.push(r.url());
  });
  const idOf = async (name: string) => (await page.locator("table.records tbody tr[data-index]").filter({ has: page.getByRole("link", { name, exact: true }) }).getAttribute("data-id"))!;
  const renamed = await idOf(nthRow(total - 1));
  const trashed = await idOf(nthRow(total - 2));
  await companies.updateCompany({ company: { id: renamed, name: "Renamed elsewhere" }, updateMask: { paths: ["name"] } });
  await page.getByRole("link", { name: "Renamed elsewhere", exact: true }).waitFor();
  await companies.deleteCompany({ id: trashed });
  await until("the trashed row gone", async () => (await page.getByRole("link", { name: nthRow(total - 2), exact: true }).count()) === 0, 20_000);
  await page.getByText(`${number(total - 1)} of ${number(total - 1)}`).waitFor();
  await companies.createCompany({ company: { name: "Created elsewhere" } });
  await page.getByText(`${number(total)} of ${number(total)}`).waitFor();
  const names = await rowNames(page);
  assert.equal(names.at(-1), "Renamed elsewhere", "the renamed row where it was");
  assert.equal(names.at(-2), nthRow(total - 3), "the trashed row's neighbours closed up");
  assert.equal(await page.getByRole("table", { name: "Companies" }).getAttribute("aria-rowcount"), String(total + 1));
  console.log(`# three changes made elsewhere, ${listCalls.length} list calls by the page`);
  assert.ok(listCalls.length <= 2, `at most 2 list calls for the changes (made ${listCalls.length})`);
  // The created company is on top, where the newest-first order puts it.
  await page.evaluate("window.scrollTo(0, 0)");
  await until("the new company first", async () => (await rowNames(page))[0] === "Created elsewhere", 20_000);
  // Back as the other tests expect it.
  await companies.undeleteCompany({ id: trashed });
  await companies.updateCompany({ company: { id: renamed, name: nthRow(total - 1) }, updateMask: { paths: ["name"] } });
  const created = await idOf("Created elsewhere");
  await companies.deleteCompany({ id: created });
  await until("the list as generated", async () => (await rowNames(page))[0] === nthRow(0), 20_000);
  assert.ok(listCalls.length <= 2, `still at most 2 list calls (made ${listCalls.length})`);
});

test("the keyboard: ↑ ↓ and PageDown move through rows not yet in the DOM; Tab reaches the rows' controls", { skip }, async () => {
  await page.evaluate("window.scrollTo(0, 0)");
  await until("the top rows", async () => (await rowNames(page))[0] === nthRow(0), 20_000);
  const first = page.getByRole("link", { name: nthRow(0), exact: true });
  await first.focus();
  await page.keyboard.press("Tab"); // the row's next control: its "Move to the trash" button
  assert.equal(await focusedLabel(page), `Move to the trash: ${nthRow(0)}`);
  await page.keyboard.press("Shift+Tab");
  const focused = async () => (await page.evaluate("document.activeElement?.textContent ?? ''")) as string;
  assert.equal(await focused(), nthRow(0));
  for (let i = 0; i < 60; i++) await page.keyboard.press("ArrowDown");
  await until("the focus on row 60", async () => (await focused()) === nthRow(60), 10_000);
  await page.keyboard.press("PageDown");
  await until("the focus ten rows on", async () => (await focused()) === nthRow(70), 10_000);
  await page.keyboard.press("ArrowUp");
  await until("one row up", async () => (await focused()) === nthRow(69), 10_000);
  assert.ok(await page.evaluate("(r => r.top >= 0 && r.bottom <= window.innerHeight)(document.activeElement.getBoundingClientRect())"), "the focused row is in view");
  assert.ok((await domRows(page)) <= bounded, `still at most ${bounded} rows in the DOM`);
  // The same column: ↓ from a row's button goes to the next row's button.
  await page.keyboard.press("Tab");
  await page.keyboard.press("ArrowDown");
  await until("the next row's button", async () => (await focusedLabel(page)) === `Move to the trash: ${nthRow(70)}`, 10_000);
});

test("all deals as a list beside the board: virtualized, sorted, filtered by status", { skip }, async () => {
  await nav(page, "Deals").click();
  await page.getByRole("heading", { name: /^Deals in Bench / }).waitFor();
  await page.getByRole("link", { name: "All deals" }).click();
  await page.getByRole("heading", { name: "All deals" }).waitFor();
  await until("the newest deal first", async () => /^Deal 149 /.test((await rowNames(page))[0] ?? ""), 20_000);
  assert.match((await page.locator('table.records tbody tr[data-index="0"]').textContent()) ?? "", /Bench \w+: \w+/, "its pipeline and stage");
  const { most } = await scrollToEnd(page, 150, 60_000);
  assert.ok(most <= bounded, `at most ${bounded} rows in the DOM (saw ${most})`);
  assert.match((await rowNames(page)).at(-1) ?? "", /^Deal 0 /, "the oldest deal last");
  await page.getByText("150 of 150").waitFor();
  await axe(page, "all deals");
  await page.getByRole("columnheader", { name: /Amount/ }).getByRole("button").click();
  await until("sorted by amount", async () => /sort=amount_minor/.test(page.url()) && (await page.locator('table.records tbody tr[data-index="0"]').count()) === 1, 20_000);
  await page.getByLabel("Status", { exact: true }).selectOption({ label: "Lost" }); // not "Column: Status"
  assert.match(page.url(), /status=lost/, "the filter is in the address");
  await until("only lost deals", async () => {
    const rows = await page.locator("table.records tbody tr[data-index]").allTextContents();
    return rows.length > 0 && rows.length < 150 && rows.every((r) => r.includes("Lost"));
  }, 20_000);
});

test("people: a virtualized list too; in Russian, axe-clean", { skip }, async () => {
  await nav(page, "People").click();
  await page.getByRole("heading", { name: "People" }).waitFor();
  const { most } = await scrollToEnd(page, 300, 60_000);
  assert.ok(most <= bounded, `at most ${bounded} rows in the DOM (saw ${most})`);
  await page.getByText("300 of 300").waitFor();
  assert.equal((await rowNames(page)).at(-1), "Ann Lee", "the oldest person last");

  await page.getByLabel("Language").selectOption("ru");
  await page.getByRole("heading", { name: "Люди" }).waitFor();
  await axe(page, "people list (ru)");
  await page.getByRole("link", { name: "Компании", exact: true }).click();
  await page.getByRole("heading", { name: "Компании" }).waitFor();
  await axe(page, "companies list (ru)");
  await page.goto(`${app.baseUrl}/deals/list`);
  await page.getByRole("heading", { name: "Все сделки" }).waitFor();
  await axe(page, "all deals (ru)");
  assert.deepEqual(problems, [], "no console errors, CSP reports or failed requests");
});

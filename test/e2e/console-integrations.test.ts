/**
 * The console's integrations screens in a real browser against the all-in-one started here
 * (issue 19): API keys (the server's reason beside the scopes, a key created with scopes and an
 * expiry whose secret is shown once and works, then revoked and refused) and the audit log (the
 * key's events, filtered by action, exported as CSV). axe-core on each screen, in English and
 * Russian.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, test } from "node:test";
import { until, type TestApp } from "@crm/testkit";
import { startTestApp } from "@crm/all/test-app";
import type { Browser, Page } from "playwright-core";
import { axe, buildWebIfStale, chromiumSkip, launchChromium, screenshot, watchProblems } from "./browser.ts";
import { signUp } from "./records-flow.ts";

const skip = chromiumSkip();

let app: TestApp;
let browser: Browser;
let page: Page;
const problems: string[] = [];
const tag = `${process.pid}${Date.now().toString(36)}`;

before(async () => {
  if (skip) return;
  buildWebIfStale();
  [app, browser] = await Promise.all([startTestApp(), launchChromium()]);
  const context = await browser.newContext({ locale: "en-US", viewport: { width: 1280, height: 900 }, acceptDownloads: true });
  page = await context.newPage();
  page.setDefaultTimeout(20_000); // the box is shared: generous, never a sleep
  page.setDefaultNavigationTimeout(30_000);
  watchProblems(page, problems);
});

after(async () => {
  await browser?.close();
  await app?.close();
});

/** A call with the API key, not the page's cookies: its HTTP status. */
async function callWithKey(key: string): Promise<number> {
  const res = await fetch(`${app.baseUrl}/crm.records.v1.CompanyService/ListCompanies`, { method: "POST", headers: { "content-type": "application/json", authorization: `Bearer ${key}` }, body: "{}" });
  await res.arrayBuffer();
  return res.status;
}

let secret = "";

test("API keys: scopes required, a key created with an expiry, its secret shown once and working, then revoked", { skip }, async () => {
  await signUp(page, app.baseUrl, `olga-${tag}@acme.test`);
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Admin" }).click();
  await page.getByRole("link", { name: "API keys" }).click();
  await page.getByRole("heading", { name: "API keys" }).waitFor();
  await page.getByText("No API keys.").waitFor();
  await axe(page, "API keys (none)");

  // No scope: the server's reason beside the scopes.
  await page.getByLabel("Name", { exact: true }).fill("Zapier");
  await page.getByRole("button", { name: "Create key" }).click();
  await page.locator("fieldset.scopes .field-error").waitFor();
  assert.equal(await page.locator("fieldset.scopes").getAttribute("aria-invalid"), "true");

  await page.getByRole("checkbox", { name: "companies:read" }).check();
  await page.getByRole("checkbox", { name: "deals:write" }).check();
  const nextYear = `${new Date().getUTCFullYear() + 1}-06-30`;
  await page.getByLabel("Expires on").fill(nextYear);
  await page.getByLabel("Calls per minute").fill("120");
  await page.getByRole("button", { name: "Create key" }).click();
  const box = page.getByRole("region", { name: "The new key “Zapier”" });
  await box.getByText("This is the only time the key is shown").waitFor();
  secret = await box.getByLabel("The key", { exact: true }).inputValue();
  assert.match(secret, /^crm_live_[A-Za-z0-9]+_[A-Za-z0-9_-]+$/);
  const row = page.getByRole("row").filter({ hasText: "Zapier" });
  await row.getByText("companies:read, deals:write").waitFor();
  assert.match((await row.textContent()) ?? "", /active/);
  assert.match((await row.textContent()) ?? "", /120/);
  await axe(page, "API keys with the new secret");
  await screenshot(page, "api-keys");
  assert.equal(await callWithKey(secret), 200, "the key works");
  await box.getByRole("button", { name: "I have stored it" }).click();
  await until("the secret is gone from the page", async () => (await page.getByLabel("The key", { exact: true }).count()) === 0, 20_000);
  assert.equal((await page.content()).includes(secret), false);

  await row.getByRole("button", { name: "Revoke the key “Zapier”" }).click();
  await page.getByRole("status").filter({ hasText: "The key “Zapier” is revoked" }).waitFor();
  await until("refused at once", async () => (await callWithKey(secret)) === 401, 20_000);
  await until("the revoked key leaves the list", async () => (await page.getByRole("row").filter({ hasText: "Zapier" }).count()) === 0, 20_000);
  await page.getByLabel("Show revoked keys").check();
  await page.getByRole("row").filter({ hasText: "Zapier" }).getByText(/revoked/).waitFor();
});

test("the audit log: the key's events, filtered by action, exported as CSV", { skip }, async () => {
  await page.getByRole("link", { name: "Audit log" }).click();
  await page.getByRole("heading", { name: "Audit log" }).waitFor();
  const actions = async () => page.locator("table.entries tbody tr").evaluateAll((rows) => rows.map((r) => r.getAttribute("data-action")));
  await until("the key's events", async () => {
    const a = await actions();
    return a.includes("api_key.created") && a.includes("api_key.revoked") && a.includes("auth.company_registered");
  }, 20_000);
  await axe(page, "audit log");
  await screenshot(page, "audit-log");
  await page.getByLabel("Action").selectOption("api_key.revoked");
  await until("only revocations", async () => (await actions()).join() === "api_key.revoked", 20_000);
  assert.match((await page.locator("table.entries tbody tr").first().textContent()) ?? "", /Olga/);

  const [download] = await Promise.all([page.waitForEvent("download"), page.getByRole("button", { name: "Export CSV" }).click()]);
  const csv = readFileSync((await download.path())!, "utf8");
  const lines = csv.trim().split(/\r?\n/);
  assert.equal(lines.length, 2, `a header and the one revocation:\n${csv}`);
  assert.match(lines[1]!, /api_key\.revoked/);
  await page.getByRole("status").filter({ hasText: "Events exported: 1." }).waitFor();
});

test("in Russian: API keys and the audit log", { skip }, async () => {
  await page.getByLabel("Language").selectOption("ru");
  await page.getByRole("heading", { name: "Журнал аудита" }).waitFor();
  await axe(page, "audit log (ru)");
  await page.getByRole("link", { name: "Ключи API" }).click();
  await page.getByRole("heading", { name: "Ключи API" }).waitFor();
  await axe(page, "API keys (ru)");
  await page.getByLabel("Язык").selectOption("en");
  assert.deepEqual(problems, [], "no CSP violation or uncaught error on any page");
});

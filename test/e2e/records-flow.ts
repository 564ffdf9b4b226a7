/**
 * The records screens' flow shared by the all-in-one and the gateway browser tests (issue 19):
 * sign up → a pipeline → a company, a person working there and a deal, all through the forms →
 * drag the deal to Won on the board → the move on the deal's timeline. Plus `rpc`, a call of the
 * API from the page with its own cookies (to seed data or act as "someone else" meanwhile).
 */
import assert from "node:assert/strict";
import type { Page } from "playwright-core";
import { axe } from "./browser.ts";

export const password = "correct horse battery staple";

/** POSTs a Connect JSON call from the page (its session cookies); the answer's JSON, or throws with it. */
export async function rpc<T = Record<string, unknown>>(page: Page, path: string, body: unknown): Promise<T> {
  const r = await page.evaluate(
    async ([p, b]) => {
      const res = await fetch(`/${p}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(b), credentials: "include" });
      return { status: res.status, json: (await res.json()) as unknown };
    },
    [path, body] as const,
  );
  if (r.status !== 200) throw new Error(`${path}: ${r.status} ${JSON.stringify(r.json)}`);
  return r.json as T;
}

export async function signUp(page: Page, base: string, email: string, company = "Acme"): Promise<void> {
  await page.goto(`${base}/login`);
  await page.getByRole("link", { name: "Register your company" }).click();
  await page.getByLabel("Company name").fill(company);
  await page.getByLabel("Your name").fill("Olga");
  await page.getByLabel("E-mail").fill(email);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Create the company" }).click();
  await page.getByRole("heading", { name: "Chats", exact: true }).waitFor();
}

/** The main navigation's link. */
export const nav = (page: Page, name: string) => page.getByRole("navigation", { name: "Main" }).getByRole("link", { name, exact: true });

/** A board column by its stage name. */
export const column = (page: Page, stage: string) => page.locator(`section.column[data-stage="${stage}"]`);

/**
 * The flow, every step through the console's forms; `check` runs axe-core on each screen.
 * Ends on the deal's page, whose timeline shows the move to Won. Returns the deal's address.
 */
export async function dealFlow(page: Page, { check = true, company = "Globex", person = { first: "Ann", last: "Lee", email: "ann@globex.example" }, deal = "Globex rollout" } = {}): Promise<string> {
  // No pipeline yet: the board offers to create one, with the usual stages filled in.
  await nav(page, "Deals").click();
  await page.getByRole("link", { name: "Create a pipeline" }).click();
  await page.getByRole("heading", { name: "New pipeline" }).waitFor();
  assert.equal(await page.getByLabel("Pipeline name").inputValue(), "Sales");
  if (check) await axe(page, "pipeline settings (new)");
  await page.getByRole("button", { name: "Create pipeline" }).click();
  await page.getByRole("heading", { name: "Deals in Sales" }).waitFor();

  await nav(page, "Companies").click();
  await page.getByRole("link", { name: "New company" }).click();
  await page.getByLabel("Name", { exact: true }).fill(company);
  await page.getByLabel("Domain").fill(`https://www.${company.toLowerCase()}.example/about`);
  await page.getByLabel("Industry").fill("Software");
  await page.getByRole("button", { name: "Create company" }).click();
  await page.getByRole("heading", { name: company, exact: true }).waitFor();
  await page.getByRole("region", { name: "Details" }).locator('[data-field="domain"]').getByText(`${company.toLowerCase()}.example`).waitFor();

  await page.getByRole("link", { name: "New person" }).click();
  assert.equal(await page.getByRole("group", { name: "Company" }).getByRole("combobox").inputValue(), new URL(page.url()).searchParams.get("company"), "the company is chosen");
  await page.getByLabel("First name").fill(person.first);
  await page.getByLabel("Last name").fill(person.last);
  await page.getByLabel("E-mails").fill(person.email);
  await page.getByLabel("Role at the company").fill("CTO");
  await page.getByRole("button", { name: "Create person" }).click();
  await page.getByRole("heading", { name: `${person.first} ${person.last}` }).waitFor();
  await page.getByRole("region", { name: "Linked records" }).getByRole("link", { name: company }).waitFor();
  if (check) await axe(page, "person page");

  await page.getByRole("link", { name: "New deal" }).click();
  await page.getByLabel("Deal name").fill(deal);
  await page.getByLabel("Amount").fill("12,500.5");
  await page.getByLabel("Currency").selectOption("EUR");
  await page.getByLabel("Expected close date").fill("2026-09-30");
  await page.getByRole("group", { name: "Person" }).getByRole("combobox").selectOption({ label: `${person.first} ${person.last} <${person.email}>` });
  if (check) await axe(page, "new deal form");
  await page.getByRole("button", { name: "Create deal" }).click();
  await page.getByRole("heading", { name: deal }).waitFor();
  const details = page.getByRole("region", { name: "Details" });
  await details.getByText("€12,500.50").waitFor();
  await details.getByText("Sep 30, 2026").waitFor();
  await details.locator('[data-field="companyId"]').getByRole("link", { name: company }).waitFor();
  const dealUrl = page.url();

  // The board: the deal is a card in the first stage; drag it to Won.
  await page.getByRole("link", { name: "Open the board" }).click();
  await page.getByRole("heading", { name: "Deals in Sales" }).waitFor();
  const card = column(page, "Lead").locator(".card", { hasText: deal });
  await card.waitFor();
  if (check) await axe(page, "deal board");
  await card.dragTo(column(page, "Won"));
  await page.getByRole("status").filter({ hasText: `${deal} moved to Won.` }).waitFor();
  await column(page, "Won").locator(".card", { hasText: deal }).waitFor();
  assert.equal(await column(page, "Lead").locator(".card").count(), 0);
  await page.reload();
  await column(page, "Won").locator(".card", { hasText: deal }).waitFor(); // the server has it there

  // The deal's page: won, and the move on its timeline, newest first.
  await column(page, "Won").getByRole("link", { name: deal }).click();
  await page.getByRole("heading", { name: deal }).waitFor();
  await details.locator('[data-field="stageId"]').getByText("Won").waitFor();
  const timeline = page.getByRole("region", { name: "Timeline" });
  const newest = timeline.locator(".timeline-entry").first();
  await newest.getByText("You moved it to another stage").waitFor();
  assert.match((await newest.locator('[data-field="stage_id"]').textContent()) ?? "", /Stage:\s*Lead\s*→\s*Won/);
  assert.match((await newest.locator('[data-field="status"]').textContent()) ?? "", /Status:\s*Open\s*→\s*Won/);
  assert.match((await timeline.locator(".timeline-entry").last().textContent()) ?? "", /You created it.*Amount:\s*€12,500\.50/s);
  if (check) await axe(page, "deal page with its timeline");
  return dealUrl;
}

/**
 * Browser support for the console's end-to-end tests: Debian's chromium driven by playwright-core
 * (which downloads no browser of its own), axe-core checks, and a watch for CSP violations and
 * uncaught errors. Without chromium a test skips with one line naming `apt-get install -y chromium`
 * (CI=true makes that a failure).
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { createRequire } from "node:module";
import { need } from "@crm/testkit";
import type { Browser, Page } from "playwright-core";

export const chromiumPath = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

/** The `skip` option of a browser test. */
export function chromiumSkip(): string | false {
  return need("chromium", existsSync(chromiumPath), "apt-get install -y chromium");
}

/** Builds web/dist when it is missing or older than web/src (npm ci built it; a developer may have edited since). */
export function buildWebIfStale(): void {
  const built = spawnSync(process.execPath, ["scripts/build-web.mjs", "--if-stale"], { encoding: "utf8" });
  assert.equal(built.status, 0, `building web/dist failed:\n${built.stdout}${built.stderr}`);
}

export async function launchChromium(): Promise<Browser> {
  const { chromium } = await import("playwright-core");
  return chromium.launch({ executablePath: chromiumPath, args: ["--headless", "--no-sandbox", "--disable-gpu"] });
}

/** Collects CSP violations and uncaught errors of `page` into `problems`: the console must have none. */
export function watchProblems(page: Page, problems: string[]): void {
  page.on("console", (m) => {
    if (m.type() === "error" && /Content Security Policy|Refused to/i.test(m.text())) problems.push(m.text());
  });
  page.on("pageerror", (e) => problems.push(`uncaught: ${e.message}`));
}

const axeSource = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");

interface Violation {
  id: string;
  impact: string | null;
  help: string;
  nodes: string[];
}

/** axe-core on the page as it is; serious and critical violations fail the test. */
export async function axe(page: Page, screen: string): Promise<void> {
  // evaluate() is not subject to the page's CSP, unlike an injected <script>.
  await page.evaluate(`if (!window.axe) { ${axeSource} }`);
  const violations = (await page.evaluate(`axe.run(document, { resultTypes: ["violations"] }).then((r) =>
    r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => n.target.join(" ")) })))`)) as Violation[];
  const bad = violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  assert.deepEqual(bad, [], `${screen}: accessibility violations:\n${JSON.stringify(bad, null, 2)}`);
}

/** Logs in through the form and waits for the shell. */
export async function logIn(page: Page, baseUrl: string, email: string, password: string): Promise<void> {
  await page.goto(`${baseUrl}/login`);
  await page.getByLabel("E-mail or phone").fill(email);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Log in" }).click();
  await page.getByRole("heading", { name: "Chats", exact: true }).waitFor();
}

/**
 * With CRM_SCREENSHOTS=<folder>, saves a PNG of the page there as <name>.png (the README's pictures
 * come from `CRM_SCREENSHOTS=docs/screenshots npm test -- test/e2e/console*.test.ts`); else nothing.
 * When `pngquant` is installed (apt-get install pngquant) the PNG is then reduced to a palette of
 * at most 256 colours, a third of its size for these flat screens; else it stays as Chromium wrote it.
 */
export async function screenshot(page: Page, name: string): Promise<void> {
  const dir = process.env.CRM_SCREENSHOTS;
  if (!dir) return;
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `${name}.png`);
  await page.evaluate("window.scrollTo(0, 0)"); // the header in view, wherever the test left the page
  await page.screenshot({ path });
  spawnSync("pngquant", ["--force", "--skip-if-larger", "--quality=70-95", "--strip", "--output", path, path]);
}

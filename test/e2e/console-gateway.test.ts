/**
 * The web console through the cluster's NGINX gateway over TLS (HTTP/2), against the real services
 * (the local cluster on free ports, real PostgreSQL, Redis and RabbitMQ): the console's files with
 * their headers, sign up, the shell, and a chat shared by two browser contexts where a message sent
 * in one appears in the other within 1 s (Connect server stream through nginx); a reload of a deep
 * link is served by the gateway's SPA fallback.
 *
 * Needs chromium, nginx + libnginx-mod-http-js and the local PostgreSQL/Redis/RabbitMQ; without
 * them it skips with one loud line (CI=true makes that a failure).
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { needNone } from "@crm/testkit";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { checkPrerequisites, defaults } from "../../scripts/cluster/lib.mjs";
import { nginxProblem } from "../../services/gateway/run.mjs";
import { runTag, startGatewayCluster, type GatewayCluster } from "./gateway-cluster.ts";
import { axe, buildWebIfStale, chromiumSkip, launchChromium, logIn, watchProblems } from "./browser.ts";

const backing = await checkPrerequisites({ ...defaults, gateway: false });
const skip = chromiumSkip() || needNone(nginxProblem(), ...backing);

describe("the web console through the gateway (TLS, real services)", { skip, timeout: 600_000 }, () => {
  const tag = runTag();
  const email = `olga-${tag}@acme.test`;
  const password = "correct horse battery staple";
  const problems: string[] = [];
  let gw: GatewayCluster | undefined;
  let browser: Browser;
  let base: string;
  const contexts: BrowserContext[] = [];

  before(async () => {
    buildWebIfStale();
    browser = await launchChromium();
    gw = await startGatewayCluster("console", tag);
    base = gw.base;
  });

  after(async () => {
    await browser?.close();
    await gw?.stop();
  });

  async function newPage(): Promise<Page> {
    // The cluster's certificates come from its own dev CA, which this browser does not know.
    const context = await browser.newContext({ ignoreHTTPSErrors: true, locale: "en-US" });
    contexts.push(context);
    const page = await context.newPage();
    page.setDefaultTimeout(15_000);
    watchProblems(page, problems);
    return page;
  }

  it("sign up, then two browsers in one chat: a message appears in the other within 1 s", async () => {
    const owner = await newPage();
    const doc = await owner.goto(`${base}/`);
    assert.equal(doc?.status(), 200);
    const headers = doc!.headers();
    assert.equal(headers["cache-control"], "no-cache");
    assert.match(headers["content-security-policy"] ?? "", /default-src 'self'/);
    assert.match(headers["strict-transport-security"] ?? "", /max-age=/);
    await owner.getByRole("heading", { name: "Log in" }).waitFor();

    await owner.getByRole("link", { name: "Register your company" }).click();
    await owner.getByLabel("Company name").fill("Acme");
    await owner.getByLabel("Your name").fill("Olga");
    await owner.getByLabel("E-mail").fill(email);
    await owner.getByLabel("Password").fill(password);
    await owner.getByRole("button", { name: "Create the company" }).click();
    await owner.getByRole("heading", { name: "Chats", exact: true }).waitFor();

    await owner.getByLabel("New chat name").fill("General");
    await owner.getByRole("button", { name: "Create chat" }).click();
    await owner.getByRole("status").filter({ hasText: "Live" }).waitFor();
    const chatUrl = owner.url();

    const other = await newPage();
    await logIn(other, base, email, password);
    await other.goto(chatUrl); // a deep link: the gateway's SPA fallback serves index.html
    await other.getByRole("status").filter({ hasText: "Live" }).waitFor();

    const text = `through the gateway ${Date.now()}`;
    await owner.getByLabel("Message", { exact: true }).fill(text);
    const sent = performance.now();
    await owner.getByLabel("Message", { exact: true }).press("Enter");
    await other.getByRole("log").getByText(text).waitFor({ timeout: 5_000 });
    const ms = performance.now() - sent;
    process.stderr.write(`console (gateway): message seen in the other context after ${ms.toFixed(0)} ms\n`);
    assert.ok(ms < 1_000, `the message took ${ms.toFixed(0)} ms to appear in the other context`);

    await other.reload();
    await other.getByRole("log").getByText(text).waitFor();
    await axe(other, "chats through the gateway");
    assert.deepEqual(problems, [], "no CSP violation or uncaught error on any page");
  });
});

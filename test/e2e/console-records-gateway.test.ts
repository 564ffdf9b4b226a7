/**
 * The records screens through the cluster's NGINX gateway over TLS (HTTP/2), against the real
 * services (every service its own process, real PostgreSQL, Redis and RabbitMQ): the flow
 * — sign up → a pipeline, a company, a person and a deal through the forms → drag the deal to Won
 * → the move on the deal's timeline —, a deep link into a record page reloaded through the
 * gateway's fallback, and another page's board following a move live (WatchRecords, a Connect
 * server stream through nginx). The all-in-one runs the same and much more (console-records.test.ts).
 *
 * Needs chromium, nginx + libnginx-mod-http-js and the local PostgreSQL/Redis/RabbitMQ; without
 * them it skips with one loud line (CI=true makes that a failure).
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { needNone } from "@crm/testkit";
import type { Browser } from "playwright-core";
import { checkPrerequisites, defaults } from "../../scripts/cluster/lib.mjs";
import { nginxProblem } from "../../services/gateway/run.mjs";
import { runTag, startGatewayCluster, type GatewayCluster } from "./gateway-cluster.ts";
import { axe, buildWebIfStale, chromiumSkip, launchChromium, watchProblems } from "./browser.ts";
import { column, dealFlow, rpc, signUp } from "./records-flow.ts";

const backing = await checkPrerequisites({ ...defaults, gateway: false });
const skip = chromiumSkip() || needNone(nginxProblem(), ...backing);

describe("the records screens through the gateway (TLS, real services)", { skip, timeout: 600_000 }, () => {
  const tag = runTag();
  const problems: string[] = [];
  let gw: GatewayCluster | undefined;
  let browser: Browser;
  let base: string;

  before(async () => {
    buildWebIfStale();
    browser = await launchChromium();
    gw = await startGatewayCluster("console_rec", tag);
    base = gw.base;
  });

  after(async () => {
    await browser?.close();
    await gw?.stop();
  });

  it("sign up, a company, a person and a deal, drag the deal to Won, the move on its timeline", async () => {
    // The cluster's certificates come from its own dev CA, which this browser does not know.
    const context = await browser.newContext({ ignoreHTTPSErrors: true, locale: "en-US", viewport: { width: 1400, height: 900 } });
    const page = await context.newPage();
    page.setDefaultTimeout(15_000);
    watchProblems(page, problems);
    await signUp(page, base, `olga-${tag}@acme.test`);
    const dealUrl = await dealFlow(page, { check: false });

    // A deep link into a record page, reloaded: the gateway's fallback serves the console, which
    // asks for the deal and its timeline together with Check.
    await page.goto(dealUrl);
    await page.getByRole("heading", { name: "Globex rollout" }).waitFor();
    await page.getByRole("region", { name: "Timeline" }).getByText("You moved it to another stage").waitFor();
    await axe(page, "deal page through the gateway");

    // Live through nginx: another page's board follows a move made here (WatchRecords, a Connect server stream).
    const other = await context.newPage();
    other.setDefaultTimeout(15_000);
    watchProblems(other, problems);
    await other.goto(`${base}/deals`);
    await column(other, "Won").locator(".card", { hasText: "Globex rollout" }).waitFor();
    const id = new URL(dealUrl).pathname.split("/").pop()!;
    const { pipelines } = await rpc<{ pipelines: { stages: { id: string; name: string }[] }[] }>(page, "crm.records.v1.PipelineService/ListPipelines", {});
    const proposal = pipelines[0]!.stages.find((s) => s.name === "Proposal")!.id;
    await rpc(page, "crm.records.v1.DealService/MoveDeal", { id, stageId: proposal });
    await column(other, "Proposal").locator(".card", { hasText: "Globex rollout" }).waitFor();
    assert.deepEqual(problems, [], "no CSP violation or uncaught error on any page");
  });
});

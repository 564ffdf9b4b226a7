/**
 * The web console through the gateway (nginx.conf.template, CRM_GW_WEB_ROOT): the same cache
 * headers, CSP and SPA fallback as the all-in-one (services/all/test/web.test.ts), over TLS — and
 * the API's routes are never answered with the console.
 */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync, gzipSync } from "node:zlib";
import { after, before, describe, it } from "node:test";
import { needNone } from "@crm/testkit";
import { nginxProblem } from "../run.mjs";
import { startGatewayFixture, type GatewayFixture } from "./fixture.ts";
import { request } from "./helpers.ts";

const skip = needNone(nginxProblem());
const indexHtml = `<!doctype html><html><head><script type="module" src="/assets/app-abc123.js"></script></head><body><div id="root"></div></body></html>`;
const js = `console.log(${JSON.stringify("x".repeat(2000))});`;

describe("the web console through the gateway", { skip, timeout: 120_000 }, () => {
  let gw: GatewayFixture;
  const web = mkdtempSync(join(tmpdir(), "crm-gw-web-"));
  const html = { accept: "text/html,application/xhtml+xml,*/*;q=0.8" };
  const get = (path: string, headers: Record<string, string> = {}, method = "GET") => request({ port: gw.port, ca: gw.ca, path, method, headers });

  before(async () => {
    mkdirSync(join(web, "assets"));
    writeFileSync(join(web, "index.html"), indexHtml);
    writeFileSync(join(web, "favicon.svg"), "<svg/>");
    writeFileSync(join(web, "assets", "app-abc123.js"), js);
    writeFileSync(join(web, "assets", "app-abc123.js.gz"), gzipSync(js));
    gw = await startGatewayFixture({ vars: { CRM_GW_WEB_ROOT: web } });
  });
  after(async () => {
    await gw?.close();
    rmSync(web, { recursive: true, force: true });
  });

  it("index.html for navigations: no-cache, the console's CSP and the gateway's security headers", async () => {
    for (const path of ["/", "/chats", "/chats/3f2a", "/timers?week=1", "/admin/members", "/accept-invite", "/reset-password?token=abc"]) {
      const res = await get(path, html);
      assert.equal(res.status, 200, `${path}: ${res.body}`);
      assert.equal(res.body, indexHtml, path);
      assert.equal(res.headers["cache-control"], "no-cache", path);
      assert.match(String(res.headers["content-type"]), /^text\/html/, path);
      const csp = String(res.headers["content-security-policy"]);
      for (const d of ["default-src 'self'", "script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"]) assert.ok(csp.includes(d), `${path}: CSP has ${d}: ${csp}`);
      assert.match(String(res.headers["strict-transport-security"]), /max-age=/, "HSTS stays");
      assert.equal(res.headers["x-content-type-options"], "nosniff");
    }
    const favicon = await get("/favicon.svg", { accept: "image/*" });
    assert.equal(favicon.status, 200, "a file of the build is served whatever the Accept header");
    assert.equal(favicon.headers["cache-control"], "no-cache");
  });

  it("hashed assets: a year's immutable cache, the build's gzip copy when accepted", async () => {
    const plain = await get("/assets/app-abc123.js");
    assert.equal(plain.status, 200);
    assert.equal(plain.body, js);
    assert.equal(plain.headers["cache-control"], "public, max-age=31536000, immutable");
    assert.match(String(plain.headers["content-type"]), /javascript/);
    const gz = await new Promise<{ enc: unknown; body: Buffer }>((resolve, reject) => {
      import("node:https").then(({ default: https }) =>
        https
          .get({ host: "127.0.0.1", port: gw.port, path: "/assets/app-abc123.js", ca: gw.ca, headers: { "accept-encoding": "gzip" } }, (res) => {
            const chunks: Buffer[] = [];
            res.on("data", (c: Buffer) => chunks.push(c));
            res.on("end", () => resolve({ enc: res.headers["content-encoding"], body: Buffer.concat(chunks) }));
          })
          .on("error", reject),
      );
    });
    assert.equal(gz.enc, "gzip");
    assert.equal(gunzipSync(gz.body).toString(), js);
    const missing = await get("/assets/nope.js", html);
    assert.equal(missing.status, 404, "a missing asset is a 404, never the console");
    assert.equal(missing.json().code, "not_found");
  });

  it("everything else stays the API's: JSON 404s, RPC and REST routes, health", async () => {
    const api = await get("/chats/3f2a", { accept: "application/json" });
    assert.equal(api.status, 404);
    assert.equal(api.json().code, "not_found");
    const post = await get("/chats/3f2a", html, "POST");
    assert.notEqual(post.body, indexHtml, "only GET and HEAD navigations get the console");
    for (const path of ["/healthz", "/readyz", "/.well-known/jwks.json", "/crm.db.v1.DbAuthService/LoginDB", "/chats/abc/messages", "/timer/get-working-timer", "/auth/login"]) {
      const res = await get(path, html);
      assert.notEqual(res.body, indexHtml, `${path} must not get the console`);
    }
  });
});

describe("the e-mailed links through a gateway with no console (an empty CRM_GW_WEB_ROOT, as the chart's today)", { skip, timeout: 120_000 }, () => {
  let gw: GatewayFixture;
  const web = mkdtempSync(join(tmpdir(), "crm-gw-noweb-"));
  before(async () => {
    gw = await startGatewayFixture({ vars: { CRM_GW_WEB_ROOT: web } });
  });
  after(async () => {
    await gw?.close();
    rmSync(web, { recursive: true, force: true });
  });

  it("redirect to auth's plain pages, query kept (the browser keeps the #token fragment)", async () => {
    for (const [path, to] of [
      ["/accept-invite", "/account-links/accept-invite"],
      ["/reset-password?token=abc", "/account-links/reset-password?token=abc"],
    ] as const) {
      const res = await request({ port: gw.port, ca: gw.ca, path, headers: { accept: "text/html" } });
      assert.equal(res.status, 302, `${path}: ${res.body}`);
      assert.equal(res.headers.location, to, path);
    }
    const nav = await request({ port: gw.port, ca: gw.ca, path: "/chats", headers: { accept: "text/html" } });
    assert.equal(nav.status, 404, "other navigations stay the JSON 404 without a console");
  });
});

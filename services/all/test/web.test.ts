/**
 * The console's static files on the server's port (services/all/src/web.ts): cache headers, CSP,
 * precompressed bodies, the SPA fallback — and that it never answers for a path another route owns.
 */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { brotliCompressSync, gunzipSync, gzipSync } from "node:zlib";
import { after, before, test } from "node:test";
import { createLogger, startServer, type RunningServer, type ServiceModule } from "@crm/kit";
import { createWebModule } from "../src/web.ts";

const log = createLogger("web-test", "error");
const nobody = { verify: () => Promise.reject(new Error("no tokens in this test")) };
const dir = mkdtempSync(join(tmpdir(), "crm-web-"));
const indexHtml = `<!doctype html><html><head><script type="module" src="/assets/app-abc123.js"></script></head><body><div id="root"></div></body></html>`;
const js = `console.log(${JSON.stringify("x".repeat(2000))});`;
const jsBr = brotliCompressSync(js);
mkdirSync(join(dir, "assets"));
writeFileSync(join(dir, "index.html"), indexHtml);
writeFileSync(join(dir, "favicon.svg"), "<svg/>");
writeFileSync(join(dir, "assets", "app-abc123.js"), js);
writeFileSync(join(dir, "assets", "app-abc123.js.br"), jsBr);
writeFileSync(join(dir, "assets", "app-abc123.js.gz"), gzipSync(js));

/** Another module's page, as auth's plain pages for e-mailed links are: it must win over the SPA fallback. */
const invitePage: ServiceModule = {
  name: "invite",
  services: [],
  routes: () => {},
  http(req, res) {
    if (!req.url?.startsWith("/account-links/accept-invite")) return false;
    res.writeHead(200, { "content-type": "text/plain" });
    res.end("invite page");
    return true;
  },
};

let server: RunningServer;
let bare: RunningServer;
let base: string;
before(async () => {
  const opts = { port: 0, host: "127.0.0.1", log, verifier: nobody, readMaxBytes: 1 << 20, shutdownTimeoutMs: 1_000 };
  server = await startServer({ ...opts, modules: [invitePage, createWebModule({ dir, log })] });
  bare = await startServer({ ...opts, modules: [createWebModule({ dir: join(dir, "missing"), log })] });
  base = `http://127.0.0.1:${server.port}`;
});
after(async () => {
  await Promise.all([server?.close(), bare?.close()]);
  rmSync(dir, { recursive: true, force: true });
});

const html = { accept: "text/html,application/xhtml+xml,*/*;q=0.8" };

test("index.html: no-cache with an ETag (304 when unchanged), a strict CSP, security headers", async () => {
  const res = await fetch(`${base}/`, { headers: html });
  assert.equal(res.status, 200);
  assert.equal(await res.text(), indexHtml);
  assert.equal(res.headers.get("cache-control"), "no-cache");
  assert.match(res.headers.get("content-type") ?? "", /^text\/html/);
  const csp = res.headers.get("content-security-policy") ?? "";
  for (const d of ["default-src 'self'", "script-src 'self'", "connect-src 'self'", "object-src 'none'", "frame-ancestors 'none'"]) assert.ok(csp.includes(d), `CSP has ${d}: ${csp}`);
  assert.ok(!csp.includes("unsafe-inline") && !csp.includes("unsafe-eval"), "no inline code allowed");
  assert.equal(res.headers.get("x-content-type-options"), "nosniff");
  const etag = res.headers.get("etag");
  assert.ok(etag);
  const again = await fetch(`${base}/`, { headers: { ...html, "if-none-match": etag } });
  assert.equal(again.status, 304);
  assert.equal(await again.text(), "");
});

test("hashed assets: a year's immutable cache; brotli and gzip from the build's precompressed copies", async () => {
  const plain = await fetch(`${base}/assets/app-abc123.js`, { headers: { "accept-encoding": "identity" } });
  assert.equal(plain.status, 200);
  assert.equal(plain.headers.get("cache-control"), "public, max-age=31536000, immutable");
  assert.match(plain.headers.get("content-type") ?? "", /^text\/javascript/);
  assert.equal(plain.headers.get("content-encoding"), null);
  assert.equal(await plain.text(), js);

  const http = await import("node:http");
  const raw = (encoding: string) =>
    new Promise<{ headers: Record<string, unknown>; body: Buffer }>((resolve, reject) => {
      http.get(`${base}/assets/app-abc123.js`, { headers: { "accept-encoding": encoding } }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve({ headers: res.headers, body: Buffer.concat(chunks) }));
      }).on("error", reject);
    });
  const br = await raw("gzip, deflate, br");
  assert.equal(br.headers["content-encoding"], "br");
  assert.deepEqual(br.body, jsBr, "the precompressed file, byte for byte");
  const gz = await raw("gzip");
  assert.equal(gz.headers["content-encoding"], "gzip");
  assert.equal(gunzipSync(gz.body).toString(), js);
  assert.equal(br.headers.vary, "accept-encoding");
  assert.equal((await fetch(`${base}/assets/app-abc123.js.br`)).status, 404, "the .br copy is not a URL of its own");
});

test("SPA fallback: an unknown path asking for HTML gets index.html; anything else is left to the API", async () => {
  for (const path of ["/chats", "/chats/3f2a", "/timers?week=1", "/login", "/admin/members", "/accept-invite", "/reset-password?token=abc"]) {
    const res = await fetch(`${base}${path}`, { headers: html });
    assert.equal(res.status, 200, path);
    assert.equal(await res.text(), indexHtml, path);
    assert.equal(res.headers.get("cache-control"), "no-cache", path);
  }
  const api = await fetch(`${base}/chats/3f2a`, { headers: { accept: "application/json" } });
  assert.equal(api.status, 404, "a non-HTML GET of an unknown path is the API's 404");
  assert.equal(((await api.json()) as { code: string }).code, "not_found");
  const head = await fetch(`${base}/chats/3f2a`, { method: "HEAD", headers: html });
  assert.equal(head.status, 200);
  assert.equal(await head.text(), "");
});

test("never shadows another route: RPC paths, REST aliases, health, metrics, well-known, other modules' pages", async () => {
  const notIndex = async (method: string, path: string) => {
    const res = await fetch(`${base}${path}`, { method, headers: html });
    const body = await res.text();
    assert.notEqual(body, indexHtml, `${method} ${path} must not get the console`);
    return { status: res.status, body };
  };
  assert.deepEqual(await notIndex("GET", "/account-links/accept-invite?token=abc"), { status: 200, body: "invite page" });
  assert.equal((await notIndex("GET", "/account-links/reset-password?token=abc")).status, 404, "reserved for auth's plain pages");
  assert.equal((await notIndex("GET", "/healthz")).status, 200);
  assert.equal((await notIndex("GET", "/readyz")).status, 200);
  assert.equal((await notIndex("GET", "/metrics")).status, 200);
  await notIndex("GET", "/grpc.health.v1.Health/Check");
  await notIndex("GET", "/crm.chat.v1.ChatService/ListChats?connect=v1&encoding=json&message=%7B%7D");
  await notIndex("GET", "/.well-known/jwks.json");
  await notIndex("GET", "/timer/get-working-timer"); // REST alias (GET)
  await notIndex("GET", "/chats/abc/messages"); // REST alias with a path parameter
  await notIndex("GET", "/auth/login"); // a POST alias: a GET there is the API's 405, not the console
  await notIndex("GET", "/chats/abc/sendMessage");
  await notIndex("POST", "/chats"); // only GET and HEAD are ever static
  await notIndex("GET", "/../package.json");
});

test("no build: navigations get a 503 naming the build command; other paths are untouched", async () => {
  const b = `http://127.0.0.1:${bare.port}`;
  const res = await fetch(`${b}/`, { headers: html });
  assert.equal(res.status, 503);
  assert.match(await res.text(), /npm run build:web/);
  assert.equal((await fetch(`${b}/assets/app-abc123.js`)).status, 404);
  assert.equal((await fetch(`${b}/healthz`)).status, 200);
});

test("no build: the e-mailed links redirect to auth's plain pages, query kept (the browser keeps the fragment)", async () => {
  const b = `http://127.0.0.1:${bare.port}`;
  for (const [path, to] of [
    ["/accept-invite", "/account-links/accept-invite"],
    ["/reset-password?token=abc", "/account-links/reset-password?token=abc"],
  ] as const) {
    const res = await fetch(`${b}${path}`, { headers: html, redirect: "manual" });
    assert.equal(res.status, 302, path);
    assert.equal(res.headers.get("location"), to, path);
    assert.equal(res.headers.get("cache-control"), "no-store");
  }
});

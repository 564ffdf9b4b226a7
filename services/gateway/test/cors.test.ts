/**
 * CORS at the gateway (njs/cors.js, CRM_GW_CORS_ORIGINS): a listed origin's preflight for a
 * Connect or gRPC-Web call is answered 204 by nginx before any token check, and its calls (and
 * their errors) carry the headers a browser app on that origin needs; any other origin, and every
 * origin when none is configured (the default), gets no CORS header at all.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { needNone } from "@crm/testkit";
import { nginxProblem } from "../run.mjs";
import { startGatewayFixture, type GatewayFixture } from "./fixture.ts";
import { request, type Res } from "./helpers.ts";

const skip = needNone(nginxProblem());
const app = "https://app.example.com";
const dev = "http://localhost:5173";
const sendMessage = "/crm.chat.v1.ChatService/SendMessage";

function preflight(gw: GatewayFixture, origin: string, path = sendMessage): Promise<Res> {
  return request({
    port: gw.port,
    ca: gw.ca,
    path,
    method: "OPTIONS",
    headers: { origin, "access-control-request-method": "POST", "access-control-request-headers": "content-type,connect-protocol-version,connect-timeout-ms,authorization" },
  });
}

const corsHeaders = (res: Res) => Object.keys(res.headers).filter((h) => h.startsWith("access-control-"));

describe("CORS with CRM_GW_CORS_ORIGINS set", { skip, timeout: 120_000 }, () => {
  let gw: GatewayFixture;
  before(async () => {
    gw = await startGatewayFixture({ vars: { CRM_GW_CORS_ORIGINS: `${app}, ${dev}` } });
  });
  after(async () => {
    await gw?.close();
  });

  it("a listed origin's preflight: 204 from the gateway itself, before any token check", async () => {
    for (const [origin, path] of [
      [app, sendMessage],
      [dev, "/crm.auth.v1.AuthService/Login"],
      [app, "/crm.chat.v1.ChatService/Subscribe"],
    ] as const) {
      const seen = gw.stub.seen.length;
      const res = await preflight(gw, origin, path);
      assert.equal(res.status, 204, `${origin} ${path}: ${res.body}`);
      assert.equal(res.headers["access-control-allow-origin"], origin, "the origin itself, never *");
      assert.equal(res.headers["access-control-allow-credentials"], "true");
      assert.match(String(res.headers["access-control-allow-methods"]), /\bPOST\b/);
      assert.match(String(res.headers["access-control-allow-methods"]), /\bGET\b/, "Connect GET of side-effect-free RPCs");
      const allowed = String(res.headers["access-control-allow-headers"]).toLowerCase();
      for (const h of ["content-type", "connect-protocol-version", "connect-timeout-ms", "grpc-timeout", "x-grpc-web", "x-user-agent", "authorization"]) assert.ok(allowed.includes(h), `allows ${h}: ${allowed}`);
      assert.match(String(res.headers["access-control-max-age"]), /^\d+$/);
      assert.match(String(res.headers.vary), /Origin/);
      assert.match(String(res.headers["strict-transport-security"]), /max-age=/, "the gateway's own headers stay");
      assert.equal(gw.stub.seen.length, seen, "no service saw the preflight");
    }
  });

  it("the calls of a listed origin, and their errors, can be read by it (Allow-Origin, exposed gRPC/Connect headers)", async () => {
    const token = await gw.tokens.sign({ sub: "00000000-0000-4000-8000-000000000042", cid: "00000000-0000-4000-8000-000000000007", role: "member", sid: "00000000-0000-4000-8000-000000000009" });
    const ok = await request({ port: gw.port, ca: gw.ca, path: sendMessage, method: "POST", headers: { origin: app, "content-type": "application/json", authorization: `Bearer ${token}` }, body: "{}" });
    assert.equal(ok.status, 200, ok.body);
    assert.equal(ok.headers["access-control-allow-origin"], app);
    assert.equal(ok.headers["access-control-allow-credentials"], "true");
    const exposed = String(ok.headers["access-control-expose-headers"]).toLowerCase();
    for (const h of ["grpc-status", "grpc-message", "grpc-status-details-bin", "crm-error"]) assert.ok(exposed.includes(h), `exposes ${h}: ${exposed}`);
    const refused = await request({ port: gw.port, ca: gw.ca, path: sendMessage, method: "POST", headers: { origin: dev, "content-type": "application/json" }, body: "{}" });
    assert.equal(refused.status, 401, refused.body);
    assert.equal(refused.headers["access-control-allow-origin"], dev, "the app can read why it was refused");
  });

  it("any other origin gets no CORS header: not on the preflight, not on the call", async () => {
    for (const origin of ["https://evil.example", "https://app.example.com.evil.example", "null", "https://APP.example.com"]) {
      const pre = await preflight(gw, origin);
      assert.notEqual(pre.status, 204, origin);
      assert.deepEqual(corsHeaders(pre), [], `${origin}: ${JSON.stringify(pre.headers)}`);
      const call = await request({ port: gw.port, ca: gw.ca, path: sendMessage, method: "POST", headers: { origin, "content-type": "application/json" }, body: "{}" });
      assert.deepEqual(corsHeaders(call), [], origin);
    }
  });
});

describe("CORS by default (no origins configured)", { skip, timeout: 120_000 }, () => {
  let gw: GatewayFixture;
  before(async () => {
    gw = await startGatewayFixture();
  });
  after(async () => {
    await gw?.close();
  });

  it("no origin gets a CORS header, and preflights are not answered 204", async () => {
    const pre = await preflight(gw, app);
    assert.notEqual(pre.status, 204);
    assert.deepEqual(corsHeaders(pre), []);
    assert.equal(pre.headers.vary, undefined);
  });
});

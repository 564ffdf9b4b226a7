/**
 * API keys at the gateway: a `crm_live_…` Bearer key is never checked by the JWT verifier; auth
 * exchanges it (ApiKeyService/ExchangeApiKey, the stub here) for an access token, which the
 * gateway caches by the key's hash and sends on to the service instead of the key. Unknown keys are
 * refused before any service sees them, and each key has its own rate limit.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { needNone } from "@crm/testkit";
import { nginxProblem } from "../run.mjs";
import { startGatewayFixture, type GatewayFixture } from "./fixture.ts";
import { request } from "./helpers.ts";
import { STUB_API_KEY, STUB_API_KEY_COMPANY, STUB_API_KEY_ID, STUB_API_KEY_USER } from "./stub.ts";

const skip = needNone(nginxProblem());
const check = "/crm.auth.v1.AuthService/Check";

describe("API keys at the gateway", { skip, timeout: 120_000 }, () => {
  let gw: GatewayFixture;
  before(async () => {
    gw = await startGatewayFixture({ vars: { CRM_GW_API_KEY_RATE: "60r/m", CRM_GW_API_KEY_BURST: "5" } });
  });
  after(async () => {
    await gw?.close();
  });
  const call = (path: string, key: string) =>
    request({ port: gw.port, ca: gw.ca, path, method: "POST", headers: { "content-type": "application/json", authorization: `Bearer ${key}` }, body: "{}" });
  const exchanges = () => gw.stub.seen.filter((s) => s.path === "/crm.auth.v1.ApiKeyService/ExchangeApiKey");

  it("a key is exchanged once with auth; the service gets the key's identity and the exchanged token, never the key", async () => {
    const res = await call(check, STUB_API_KEY);
    assert.equal(res.status, 200, res.body);
    assert.deepEqual(res.json(), { userId: STUB_API_KEY_USER, companyId: STUB_API_KEY_COMPANY, role: "ROLE_MEMBER", sessionId: STUB_API_KEY_ID });
    const [ex] = exchanges();
    assert.ok(ex, "auth was asked");
    assert.deepEqual([ex.host, ex.peerCn, ex.realIp, ex.body ?? ""], ["auth", "gateway", "127.0.0.1", ""]);
    const seen = gw.stub.seen.at(-1)!;
    assert.equal(seen.path, check);
    assert.equal(seen.authorization, "Bearer exchanged-1", "the exchanged token, not the key");
    const echo = await call("/crm.records.v1.CompanyService/ListCompanies", STUB_API_KEY);
    assert.equal(echo.status, 200, echo.body);
    assert.equal(echo.json().userId, STUB_API_KEY_USER);
    assert.equal(gw.stub.seen.at(-1)!.authorization, "Bearer exchanged-1");
    assert.equal(exchanges().length, 1, "answered from the gateway's cache after the first call");
  });

  it("an unknown key is 401 JSON and reaches no service; ApiKeyService and AuditService are routed", async () => {
    const before = gw.stub.seen.filter((s) => s.path !== "/crm.auth.v1.ApiKeyService/ExchangeApiKey").length;
    const res = await call(check, `crm_live_ffffffffffff_${"Z".repeat(43)}`);
    assert.equal(res.status, 401, res.body);
    assert.equal(res.json().code, "unauthenticated");
    assert.equal(gw.stub.seen.filter((s) => s.path !== "/crm.auth.v1.ApiKeyService/ExchangeApiKey").length, before);
    const token = await gw.tokens.sign({});
    for (const [path, host] of [["/crm.auth.v1.ApiKeyService/ListApiKeys", "auth"], ["/crm.admin.v1.AuditService/ListAuditEvents", "admin"]] as const) {
      const r = await request({ port: gw.port, ca: gw.ca, path, method: "POST", headers: { "content-type": "application/json", authorization: `Bearer ${token}` }, body: "{}" });
      assert.equal(gw.stub.seen.at(-1)!.path, path, r.body);
      assert.equal(gw.stub.seen.at(-1)!.host, host);
    }
    const noToken = await request({ port: gw.port, ca: gw.ca, path: "/crm.admin.v1.AuditService/ListAuditEvents", method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
    assert.equal(noToken.status, 401);
  });

  it("each key has its own rate limit at the gateway: 429 past the burst", async () => {
    const codes: number[] = [];
    for (let i = 0; i < 12; i++) codes.push((await call("/crm.records.v1.CompanyService/ListCompanies", STUB_API_KEY)).status);
    assert.ok(codes.includes(429), codes.join(","));
    // A session token is not counted in the key's bucket.
    const token = await gw.tokens.sign({});
    const res = await request({ port: gw.port, ca: gw.ca, path: "/crm.records.v1.CompanyService/ListCompanies", method: "POST", headers: { "content-type": "application/json", authorization: `Bearer ${token}` }, body: "{}" });
    assert.equal(res.status, 200, res.body);
  });
});

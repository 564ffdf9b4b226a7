/**
 * One port, every protocol: Connect JSON over HTTP/1.1, gRPC over h2c, gRPC-Web, gRPC health and
 * server reflection (buf curl lists and calls services without local protos), /healthz, /readyz,
 * the JWKS document, internal crm.db.v1 hidden, and request size limits.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { after, before, test } from "node:test";
import { promisify } from "node:util";
import { createClient } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-node";
import { AuthService } from "@crm/gen/crm/auth/v1/auth_pb";
import { Health, HealthCheckResponse_ServingStatus } from "@crm/gen/grpc/health/v1/health_pb";
import { type TestApp } from "@crm/testkit";
import { startTestApp } from "./app.js";
import { expectCode, owner } from "../../auth/test/flow.js";
import { Code } from "@connectrpc/connect";

const run = promisify(execFile);
const buf = new URL("../../../node_modules/.bin/buf", import.meta.url).pathname;
let app: TestApp;
before(async () => {
  app = await startTestApp({ READ_MAX_BYTES: "65536" });
});
after(async () => app?.close());

test("Connect, gRPC (h2c) and gRPC-Web on the same port", async () => {
  const reg = await app.client(AuthService).registerCompany(owner("proto"));
  const viaGrpc = await app.client(AuthService, { protocol: "grpc", token: reg.accessToken }).check({});
  assert.equal(viaGrpc.userId, reg.userId);
  const web = createClient(AuthService, createGrpcWebTransport({ baseUrl: app.baseUrl, httpVersion: "1.1", interceptors: [(next) => (req) => (req.header.set("authorization", `Bearer ${reg.accessToken}`), next(req))] }));
  assert.equal((await web.check({})).companyId, reg.companyId);
});

test("grpc.health.v1 and HTTP probes", async () => {
  const health = app.client(Health, { protocol: "grpc" });
  assert.equal((await health.check({})).status, HealthCheckResponse_ServingStatus.SERVING);
  assert.equal((await health.check({ service: "crm.auth.v1.AuthService" })).status, HealthCheckResponse_ServingStatus.SERVING);
  await expectCode(health.check({ service: "nope.Service" }), Code.NotFound);
  assert.equal((await fetch(`${app.baseUrl}/healthz`)).status, 200);
  assert.equal((await fetch(`${app.baseUrl}/readyz`)).status, 200);
  const jwks = (await (await fetch(`${app.baseUrl}/.well-known/jwks.json`)).json()) as { keys: { kty: string; alg: string; kid: string }[] };
  assert.equal(jwks.keys[0]?.kty, "RSA");
  assert.equal(jwks.keys[0]?.alg, "RS256");
  const rpc = await app.client(AuthService).getJwks({});
  assert.equal(rpc.keys[0]?.kid, jwks.keys[0]?.kid);
});

test("server reflection: buf curl lists services and calls one with no local protos", async () => {
  const list = await run(buf, ["curl", "--protocol", "grpc", "--http2-prior-knowledge", "--list-services", app.baseUrl]);
  for (const s of ["crm.auth.v1.AuthService", "crm.chat.v1.ChatService", "grpc.health.v1.Health"]) assert.match(list.stdout, new RegExp(s.replace(/\./g, "\\.")));
  assert.doesNotMatch(list.stdout, /crm\.db\.v1/, "internal services are not exposed");
  const call = await run(buf, ["curl", "--protocol", "grpc", "--http2-prior-knowledge", "--data", JSON.stringify(owner("bufcurl")), `${app.baseUrl}/crm.auth.v1.AuthService/RegisterCompany`]);
  assert.match(JSON.parse(call.stdout).companyId, /^[0-9a-f-]{36}$/);
});

test("internal crm.db.v1 services are not reachable from outside", async () => {
  const res = await fetch(`${app.baseUrl}/crm.db.v1.DbAuthService/LoginDB`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ email: "owner-proto@example.com" }) });
  assert.equal(res.status, 404);
  assert.equal(((await res.json()) as { code: string }).code, "not_found");
});

test("a request over the size limit gets resource_exhausted, for Connect and gRPC alike", async () => {
  const big = { ...owner("big"), address: "x".repeat(100_000) };
  await expectCode(app.client(AuthService).registerCompany(big), Code.ResourceExhausted);
  await expectCode(app.client(AuthService, { protocol: "grpc" }).registerCompany(big), Code.ResourceExhausted);
});

test("unknown JSON fields and wrong types are invalid_argument with a message", async () => {
  const res = await fetch(`${app.baseUrl}/crm.auth.v1.AuthService/Login`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ emial: "typo@example.com", password: "x" }) });
  assert.equal(res.status, 400);
  const body = (await res.json()) as { code: string; message: string };
  assert.equal(body.code, "invalid_argument");
  assert.match(body.message, /emial/);
});

test("the original REST routes map onto the same handlers (all-in-one)", async () => {
  const reg = await fetch(`${app.baseUrl}/auth/register`, { method: "POST", body: JSON.stringify(owner("rest")) });
  assert.equal(reg.status, 200);
  const login = await fetch(`${app.baseUrl}/auth/login`, { method: "POST", body: JSON.stringify({ email: owner("rest").email, password: owner("rest").password }) });
  const { accessToken, refreshToken } = (await login.json()) as { accessToken: string; refreshToken: string };
  const check = await fetch(`${app.baseUrl}/auth/check`, { method: "POST", headers: { cookie: `access_token=${accessToken}` } });
  assert.equal(check.status, 200);
  assert.equal(((await check.json()) as { role: string }).role, "ROLE_OWNER");
  const refreshed = await fetch(`${app.baseUrl}/auth/refresh`, { method: "POST", headers: { cookie: `refresh_token=${refreshToken}` } });
  assert.equal(refreshed.status, 200, "the refresh token cookie is enough");
  const bad = await fetch(`${app.baseUrl}/auth/login`, { method: "POST", body: "{oops" });
  assert.equal(bad.status, 400);
  assert.deepEqual(await bad.json(), { code: "invalid_argument", message: "the request body is not valid JSON" });
  const unauth = await fetch(`${app.baseUrl}/chats/00000000-0000-0000-0000-000000000000/messages?limit=5`);
  assert.equal(unauth.status, 401);
  assert.equal(((await unauth.json()) as { code: string }).code, "unauthenticated");
  // A REST path with another method: 405 JSON with Allow, as the gateway answers (not 404).
  const wrong = await fetch(`${app.baseUrl}/auth/login`, { method: "PUT", body: "{}" });
  assert.equal(wrong.status, 405);
  assert.equal(wrong.headers.get("allow"), "POST");
  assert.deepEqual(await wrong.json(), { code: "unimplemented", message: "HTTP method PUT is not allowed on /auth/login; use POST" });
  const wrongGet = await fetch(`${app.baseUrl}/chats/00000000-0000-0000-0000-000000000000/sendMessage`, { method: "DELETE" });
  assert.equal(wrongGet.status, 405);
  assert.equal(((await wrongGet.json()) as { code: string }).code, "unimplemented");
  // A wrong content type on an RPC path: 415 JSON.
  const plain = await fetch(`${app.baseUrl}/crm.auth.v1.AuthService/Login`, { method: "POST", headers: { "content-type": "text/plain" }, body: "{}" });
  assert.equal(plain.status, 415);
  assert.equal(((await plain.json()) as { code: string }).code, "unimplemented");
});

/**
 * The services' token rules: the table shared with the gateway (@crm/testkit/token-cases) run
 * against a real kit server (Connect over HTTP, the auth interceptor, createTokenVerifier), the
 * way every service checks a caller. services/gateway/test runs the same table through nginx.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { AuthService, CheckResponseSchema, Role } from "@crm/gen/crm/auth/v1/auth_pb";
import { create } from "@bufbuild/protobuf";
import { CLOCK_SKEW_SECONDS as tableSkew, MAX_TOKEN_LENGTH as tableMax, tokenCases } from "@crm/testkit/token-cases";
import { ensureJwtKeys } from "../../../scripts/certs.mjs";
import { CLOCK_SKEW_SECONDS, MAX_TOKEN_LENGTH, createTokenVerifier, principalOf } from "./auth.js";
import { createLogger } from "./logger.js";
import { memoryRevocations } from "./revocations.js";
import { startServer, type RunningServer, type ServiceModule } from "./server.js";

const roles = { owner: Role.OWNER, admin: Role.ADMIN, member: Role.MEMBER };
const dir = mkdtempSync(join(tmpdir(), "crm-token-rules-"));
const keys = ensureJwtKeys(dir);
const revocations = memoryRevocations();
const verifier = createTokenVerifier({ jwks: JSON.parse(readFileSync(keys.jwksFile, "utf8")), issuer: "crm-auth", audience: "crm-api", revocations });

const checker: ServiceModule = {
  name: "auth",
  services: [AuthService],
  routes(router) {
    router.service(AuthService, {
      check(_req, ctx) {
        const p = principalOf(ctx);
        return create(CheckResponseSchema, { userId: p.userId, companyId: p.companyId, role: roles[p.role], sessionId: p.sessionId });
      },
    });
  },
};

let server: RunningServer;
before(async () => {
  server = await startServer({ modules: [checker], port: 0, host: "127.0.0.1", log: createLogger("test", "silent"), verifier, revocations, readMaxBytes: 1 << 20, shutdownTimeoutMs: 1000 });
});
after(async () => {
  await server?.close();
  rmSync(dir, { recursive: true, force: true });
});

test("the kit and the gateway use the table's clock skew and length limit", () => {
  assert.equal(CLOCK_SKEW_SECONDS, tableSkew);
  assert.equal(MAX_TOKEN_LENGTH, tableMax);
  const njs = readFileSync(join(import.meta.dirname, "..", "..", "..", "services", "gateway", "njs", "jwt.js"), "utf8");
  assert.match(njs, new RegExp(`const CLOCK_SKEW = ${tableSkew};`));
  assert.match(njs, new RegExp(`const MAX_TOKEN = ${tableMax};`));
});

test("every case of the shared token table is accepted or refused by a service as by the gateway", async () => {
  const client = createClient(AuthService, createConnectTransport({ baseUrl: `http://127.0.0.1:${server.port}`, httpVersion: "1.1" }));
  const cases = await tokenCases({ privatePem: readFileSync(keys.privateKeyFile, "utf8"), kid: keys.kid, issuer: "crm-auth", audience: "crm-api" });
  assert.ok(cases.filter((c) => c.valid).length >= 5 && cases.filter((c) => !c.valid).length >= 40, "a table worth the name");
  const wrong: string[] = [];
  for (const c of cases) {
    try {
      const res = await client.check({}, { headers: { authorization: `Bearer ${c.token}` } });
      const sub = JSON.parse(Buffer.from(c.token.split(".")[1]!, "base64url").toString()).sub;
      assert.equal(res.userId, sub, c.name);
      if (!c.valid) wrong.push(`${c.name}: accepted`);
    } catch (err) {
      const e = ConnectError.from(err);
      if (c.valid) wrong.push(`${c.name}: refused (${e.rawMessage})`);
      else if (e.code !== Code.Unauthenticated) wrong.push(`${c.name}: ${Code[e.code]} ${e.rawMessage}, not unauthenticated`);
    }
  }
  assert.deepEqual(wrong, []);
});

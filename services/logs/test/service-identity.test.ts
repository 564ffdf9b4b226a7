/**
 * Service identities of the logs service (issue 14, item 9): only the certificate names on its
 * allow-list (TLS_PEER_SERVICES, default: the services that call it) may write log lines as a
 * service, naming any company and user. Any other certificate the CA signed, such as the dev curl
 * certificate of scripts/certs.mjs (CN=client), is an ordinary TLS client: without a user's token
 * it is refused, with one it writes as that user only. The server is the kit's, configured from
 * the same TLS_* settings a deployed logs process reads.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { commonEnv, createLogger, createTokenVerifier, loadConfig, loadTls, memoryRevocations, startServer, type RunningServer, type ServiceModule } from "@crm/kit";
import { LogsService } from "@crm/gen/crm/logs/v1/logs_pb";
import { need } from "@crm/testkit";
import { SignJWT, importPKCS8 } from "jose";
import { z } from "zod";
import { ensureDevPki, ensureJwtKeys } from "../../../scripts/certs.mjs";
import { logsService } from "../src/logs-service.js";
import type { LogRecord } from "../src/validation.js";

const hasOpenssl = spawnSync("openssl", ["version"]).status === 0;
const dir = mkdtempSync(join(tmpdir(), "crm-logs-identity-"));
const keys = ensureJwtKeys(join(dir, "keys"));
let pki: ReturnType<typeof ensureDevPki>;
after(() => rmSync(dir, { recursive: true, force: true }));
const victim = { companyId: "11111111-1111-4111-8111-111111111111", userId: "22222222-2222-4222-8222-222222222222" };
const me = { companyId: "33333333-3333-4333-8333-333333333333", userId: "44444444-4444-4444-8444-444444444444" };
let written: LogRecord[] = [];

/** A logs server started from TLS_* settings, as runService does. */
async function logsServer(extra: Record<string, string> = {}): Promise<RunningServer> {
  const cfg = loadConfig(z.object(commonEnv), { TLS_CERT_FILE: pki.cert("logs"), TLS_KEY_FILE: pki.key("logs"), TLS_CA_FILE: pki.ca, ...extra });
  const revocations = memoryRevocations();
  const verifier = createTokenVerifier({ jwks: JSON.parse(readFileSync(keys.jwksFile, "utf8")), issuer: "crm-auth", audience: "crm-api", revocations });
  const sink = { push: (r: LogRecord[]) => void written.push(...r), pushAndWait: async (r: LogRecord[]) => void written.push(...r), flush: async () => {}, close: async () => {} };
  const module: ServiceModule = { name: "logs", services: [LogsService], routes: (r) => void r.service(LogsService, logsService({ sink })) };
  return startServer({ modules: [module], port: 0, host: "127.0.0.1", log: createLogger("logs", "silent"), verifier, revocations, tls: loadTls(cfg, "logs"), readMaxBytes: 1 << 20, shutdownTimeoutMs: 1_000 });
}

const as = (server: RunningServer, cert: string) =>
  createClient(LogsService, createGrpcTransport({ baseUrl: `https://localhost:${server.port}`, nodeOptions: { ca: readFileSync(pki.ca), cert: readFileSync(pki.cert(cert)), key: readFileSync(pki.key(cert)) } }));

const entry = { name: "probe", message: "written as someone else", companyId: victim.companyId, userId: victim.userId };

async function code(p: Promise<unknown>): Promise<Code | "ok"> {
  try {
    await p;
    return "ok";
  } catch (err) {
    return ConnectError.from(err).code;
  }
}

describe("logs: which certificates are service identities", { skip: need("openssl", hasOpenssl, "apt-get install -y openssl") }, () => {
  let server: RunningServer;
  let userToken: string;
  before(async () => {
    pki = ensureDevPki(join(dir, "certs"), { names: ["logs", "auth", "admin"] });
    server = await logsServer();
    const now = Math.floor(Date.now() / 1000);
    userToken = await new SignJWT({ cid: me.companyId, sid: "55555555-5555-4555-8555-555555555555", role: "member" })
      .setProtectedHeader({ alg: "RS256", kid: keys.kid, typ: "at+jwt" })
      .setIssuer("crm-auth").setAudience("crm-api").setSubject(me.userId).setIssuedAt(now).setExpirationTime(now + 300)
      .sign(await importPKCS8(readFileSync(keys.privateKeyFile, "utf8"), "RS256"));
  });
  after(async () => {
    await server?.close();
  });

  it("the dev curl certificate (CN=client, signed by the CA) cannot write log lines as another company", async () => {
    written = [];
    assert.equal(await code(as(server, "client").saveLogs({ entries: [entry] })), Code.Unauthenticated);
    assert.deepEqual(written, [], "nothing written");
  });

  it("with a user's token it writes as that user, whatever the entry names", async () => {
    written = [];
    assert.equal((await as(server, "client").saveLogs({ entries: [entry] }, { headers: { authorization: `Bearer ${userToken}` } })).accepted, 1);
    assert.deepEqual(written.map((r) => [r.companyId, r.userId]), [[me.companyId, me.userId]]);
  });

  it("the gateway's certificate is no service identity for writing logs either (it only passes users' calls on)", async () => {
    written = [];
    assert.equal(await code(as(server, "gateway").saveLogs({ entries: [entry] })), Code.Unauthenticated);
    assert.deepEqual(written, []);
  });

  it("real peers still work: a service that calls logs (auth, admin) writes as itself, naming the company", async () => {
    written = [];
    for (const peer of ["auth", "admin"]) assert.equal((await as(server, peer).saveLogs({ entries: [entry] })).accepted, 1, peer);
    assert.deepEqual(written.map((r) => r.companyId), [victim.companyId, victim.companyId]);
  });

  it("TLS_PEER_SERVICES replaces the default list", async () => {
    const narrow = await logsServer({ TLS_PEER_SERVICES: "gateway, admin" });
    try {
      written = [];
      assert.equal(await code(as(narrow, "auth").saveLogs({ entries: [entry] })), Code.Unauthenticated, "auth is not on this list");
      assert.equal((await as(narrow, "admin").saveLogs({ entries: [entry] })).accepted, 1);
      assert.equal(written.length, 1);
    } finally {
      await narrow.close();
    }
    assert.throws(() => loadConfig(z.object(commonEnv), { TLS_PEER_SERVICES: "gateway;auth" }), /TLS_PEER_SERVICES.*comma-separated list of certificate names/);
  });
});

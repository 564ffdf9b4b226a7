/**
 * The kit's server and interceptors: error mapping and recovery in memory (createRouterTransport),
 * then the real server with TLS and client certificates: a peer's certificate CN names it.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { CacheService } from "@crm/gen/crm/cache/v1/cache_pb";
import { Health } from "@crm/gen/grpc/health/v1/health_pb";
import { need } from "@crm/testkit";
import { requirePeer, type TokenVerifier } from "./auth.js";
import { AppError, invalid } from "./errors.js";
import { authInterceptor, contextInterceptor, errorInterceptor } from "./interceptors.js";
import { createLogger } from "./logger.js";
import { startServer, type ServiceModule } from "./server.js";

const log = createLogger("test", "silent");
const nobody: TokenVerifier = { verify: async () => { throw new AppError("token_invalid", "no tokens in this test"); } };

let releaseSlow: () => void = () => {};
let slowStartedResolve: () => void = () => {};
const slowStarted = new Promise<void>((r) => (slowStartedResolve = r));

// A module (borrowing CacheService's shape) whose Get behaves according to the key.
const GET = `/${CacheService.typeName}/Get`;
const probe: ServiceModule = {
  name: "probe",
  services: [CacheService],
  publicMethods: [GET],
  routes(router) {
    router.service(CacheService, {
      async get(req, ctx) {
        if (req.key === "slow") {
          slowStartedResolve();
          await new Promise<void>((r) => (releaseSlow = r));
          return { value: new Uint8Array([2]) };
        }
        if (req.key === "bug") throw new TypeError("undefined is not a function");
        if (req.key === "invalid") throw invalid([{ field: "key", description: "must be nice" }]);
        if (req.key === "peer") return { value: new TextEncoder().encode(requirePeer(ctx, "auth")) };
        return { value: new Uint8Array([1]) };
      },
    });
  },
};

async function code(p: Promise<unknown>): Promise<[Code, string, string | null]> {
  try {
    await p;
    return [Code.Unknown, "resolved", null];
  } catch (err) {
    const e = ConnectError.from(err);
    return [e.code, e.rawMessage, e.metadata.get("crm-error")];
  }
}

test("in memory: AppError → its Connect code and reason; a bug → internal with a request id, no leak", async () => {
  const transport = createRouterTransport(probe.routes, { router: { interceptors: [contextInterceptor(), errorInterceptor(log), authInterceptor(nobody, new Set())] } });
  const client = createClient(CacheService, transport);
  assert.deepEqual(await code(client.get({ key: "invalid" })), [Code.Unauthenticated, "this call needs an access token: send Authorization: Bearer <token> or the access_token cookie (get one from /crm.auth.v1.AuthService/Login)", "unauthenticated"]);
  const open = createClient(CacheService, createRouterTransport(probe.routes, { router: { interceptors: [contextInterceptor(), errorInterceptor(log), authInterceptor(nobody, new Set([GET]))] } }));
  const [c, message, reason] = await code(open.get({ key: "invalid" }));
  assert.equal(c, Code.InvalidArgument);
  assert.equal(message, "invalid request: key: must be nice");
  assert.equal(reason, "invalid_argument");
  const [bugCode, bugMessage] = await code(open.get({ key: "bug" }));
  assert.equal(bugCode, Code.Internal);
  assert.match(bugMessage, /^internal error \(request id [0-9a-f-]{36}\); it was logged$/);
  assert.doesNotMatch(bugMessage, /undefined is not a function/);
  const [peerCode] = await code(open.get({ key: "peer" }));
  assert.equal(peerCode, Code.PermissionDenied, "no certificate, no peer identity");
});

const hasOpenssl = (await import("node:child_process")).spawnSync("openssl", ["version"]).status === 0;
const dir = mkdtempSync(join(tmpdir(), "crm-tls-"));
after(() => rmSync(dir, { recursive: true, force: true }));

test("TLS server: HTTP/2 + mTLS; the client certificate's CN names the calling service; other CAs are refused", { skip: need("openssl", hasOpenssl, "apt-get install openssl") }, async () => {
  const { ensureDevPki, ensureCa, ensureCert } = await import("../../../scripts/certs.mjs" as string);
  ensureDevPki(dir, { names: ["probe", "auth", "chats"] });
  const read = (n: string) => readFileSync(join(dir, n));
  const server = await startServer({
    modules: [probe],
    port: 0,
    host: "127.0.0.1",
    log,
    verifier: nobody,
    tls: { cert: read("probe.crt"), key: read("probe.key"), ca: read("ca.crt"), clientAuth: "require", serviceIdentities: new Set(["auth", "chats"]) },
    opsPort: 0,
    readMaxBytes: 1 << 20,
    shutdownTimeoutMs: 2_000,
  });
  try {
    const as = (name: string, ca = read("ca.crt"), certDir = dir) =>
      createClient(CacheService, createGrpcTransport({ baseUrl: `https://localhost:${server.port}`, nodeOptions: { ca, cert: readFileSync(join(certDir, `${name}.crt`)), key: readFileSync(join(certDir, `${name}.key`)) } }));
    assert.equal(new TextDecoder().decode((await as("auth").get({ key: "peer" })).value), "auth", "auth's certificate satisfies requirePeer('auth')");
    assert.equal((await code(as("chats").get({ key: "peer" })))[0], Code.PermissionDenied);
    // signed by the same CA but not on the allow-list: an ordinary TLS client, no service identity
    assert.equal((await code(as("client").get({ key: "peer" })))[0], Code.PermissionDenied, "a CA-signed certificate off the list names no service");
    const other = join(dir, "other");
    ensureCa(other, { cn: "Another CA" });
    ensureCert(other, "auth");
    const refused = await code(as("auth", read("ca.crt"), other).get({ key: "x" }));
    // The TLS handshake fails, which the client sees as a cancelled or unavailable stream.
    assert.ok([Code.Canceled, Code.Unavailable].includes(refused[0]), `a certificate from another CA is refused: ${Code[refused[0]]} ${refused[1]}`);
    const plain = createClient(Health, createGrpcTransport({ baseUrl: `http://127.0.0.1:${server.opsPort}` }));
    assert.equal((await plain.check({})).status, 1, "the plaintext ops port answers gRPC health for kubelet probes");
    assert.equal((await fetch(`http://127.0.0.1:${server.opsPort}/readyz`)).status, 200);
    // Its errors are the JSON {code, message} too.
    const ops = `http://127.0.0.1:${server.opsPort}`;
    const put = await fetch(`${ops}/grpc.health.v1.Health/Check`, { method: "PUT" });
    assert.equal(put.status, 405);
    assert.deepEqual(await put.json(), { code: "unimplemented", message: "HTTP method PUT is not allowed on /grpc.health.v1.Health/Check; use POST" });
    const plainText = await fetch(`${ops}/grpc.health.v1.Health/Check`, { method: "POST", headers: { "content-type": "text/plain" }, body: "{}" });
    assert.equal(plainText.status, 415);
    assert.equal(((await plainText.json()) as { code: string }).code, "unimplemented");
    const nowhere = await fetch(`${ops}/nope`);
    assert.equal(nowhere.status, 404);
    assert.equal(((await nowhere.json()) as { code: string }).code, "not_found");
  } finally {
    await server.close();
  }
});

test("graceful shutdown: in-flight calls finish, new connections are refused", async () => {
  const server = await startServer({ modules: [probe], port: 0, host: "127.0.0.1", log, verifier: nobody, readMaxBytes: 1 << 20, shutdownTimeoutMs: 10_000 });
  const client = createClient(CacheService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${server.port}` }));
  const inflight = client.get({ key: "slow" });
  await slowStarted;
  const closing = server.close();
  const refused = await fetch(`http://127.0.0.1:${server.port}/healthz`).then(() => "accepted", () => "refused");
  assert.equal(refused, "refused", "the listener is closed at once");
  releaseSlow();
  assert.deepEqual([...(await inflight).value], [2], "the in-flight call completed");
  await closing;
});

test("HTTP/2 connections idle past the limit, or older than the maximum age, get GOAWAY", async () => {
  const http2 = await import("node:http2");
  const server = await startServer({ modules: [probe], port: 0, host: "127.0.0.1", log, verifier: nobody, readMaxBytes: 1 << 20, shutdownTimeoutMs: 1_000, keepalive: { idleMs: 50, maxAgeMs: 60_000 } });
  const aged = await startServer({ modules: [probe], port: 0, host: "127.0.0.1", log, verifier: nobody, readMaxBytes: 1 << 20, shutdownTimeoutMs: 1_000, keepalive: { idleMs: 60_000, maxAgeMs: 50, graceMs: 60_000 } });
  try {
    for (const s of [server, aged]) {
      const session = http2.connect(`http://127.0.0.1:${s.port}`);
      const goaway = new Promise<void>((resolve) => session.once("goaway", () => resolve()));
      await new Promise<void>((resolve, reject) => {
        const req = session.request({ ":path": "/healthz" });
        req.on("error", reject).resume().on("end", () => resolve());
      });
      await goaway; // bounded by the test runner's timeout
      session.destroy();
    }
  } finally {
    await server.close();
    await aged.close();
  }
});

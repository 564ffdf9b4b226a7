/**
 * End to end through the NGINX gateway against the real services: the local cluster (every service
 * its own process with TLS + mTLS, real PostgreSQL, Redis and RabbitMQ) on free ports, in a temporary
 * folder with its own CA, JWT key, database, Redis database and e-mail queue.
 *
 * Needs nginx + libnginx-mod-http-js (and python3-grpcio python3-grpc-tools for the foreign gRPC
 * client) and the local PostgreSQL/Redis/RabbitMQ; without them the suite skips with one loud line
 * (CI=true makes that a failure).
 */
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import tls from "node:tls";
import { after, before, describe, it } from "node:test";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import type { Transport } from "@connectrpc/connect";
import { AdminService } from "@crm/gen/crm/admin/v1/admin_pb";
import { AuthService } from "@crm/gen/crm/auth/v1/auth_pb";
import { CacheService } from "@crm/gen/crm/cache/v1/cache_pb";
import { ChatService } from "@crm/gen/crm/chat/v1/chat_pb";
import { EmailService, EmailStatus } from "@crm/gen/crm/email/v1/email_pb";
import { LogLevel, LogsService } from "@crm/gen/crm/logs/v1/logs_pb";
import { TimerService } from "@crm/gen/crm/timer/v1/timer_pb";
import { dropDatabase, needNone, removeRabbitObjects, until } from "@crm/testkit";
import { mailParts } from "../../services/admin/test/helpers.ts";
import { ensureDevPki } from "../../scripts/certs.mjs";
import { checkPrerequisites, defaults, startCluster, type Cluster } from "../../scripts/cluster/lib.mjs";
import { errorTable } from "../../services/gateway/render.mjs";
import { nginxProblem } from "../../services/gateway/run.mjs";
import { locationDirectives, nginxTimeMs, pythonGrpcCall, pythonGrpcMissing, request, TokenMaker, type Res } from "../../services/gateway/test/helpers.ts";

const backing = await checkPrerequisites({ ...defaults, gateway: false });
const skip = needNone(nginxProblem(), ...backing);

function assertJsonError(res: Res, status: number, code: string) {
  assert.equal(res.status, status, `status of ${res.body}`);
  assert.match(String(res.headers["content-type"]), /^application\/json/);
  assert.equal(res.json().code, code, res.body);
  assert.ok(String(res.json().message).length > 0);
}

/** Short stream timings so the idle-stream test runs in seconds: nginx's Subscribe read timeout and the chats heartbeat. */
const streamTimeoutMs = 2_000;
const heartbeatMs = 500;
/** Auth rate limit per RPC and address: a burst of 21, then one a second. */
const authRate = { CRM_GW_AUTH_RATE: "60r/m", CRM_GW_AUTH_BURST: "20" };

describe("end to end through the gateway", { skip, timeout: 900_000 }, () => {
  const tag = `${process.pid}_${randomBytes(3).toString("hex")}`;
  const dbName = `crm_e2e_${tag}`;
  const databaseUrl = `postgres://postgres@127.0.0.1:5432/${dbName}`;
  const queue = `email_tasks_e2e_${tag}`;
  let dir: string;
  let cluster: Cluster;
  let ca: Buffer;
  let port: number;
  let owner: { email: string; password: string; userId: string; companyId: string; accessToken: string; refreshToken: string };
  const json = { "content-type": "application/json" };
  const bearer = () => ({ authorization: `Bearer ${owner.accessToken}` });
  const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
    request({ port, ca, path, method: "POST", headers: { ...json, ...headers }, body: JSON.stringify(body) });
  /** Lines of a service's own request log (LOG_LEVEL=debug: one "rpc" line per call it handled). */
  const rpcLines = (service: string, rpc: string) =>
    cluster.service(service).lines.filter((l) => l.includes(`"rpc":"${rpc}"`)).length;
  const logged = new EventEmitter();
  /** Resolves once the service has logged `count` calls of `rpc` (log lines arrive through a pipe, a bit after the answer). */
  const untilLogged = (service: string, rpc: string, count: number) =>
    new Promise<void>((resolve, reject) => {
      const check = () => {
        if (rpcLines(service, rpc) < count) return false;
        logged.off("line", check);
        clearTimeout(timer);
        resolve();
        return true;
      };
      const timer = setTimeout(() => {
        logged.off("line", check);
        reject(new Error(`${service} logged ${rpcLines(service, rpc)} calls of ${rpc}, expected ${count}`));
      }, 20_000);
      if (!check()) logged.on("line", check);
    });

  /** The first JSON log line of `service` that `match` accepts, already logged or when it arrives (the kept window is the last 200 lines). */
  const untilLine = (service: string, match: (line: Record<string, any>) => boolean) =>
    new Promise<Record<string, any>>((resolve, reject) => {
      const parse = (l: string): Record<string, any> | undefined => {
        try {
          return JSON.parse(l);
        } catch {
          return undefined;
        }
      };
      const onLine = (name: string, l: string) => {
        const j = name === service ? parse(l) : undefined;
        if (j && match(j)) done(j);
      };
      const timer = setTimeout(() => {
        logged.off("line", onLine);
        reject(new Error(`${service} logged no matching line within 20 s`));
      }, 20_000);
      const done = (j: Record<string, any>) => {
        logged.off("line", onLine);
        clearTimeout(timer);
        resolve(j);
      };
      logged.on("line", onLine);
      const already = cluster.service(service).lines.map(parse).find((j) => j && match(j));
      if (already) done(already);
    });

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "crm-e2e-"));
    cluster = await startCluster({
      dataDir: dir,
      ports: "free",
      databaseUrl,
      redisUrl: "redis://127.0.0.1:6379/7",
      env: { LOG_LEVEL: "info", EMAIL_QUEUE: queue, LOGS_REPORT_ERRORS: "false" },
      serviceEnv: { auth: { LOG_LEVEL: "debug" }, timers: { LOG_LEVEL: "debug" }, chats: { CHAT_HEARTBEAT_MS: String(heartbeatMs) } },
      gateway: { clientVerify: "optional", vars: { ...authRate, CRM_GW_STREAM_TIMEOUT: `${streamTimeoutMs}ms`, CRM_GW_WORKERS: "2" } },
      readyTimeoutMs: 240_000,
      onLog: (name, line) => logged.emit("line", name, line),
    });
    ca = readFileSync(cluster.pki.ca);
    port = cluster.httpsPort;
    const email = `owner-${tag}@example.com`;
    const password = "correct horse battery staple 42";
    const res = await post("/auth/register", {
      companyName: `E2E ${tag}`,
      address: "1 Test Street",
      email,
      phone: `+1415${String(Math.floor(Math.random() * 1e7)).padStart(7, "0")}`,
      password,
      ownerName: "Olga Owner",
    });
    assert.equal(res.status, 200, res.body);
    owner = { email, password, ...res.json() };
  });

  after(async () => {
    await cluster?.stop();
    await dropDatabase(dbName);
    // the e-mail queues of this run (work, retry, dead-letter)
    await removeRabbitObjects({ queues: [queue, `${queue}.retry`, `${queue}.dead`] }, defaults.amqpUrl);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("registers, logs in and checks through the REST aliases and Connect", async () => {
    assert.ok(owner.accessToken && owner.refreshToken && owner.userId && owner.companyId);
    const login = await post("/auth/login", { email: owner.email, password: owner.password });
    assert.equal(login.status, 200, login.body);
    assert.match(String(login.headers["set-cookie"]), /access_token=/);
    const check = await post("/auth/check", {}, bearer());
    assert.equal(check.status, 200, check.body);
    assert.equal(check.json().userId, owner.userId);
    assert.equal(check.json().companyId, owner.companyId);
    // the cookie alone works too
    const viaCookie = await post("/crm.auth.v1.AuthService/Check", {}, { cookie: `access_token=${login.json().accessToken}` });
    assert.equal(viaCookie.json().userId, owner.userId);
    const jwks = await request({ port, ca, path: "/.well-known/jwks.json" });
    assert.equal(jwks.status, 200);
    assert.ok(jwks.json().keys.some((k: { kid: string }) => k.kid === cluster.keys.kid));
    const wrong = await post("/auth/login", { email: owner.email, password: "not the password" });
    assertJsonError(wrong, 401, "unauthenticated");
  });

  it("refuses missing and bad tokens with 401 JSON at the gateway; the service never sees them", async () => {
    const tokens = await TokenMaker.fromPem(readFileSync(cluster.keys.privateKeyFile, "utf8"), cluster.keys.kid);
    const bad = await tokens.bad();
    // a valid call is in the service's log, so the log is a fair witness
    const check = "/crm.auth.v1.AuthService/Check";
    const seen0 = rpcLines("auth", check);
    assert.equal((await post(check, {}, bearer())).status, 200);
    await untilLogged("auth", check, seen0 + 1);
    const cases: [string, Record<string, string>][] = [["missing", {}]];
    for (const [name, t] of Object.entries(bad)) {
      cases.push([`${name} (Bearer)`, { authorization: `Bearer ${t}` }], [`${name} (cookie)`, { cookie: `access_token=${t}` }]);
    }
    for (const [name, headers] of cases) {
      const res = await post(check, {}, headers);
      assert.equal(res.status, 401, `${name}: ${res.body}`);
      assertJsonError(res, 401, "unauthenticated");
      const timers = await request({ port, ca, path: "/timer/get-working-timer", headers });
      assertJsonError(timers, 401, "unauthenticated");
    }
    // one more valid call; once its line is in, every earlier line is too (one ordered pipe):
    // exactly one new Check in the log, so none of the refused ones reached the service
    assert.equal((await post(check, {}, bearer())).status, 200);
    await untilLogged("auth", check, seen0 + 2);
    assert.equal(rpcLines("auth", check), seen0 + 2);
    assert.equal(rpcLines("timers", "/crm.timer.v1.TimerService/GetWorkingTimer"), 0);
    // and the gateway's access log shows no upstream for them
    const log = readFileSync(join(cluster.logDir, "gateway-access.log"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
    const refused = log.filter((e) => e.status === 401 && e.uri === "/timer/get-working-timer");
    assert.equal(refused.length, cases.length);
    assert.ok(refused.every((e) => e.upstream === ""), "no refused request was proxied");
  });

  it("a spoofed X-User-Id / X-Company-Id / X-Role is ignored", async () => {
    const res = await post("/crm.auth.v1.AuthService/Check", {}, { ...bearer(), "x-user-id": "00000000-0000-0000-0000-000000000000", "x-company-id": "00000000-0000-0000-0000-000000000001", "x-role": "owner" });
    assert.equal(res.status, 200, res.body);
    assert.equal(res.json().userId, owner.userId);
    assert.equal(res.json().companyId, owner.companyId);
  });

  it("crm.db.v1 is not reachable from outside; services demand the CA's client certificate", async () => {
    for (const path of ["/crm.db.v1.DbAuthService/LoginDB", "/crm.db.v1.DbAuthService/RegisterCompany"]) {
      assertJsonError(await post(path, {}, bearer()), 404, "not_found");
    }
    // straight to a service port: no client certificate, or one from another CA → no TLS session
    const handshake = (o: tls.ConnectionOptions) =>
      new Promise<boolean>((resolve) => {
        const s = tls.connect({ host: "127.0.0.1", port: cluster.ports.dbservice, ca, servername: "dbservice", ALPNProtocols: ["h2"], ...o }, () => {
          // TLS 1.3: a rejected client certificate surfaces just after the handshake
          s.once("data", () => resolve(true));
          s.once("error", () => resolve(false));
          s.once("close", () => resolve(false));
          s.write("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00");
        });
        s.once("error", () => resolve(false));
      });
    assert.equal(await handshake({}), false, "no client certificate");
    const other = ensureDevPki(join(dir, "other-ca"), { names: [] });
    assert.equal(await handshake({ cert: readFileSync(other.cert("client")), key: readFileSync(other.key("client")) }), false, "foreign CA");
    assert.equal(await handshake({ cert: readFileSync(cluster.pki.cert("client")), key: readFileSync(cluster.pki.key("client")) }), true, "the CA's client certificate");
  });

  it("the dev client certificate is no service identity: straight to the logs service it cannot write as another company", async () => {
    const logsAs = (cert: string) =>
      createClient(LogsService, createGrpcTransport({ baseUrl: `https://localhost:${cluster.ports.logs}`, nodeOptions: { ca, cert: readFileSync(cluster.pki.cert(cert)), key: readFileSync(cluster.pki.key(cert)) } }));
    const entry = { name: "e2e-identity", level: LogLevel.INFO, message: "written as someone else", companyId: "11111111-1111-4111-8111-111111111111", userId: "22222222-2222-4222-8222-222222222222" };
    await assert.rejects(logsAs("client").saveLogs({ entries: [entry] }), (e: unknown) => ConnectError.from(e).code === Code.Unauthenticated);
    // with a user's token it is an ordinary client, writing as that user
    assert.equal((await logsAs("client").saveLogs({ entries: [entry] }, { headers: bearer() })).accepted, 1);
    // a real caller of logs still writes as itself
    assert.equal((await logsAs("auth").saveLogs({ entries: [entry] })).accepted, 1);
  });

  it("errors the services answer reach the client through the gateway as the same JSON: 415, 405 with Allow, 404", async () => {
    const plain = await request({ port, ca, path: "/crm.auth.v1.AuthService/Login", method: "POST", headers: { "content-type": "text/plain" }, body: "{}" });
    assertJsonError(plain, 415, "unimplemented");
    assert.match(plain.json().message, /content-type "text\/plain" is not supported/);
    const get = await request({ port, ca, path: "/crm.chat.v1.ChatService/SendMessage", method: "GET", headers: bearer() });
    assertJsonError(get, 405, "unimplemented");
    assert.equal(get.headers.allow, "POST");
    const alias = await request({ port, ca, path: "/auth/login", method: "PUT", headers: json, body: "{}" });
    assertJsonError(alias, 405, "unimplemented");
    assert.deepEqual(alias.json(), { code: "unimplemented", message: "HTTP method PUT is not allowed on /auth/login; use POST" });
    const nope = await post("/crm.chat.v1.ChatService/Nope", {}, bearer());
    assertJsonError(nope, 404, "not_found");
  });

  it("optional client certificates at the gateway: none and the CA's pass, another CA's is refused with JSON", async () => {
    assert.equal((await request({ port, ca, path: "/healthz" })).status, 200);
    assert.equal((await request({ port, ca, path: "/healthz", cert: readFileSync(cluster.pki.cert("client")), key: readFileSync(cluster.pki.key("client")) })).status, 200);
    const other = ensureDevPki(join(dir, "other-ca"), { names: [] });
    const res = await request({ port, ca, path: "/healthz", cert: readFileSync(other.cert("client")), key: readFileSync(other.key("client")) });
    assertJsonError(res, 400, "unauthenticated");
  });

  it("the original REST routes reach the chat, timer and admin handlers", async () => {
    const created = await post("/chats/createNewChat", { name: "E2E room", memberIds: [] }, bearer());
    assert.equal(created.status, 200, created.body);
    const chatId: string = created.json().chat.id ?? created.json().chat.chatId;
    assert.ok(chatId, created.body);
    const sent = await post(`/chats/${chatId}/sendMessage`, { content: "hello through nginx", clientMessageId: `m-${tag}` }, bearer());
    assert.equal(sent.status, 200, sent.body);
    assert.equal(sent.json().message.content, "hello through nginx");
    const listed = await request({ port, ca, path: `/chats/${chatId}/messages?limit=10`, headers: bearer() });
    assert.equal(listed.status, 200, listed.body);
    assert.ok(listed.json().messages.some((m: { content: string }) => m.content === "hello through nginx"));

    const started = await post("/timer/start-timer", { description: "e2e work" }, bearer());
    assert.equal(started.status, 200, started.body);
    const working = await request({ port, ca, path: "/timer/get-working-timer", headers: bearer() });
    assert.equal(working.status, 200, working.body);
    assert.equal(working.json().timer.description, "e2e work");
    const ended = await post("/timer/end-timer", {}, bearer());
    assert.equal(ended.status, 200, ended.body);

    const added = await post("/admin/addusers", { users: [{ email: `member-${tag}@example.com`, name: "Mia Member" }] }, bearer());
    assert.equal(added.status, 200, added.body);
    assert.equal(added.json().stats.created, 1, added.body);
    // bad input gets a clear error and changes nothing
    const badChat = await post("/chats/createNewChat", { name: "" }, bearer());
    assertJsonError(badChat, 400, "invalid_argument");
  });

  it("an invitation links to PUBLIC_URL (the gateway)/accept-invite; the console, the plain page and AcceptInvite work through the gateway", async () => {
    const email = `invitee-${tag}@example.com`;
    const add = await post("/crm.admin.v1.AdminService/AddUsers", { users: [{ email, name: "Ivy", role: "ROLE_MEMBER" }] }, bearer());
    assert.equal(add.status, 200, add.body);
    const outbox = join(dir, "cluster", "email", "outbox");
    const mailTo = () =>
      existsSync(outbox) ? readdirSync(outbox).map((f) => readFileSync(join(outbox, f), "utf8")).find((raw) => new RegExp(`^To: ${email.replace(/[.+]/g, "\\$&")}$`, "mi").test(raw)) : undefined;
    await until("the invitation e-mail", () => mailTo() !== undefined, 60_000);
    const text = mailParts(mailTo()!).text;
    const link = new RegExp(`${cluster.gatewayUrl.replace(/[.]/g, "\\.")}/accept-invite#token=([A-Za-z0-9_-]{43})`).exec(text);
    assert.ok(link, `the link starts with the gateway's address ${cluster.gatewayUrl}:\n${text}`);
    // the link is the web console's screen (its index.html); auth's plain page stays under /account-links/
    const page = await request({ port, ca, path: "/accept-invite", headers: { accept: "text/html" } });
    assert.equal(page.status, 200, page.body);
    assert.match(String(page.headers["content-type"]), /^text\/html/);
    assert.match(String(page.headers["content-security-policy"]), /script-src 'self'/);
    assert.match(page.body, /<div id="root"><\/div>/);
    const plain = await request({ port, ca, path: "/account-links/accept-invite" });
    assert.equal(plain.status, 200, plain.body);
    assert.match(plain.body, /<script src="\/account-links\/account\.js" defer><\/script>/);
    const script = await request({ port, ca, path: "/account-links/account.js" });
    assert.equal(script.status, 200);
    assert.match(script.body, /AuthService\/" \+ rpc/);
    const accepted = await post("/crm.auth.v1.AuthService/AcceptInvite", { token: link[1], password: "a long invitee passphrase" });
    assert.equal(accepted.status, 200, accepted.body);
    const login = await post("/auth/login", { email, password: "a long invitee passphrase" });
    assert.equal(login.status, 200, login.body);
  });

  it("a foreign gRPC client (python3-grpcio) calls unary RPCs and follows the Subscribe stream through the gateway", { skip: needNone(pythonGrpcMissing()) }, async () => {
    const check = await pythonGrpcCall({ port, ca: cluster.pki.ca, method: "crm.auth.v1.AuthService/Check", token: owner.accessToken });
    assert.equal(check.status, "OK", check.stderr);
    assert.equal(check.messages[0].userId, owner.userId);
    const denied = await pythonGrpcCall({ port, ca: cluster.pki.ca, method: "crm.auth.v1.AuthService/Check" });
    assert.equal(denied.status, "UNAUTHENTICATED");
    const db = await pythonGrpcCall({ port, ca: cluster.pki.ca, method: "crm.db.v1.DbAuthService/LoginDB", token: owner.accessToken });
    assert.equal(db.status, "UNIMPLEMENTED");

    const chat = await post("/chats/createNewChat", { name: "stream room" }, bearer());
    const chatId: string = chat.json().chat.id ?? chat.json().chat.chatId;
    for (const content of ["one", "two"]) assert.equal((await post(`/chats/${chatId}/sendMessage`, { content }, bearer())).status, 200);
    // replay after seq 1 (gets "two"), then a live message sent once the replay arrived
    const got: string[] = [];
    const stream = await pythonGrpcCall({
      port,
      ca: cluster.pki.ca,
      method: "crm.chat.v1.ChatService/Subscribe",
      request: { chatId, afterSeq: "1" },
      token: owner.accessToken,
      timeoutMs: 60_000,
      onMessage: (m) => {
        if (!m.message) return false; // heartbeat
        got.push(m.message.content);
        if (got.length === 1) void post(`/chats/${chatId}/sendMessage`, { content: "three (live)" }, bearer());
        return got.length === 2;
      },
    });
    assert.deepEqual(got, ["two", "three (live)"], stream.stderr);
  });

  it("Connect and gRPC-Web (HTTP/1.1) server streams flow through the gateway as they happen", async () => {
    const chat = await post("/chats/createNewChat", { name: "web stream room" }, bearer());
    const chatId: string = chat.json().chat.id ?? chat.json().chat.chatId;
    for (const transport of [
      createConnectTransport({ baseUrl: cluster.gatewayUrl, httpVersion: "1.1", nodeOptions: { ca } }),
      createGrpcWebTransport({ baseUrl: cluster.gatewayUrl, httpVersion: "1.1", nodeOptions: { ca } }),
    ]) {
      const chats = createClient(ChatService, transport);
      const ac = new AbortController();
      const text = `live ${Math.random().toString(36).slice(2)}`;
      const timer = setTimeout(() => ac.abort(), 60_000);
      let got: string | undefined;
      try {
        // live only: nothing says when the stream is subscribed, so keep sending (new messages
        // with the same text) until one comes back through the stream
        const stream = chats.subscribe({ chatId }, { headers: bearer(), signal: ac.signal });
        const sender = (async () => {
          for (let i = 0; i < 100 && !got && !ac.signal.aborted; i++) {
            await post(`/chats/${chatId}/sendMessage`, { content: text }, bearer());
            await new Promise((r) => setTimeout(r, 300));
          }
        })();
        for await (const ev of stream) {
          if (ev.event.case === "message" && ev.event.value.content === text) {
            got = ev.event.value.content;
            break;
          }
        }
        await sender;
      } finally {
        clearTimeout(timer);
        ac.abort();
      }
      assert.equal(got, text);
    }
  });

  it("every public service answers through the gateway with the owner's token, over Connect and gRPC", async () => {
    const transports: Record<string, Transport> = {
      connect: createConnectTransport({ baseUrl: cluster.gatewayUrl, httpVersion: "1.1", nodeOptions: { ca } }),
      grpc: createGrpcTransport({ baseUrl: cluster.gatewayUrl, nodeOptions: { ca } }),
    };
    const headers = bearer();
    for (const [name, t] of Object.entries(transports)) {
      const auth = createClient(AuthService, t);
      assert.equal((await auth.check({}, { headers })).userId, owner.userId, `${name}: auth`);
      const chats = createClient(ChatService, t);
      assert.ok(Array.isArray((await chats.listChats({}, { headers })).chats), `${name}: chats`);
      const timers = createClient(TimerService, t);
      await timers.getWorkingTimer({}, { headers }); // answers (the running timer, or none)
      const admin = createClient(AdminService, t);
      assert.ok((await admin.listUsers({}, { headers })).users.some((u) => u.userId === owner.userId), `${name}: admin`);
      const email = createClient(EmailService, t);
      const sent = await email.sendEmail({ email: `hello-${name}-${tag}@example.com`, subject: "Hello", body: "through the gateway", idempotencyKey: `e2e-${name}-${tag}` }, { headers });
      assert.ok(sent.emailId, `${name}: email`);
      assert.notEqual((await email.getEmailStatus({ emailId: sent.emailId }, { headers })).status, EmailStatus.UNSPECIFIED);
      const cache = createClient(CacheService, t);
      const key = `e2e-${name}-${tag}`;
      assert.equal((await cache.save({ key, value: new TextEncoder().encode(name), ttlSeconds: 60 }, { headers })).stored, true, `${name}: cache`);
      assert.equal(new TextDecoder().decode((await cache.get({ key }, { headers })).value), name);
      const logs = createClient(LogsService, t);
      assert.equal((await logs.saveLogs({ entries: [{ name: "e2e", level: LogLevel.INFO, message: `through the gateway (${name})` }] }, { headers })).accepted, 1, `${name}: logs`);
    }
  });

  it("services log the gateway's trace: a client's traceparent is continued, a missing one becomes a trace whose id is the request id", async () => {
    const traceId = randomBytes(16).toString("hex");
    const check = "/crm.auth.v1.AuthService/Check";
    assert.equal((await post(check, {}, { ...bearer(), traceparent: `00-${traceId}-${randomBytes(8).toString("hex")}-01` })).status, 200);
    await untilLine("auth", (j) => j.rpc === check && j.trace_id === traceId);
    // an RPC no other test calls, so its one log line is this request's
    const listSessions = "/crm.auth.v1.AuthService/ListSessions";
    assert.equal((await post(listSessions, {}, bearer())).status, 200);
    const line = await untilLine("auth", (j) => j.rpc === listSessions);
    assert.match(line.request_id, /^[0-9a-f]{32}$/, "the gateway's X-Request-Id");
    assert.equal(line.trace_id, line.request_id, "a trace started by the gateway has the request's id");
  });

  it("an idle Subscribe stream outlives nginx's read timeout thanks to the chats heartbeats, then still gets a new message (gRPC and Connect)", async () => {
    // this cluster's gateway really has the short timeout on the Subscribe route
    const subscribe = locationDirectives(readFileSync(cluster.nginx!.conf, "utf8"), "= /crm.chat.v1.ChatService/Subscribe");
    assert.equal(nginxTimeMs(subscribe.get("grpc_read_timeout")!), streamTimeoutMs);
    assert.equal(nginxTimeMs(subscribe.get("proxy_read_timeout")!), streamTimeoutMs);
    const idleMs = 3 * streamTimeoutMs;
    const transports: Record<string, Transport> = {
      "gRPC (grpc_pass)": createGrpcTransport({ baseUrl: cluster.gatewayUrl, nodeOptions: { ca } }),
      "Connect over HTTP/1.1 (proxy_pass)": createConnectTransport({ baseUrl: cluster.gatewayUrl, httpVersion: "1.1", nodeOptions: { ca } }),
    };
    await Promise.all(
      Object.entries(transports).map(async ([name, transport]) => {
        const created = await post("/chats/createNewChat", { name: `idle ${name}` }, bearer());
        assert.equal(created.status, 200, created.body);
        const chatId: string = created.json().chat.chatId;
        const text = `after ${idleMs} ms of silence (${name})`;
        const chats = createClient(ChatService, transport);
        let liveAt: number | undefined; // the first heartbeat says the stream is live
        let heartbeats = 0;
        let sending: Promise<Res> | undefined;
        let received: string | undefined;
        // stream events drive the test: once it has been idle idleMs (heartbeats only), send one message
        for await (const ev of chats.subscribe({ chatId }, { headers: bearer(), timeoutMs: 60_000 })) {
          if (ev.event.case === "heartbeat") {
            heartbeats++;
            liveAt ??= performance.now();
            if (!sending && performance.now() - liveAt >= idleMs) sending = post(`/chats/${chatId}/sendMessage`, { content: text }, bearer());
          } else if (ev.event.case === "message") {
            received = ev.event.value.content;
            break;
          }
        }
        assert.ok(sending, `${name}: the stream ended before it was idle ${idleMs} ms`);
        assert.equal((await sending).status, 200);
        assert.equal(received, text, name);
        assert.ok(heartbeats >= idleMs / heartbeatMs / 2, `${name}: ${heartbeats} heartbeats in ${idleMs} ms`);
      }),
    );
  });

  it("HTTP redirects to HTTPS, and HTTPS answers carry HSTS", async () => {
    const res = await request({ port: cluster.httpPort, plain: true, path: "/auth/login" });
    assert.equal(res.status, 308);
    assert.equal(res.headers.location, `https://127.0.0.1:${port}/auth/login`);
    const ok = await post("/auth/check", {}, bearer());
    assert.equal(ok.headers["strict-transport-security"], "max-age=15768000; includeSubDomains");
  });

  it("256 concurrent gRPC calls through the gateway all succeed", async () => {
    const client = createClient(AuthService, createGrpcTransport({ baseUrl: cluster.gatewayUrl, nodeOptions: { ca } }));
    const burst = async (n: number) => {
      const results = await Promise.allSettled(Array.from({ length: n }, () => client.check({}, { headers: bearer() })));
      const failed = results.filter((r): r is PromiseRejectedResult => r.status === "rejected");
      assert.equal(failed.length, 0, `${failed.length} of ${n} failed: ${String(failed[0]?.reason)}`);
    };
    // traffic ramps up as it does in life: the gateway has warm, resumable TLS sessions to the service
    await burst(32);
    await burst(256);
    await burst(256);
  });

  it("a stopped service gives 502 JSON (gRPC UNAVAILABLE); after a restart in the middle of traffic it answers again, with no gateway restart", async () => {
    const nginxPid = cluster.nginx!.pid;
    const call = () => request({ port, ca, path: "/timer/get-working-timer", headers: bearer() });
    assert.equal((await call()).status, 200);
    // traffic keeps flowing while timers restarts
    let stop = false;
    const statuses: number[] = [];
    const traffic = (async () => {
      while (!stop) {
        const r = await call();
        statuses.push(r.status);
        if (r.status !== 200) assertJsonError(r, 502, "unavailable");
        await new Promise((res) => setImmediate(res));
      }
    })();
    await cluster.stopService("timers");
    assertJsonError(await call(), 502, "unavailable");
    const timers = createClient(TimerService, createGrpcTransport({ baseUrl: cluster.gatewayUrl, nodeOptions: { ca } }));
    await assert.rejects(timers.getWorkingTimer({}, { headers: bearer() }), (e: unknown) => ConnectError.from(e).code === Code.Unavailable);
    await cluster.startService("timers");
    const after = await call();
    stop = true;
    await traffic;
    assert.equal(after.status, 200, after.body);
    assert.ok(statuses.includes(502) && statuses.at(-1) === 200, `statuses seen: ${[...new Set(statuses)].join(",")}`);
    assert.ok((await timers.getWorkingTimer({}, { headers: bearer() })) !== undefined);
    assert.equal(cluster.nginx!.pid, nginxPid);
    assert.ok(cluster.nginx!.running);
  });

  /** 60 requests at once from one address: the gateway refuses most with its own 429 JSON. */
  async function flood(path: string, body: unknown) {
    const gatewayMessage = errorTable.find((e) => e.status === 429)!.message;
    const results = await Promise.all(Array.from({ length: 60 }, () => post(path, body)));
    // auth has its own limit on failed logins (also 429 resource_exhausted, another message)
    for (const r of results.filter((x) => x.status === 429)) assertJsonError(r, 429, "resource_exhausted");
    const byGateway = results.filter((r) => r.status === 429 && r.json().message === gatewayMessage);
    assert.ok(byGateway.length >= 30, `${path}: expected most of 60 refused by the gateway, got ${byGateway.length} (statuses ${[...new Set(results.map((r) => r.status))]})`);
    assert.ok(byGateway.every((r) => r.headers["retry-after"]));
    assert.ok(byGateway.length < results.length, `${path}: the burst passes the gateway`);
  }

  it("login, register and password reset floods from one address get 429 JSON from the gateway", async () => {
    await flood("/auth/login", { email: `nobody-${tag}@example.com`, password: "wrong password here" });
    // invalid registrations: the ones that pass the gateway are refused by auth without work
    await flood("/auth/register", { companyName: "" });
    await flood("/crm.auth.v1.AuthService/RequestPasswordReset", { email: `nobody-${tag}@example.com` });
    await flood("/crm.auth.v1.AuthService/ResetPassword", { token: "not-a-reset-token", newPassword: "correct horse battery staple 43" });
  });
});

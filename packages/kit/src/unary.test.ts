/**
 * The fast path (@crm/fastpath: its server side and its gRPC client) against the kit's real server:
 * every protocol gives the same answers, errors and headers whether the fast path or connect-node
 * serves it; signals abort on cancel and deadline; a burst over the per-session stream cap opens
 * another connection.
 */
import assert from "node:assert/strict";
import net from "node:net";
import { gzipSync } from "node:zlib";
import { after, before, describe, test } from "node:test";
import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { compressionGzip, createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { CacheService } from "@crm/gen/crm/cache/v1/cache_pb";
import { AppError, invalid, violationsOf } from "./errors.js";
import type { TokenVerifier } from "./auth.js";
import { createGrpcClientTransport } from "@crm/fastpath";
import { createLogger } from "./logger.js";
import { startServer, type RunningServer, type ServiceModule } from "./server.js";

const log = createLogger("test", "silent");
const nobody: TokenVerifier = { verify: async () => { throw new AppError("token_invalid", "no tokens in this test"); } };

/** Resolvers for handlers that wait: "hold" calls wait until released; "abortable" ones until their signal aborts. */
const held: (() => void)[] = [];
let heldArrived: () => void = () => {};
let aborted: (reason: unknown) => void = () => {};
let abortableStarted: () => void = () => {};

const probe: ServiceModule = {
  name: "probe",
  services: [CacheService],
  publicMethods: [`/${CacheService.typeName}/Get`, `/${CacheService.typeName}/Save`],
  routes(router) {
    router.service(CacheService, {
      async get(req, ctx) {
        if (req.key === "invalid") throw invalid([{ field: "key", description: "must be nice" }]);
        // Field paths carry what the client sent (map keys): never a header, so nothing breaks.
        if (req.key === "hostile field") throw invalid([{ field: 'attributes["a\u007f\r\nx: y\u0100\u{1F600}"]', description: "bad key" }]);
        if (req.key === "bad header") ctx.responseHeader.set("x-bad", "a\u007fb");
        if (req.key === "bad trailer") ctx.responseTrailer.set("x-bad", "a\u007fb");
        if (req.key === "bad header, then fail") {
          ctx.responseHeader.set("x-bad", "a\u007fb");
          throw new AppError("not_found", "nothing here");
        }
        if (req.key === "cookies") {
          ctx.responseHeader.append("set-cookie", "a=1; Path=/");
          ctx.responseHeader.append("set-cookie", "b=2; Path=/");
          ctx.responseTrailer.set("x-probe", "trailer");
        }
        if (req.key === "abortable") {
          abortableStarted();
          await new Promise<void>((resolve) => ctx.signal.addEventListener("abort", () => (aborted(ctx.signal.reason), resolve()), { once: true }));
        }
        if (req.key === "trailer, then fail") {
          ctx.responseTrailer.set("x-probe", "trailer");
          throw invalid([{ field: "key", description: "must be nice" }]);
        }
        if (req.key === "big") return { value: new Uint8Array(2000), ttlSeconds: 7 };
        if (req.key === "hold") {
          await new Promise<void>((resolve) => {
            held.push(resolve);
            heldArrived();
          });
        }
        return { value: new TextEncoder().encode(`${req.key}|${ctx.protocolName}|${ctx.requestHeader.get("x-echo") ?? ""}`), ttlSeconds: 7 };
      },
    });
  },
};

async function failure(p: Promise<unknown>): Promise<ConnectError> {
  try {
    await p;
  } catch (err) {
    return ConnectError.from(err);
  }
  assert.fail("the call succeeded");
}

// Every test runs against a server with the fast path on, and again with it off (RPC_FAST_PATH=off):
// plain connect-node must give the same answers.
for (const fastPath of [true, false]) {
  describe(`RPC_FAST_PATH=${fastPath ? "on" : "off"}`, () => {
    let server: RunningServer;
    let base: string;
    before(async () => {
      server = await startServer({ modules: [probe], port: 0, host: "127.0.0.1", log, verifier: nobody, readMaxBytes: 1024, shutdownTimeoutMs: 1000, fastPath });
      base = `http://127.0.0.1:${server.port}`;
    });
    after(() => server.close());

    const transports = (): [string, Transport][] => [
      ["kit gRPC client (fast path)", createGrpcClientTransport({ baseUrl: base, streams: createGrpcTransport({ baseUrl: base }) })],
      ["gRPC (fast path)", createGrpcTransport({ baseUrl: base })],
      ["gRPC gzip (connect-node)", createGrpcTransport({ baseUrl: base, sendCompression: compressionGzip, compressMinBytes: 0 })],
      ["Connect binary h2 (fast path)", createConnectTransport({ baseUrl: base, httpVersion: "2", useBinaryFormat: true })],
      ["Connect JSON HTTP/1.1 (fast path)", createConnectTransport({ baseUrl: base, httpVersion: "1.1" })],
      ["Connect JSON gzip HTTP/1.1 (connect-node)", createConnectTransport({ baseUrl: base, httpVersion: "1.1", sendCompression: compressionGzip, compressMinBytes: 0 })],
      ["gRPC-Web HTTP/1.1 (connect-node)", createGrpcWebTransport({ baseUrl: base, httpVersion: "1.1" })],
    ];


    test("every protocol answers the same through the fast path and through connect-node", async () => {
      for (const [name, transport] of transports()) {
        const client = createClient(CacheService, transport);
        const res = await client.get({ key: "k" }, { headers: { "x-echo": "hi" } });
        const protocol = name.startsWith("Connect") ? "connect" : name.startsWith("gRPC-Web") ? "grpc-web" : "grpc";
        assert.equal(new TextDecoder().decode(res.value), `k|${protocol}|hi`, name);
        assert.equal(res.ttlSeconds, 7, name);

        const e = await failure(client.get({ key: "invalid" }));
        assert.equal(e.code, Code.InvalidArgument, name);
        assert.equal(e.rawMessage, "invalid request: key: must be nice", name);
        assert.equal(e.metadata.get("crm-error"), "invalid_argument", name);
        assert.deepEqual(violationsOf(e), [{ field: "key", description: "must be nice" }], `${name}: google.rpc.BadRequest in the error details`);
        assert.equal(e.metadata.get("crm-error-fields"), null, name);

        const hostile = await failure(client.get({ key: "hostile field" }));
        assert.equal(hostile.code, Code.InvalidArgument, `${name}: ${hostile.message}`);
        assert.deepEqual(violationsOf(hostile), [{ field: 'attributes["a\u007f\r\nx: y\u0100\u{1F600}"]', description: "bad key" }], name);
        assert.equal(hostile.metadata.get("x"), null, name);

        let header: Headers | undefined;
        let trailer: Headers | undefined;
        await client.get({ key: "cookies" }, { onHeader: (h) => (header = h), onTrailer: (t) => (trailer = t) });
        assert.deepEqual(header?.getSetCookie(), ["a=1; Path=/", "b=2; Path=/"], name);
        assert.equal(trailer?.get("x-probe"), "trailer", name);

        // A handler's trailers travel with its error, beside the error details.
        const withTrailer = await failure(client.get({ key: "trailer, then fail" }));
        assert.equal(withTrailer.code, Code.InvalidArgument, name);
        assert.equal(withTrailer.metadata.get("x-probe"), "trailer", `${name}: the handler's trailer`);
        assert.deepEqual(violationsOf(withTrailer), [{ field: "key", description: "must be nice" }], name);
      }
    });

    test("clients read answers up to their readMaxBytes: a bigger one is resource_exhausted", async () => {
      const clients: [string, Transport][] = [
        ["kit gRPC client", createGrpcClientTransport({ baseUrl: base, streams: createGrpcTransport({ baseUrl: base }), readMaxBytes: 1024 })],
        ["connect-node gRPC", createGrpcTransport({ baseUrl: base, readMaxBytes: 1024 })],
      ];
      for (const [name, transport] of clients) {
        const client = createClient(CacheService, transport);
        const e = await failure(client.get({ key: "big" }));
        assert.equal(e.code, Code.ResourceExhausted, `${name}: ${e.message}`);
        assert.match(e.rawMessage, /is larger than configured readMaxBytes 1024/, name);
        assert.equal((await client.get({ key: "k" })).ttlSeconds, 7, `${name}: small answers still arrive`);
      }
    });

    test("a client that resets its call with an error code ends that call (its signal aborts), never the process", async () => {
      const http2 = await import("node:http2");
      const { toBinary, create } = await import("@bufbuild/protobuf");
      const { GetRequestSchema } = await import("@crm/gen/crm/cache/v1/cache_pb");
      const message = toBinary(GetRequestSchema, create(GetRequestSchema, { key: "abortable" }));
      const frame = Buffer.alloc(5 + message.length);
      frame.writeUInt32BE(message.length, 1);
      frame.set(message, 5);
      const session = http2.connect(base);
      try {
        const started = new Promise<void>((r) => (abortableStarted = r));
        const seen = new Promise<unknown>((r) => (aborted = r));
        const stream = session.request({ ":method": "POST", ":path": `/${CacheService.typeName}/Get`, "content-type": "application/grpc", te: "trailers" });
        stream.on("error", () => {});
        stream.end(frame);
        await started;
        stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
        await seen; // the handler's signal aborted
      } finally {
        session.close();
      }
      assert.equal((await createClient(CacheService, createGrpcTransport({ baseUrl: base })).get({ key: "k" })).ttlSeconds, 7, "the server still answers");
    });

    test("a malformed deadline header is invalid_argument, as connect-node says it", async () => {
      const r = await fetch(`${base}/${CacheService.typeName}/Get`, { method: "POST", headers: { "content-type": "application/json", "connect-timeout-ms": "soon" }, body: JSON.stringify({ key: "k" }) });
      assert.equal(r.status, 400);
      assert.deepEqual(await r.json(), { code: "invalid_argument", message: "protocol error: invalid connect timeout value: soon" });
    });

    test("a handler's header that is not valid HTTP ends that call with internal, never the process", async () => {
      for (const [name, transport] of transports()) {
        const client = createClient(CacheService, transport);
        for (const key of ["bad header", "bad trailer", "bad header, then fail"]) {
          // HTTP/1.1 refuses U+007F in a field value; HTTP/2 (RFC 9113) lets it through.
          const e = await client.get({ key }).then(() => undefined, (err: unknown) => ConnectError.from(err));
          // Over HTTP/2 it may go through (or fail with the handler's own error); it never ends the process.
          // (gRPC-Web carries trailers in the body.)
          const allowed = name.includes("HTTP/1.1") && key !== "bad trailer" ? [Code.Internal] : [Code.Internal, key === "bad header, then fail" ? Code.NotFound : undefined];
          assert.ok(allowed.includes(e?.code), `${name}, ${key}: ${e?.message ?? "succeeded"}`);
        }
        const ok = await client.get({ key: "k" });
        assert.equal(ok.ttlSeconds, 7, `${name}: the server still answers`);
      }
    });

    test("control characters and invalid UTF-8 are refused on every path, naming the field", async () => {
      for (const [name, transport] of transports()) {
        const e = await failure(createClient(CacheService, transport).get({ key: "k\u0000" }));
        assert.equal(e.code, Code.InvalidArgument, `${name}: ${e.message}`);
        assert.deepEqual(violationsOf(e).map((v) => v.field), ["key"], name);
      }
      // GetRequest.key (field 1) = FF FE: not UTF-8. Binary Connect (fast path), gzip (connect-node), gRPC-Web (connect-node).
      const message = Buffer.from([0x0a, 2, 0xff, 0xfe]);
      const frame = Buffer.concat([Buffer.from([0, 0, 0, 0, message.length]), message]);
      const cases: [string, Record<string, string>, Buffer][] = [
        ["Connect proto", { "content-type": "application/proto" }, message],
        ["Connect proto gzip", { "content-type": "application/proto", "content-encoding": "gzip" }, gzipSync(message)],
        ["gRPC-Web", { "content-type": "application/grpc-web+proto", "x-grpc-web": "1" }, frame],
      ];
      for (const [name, headers, body] of cases) {
        const r = await fetch(`${base}/${CacheService.typeName}/Get`, { method: "POST", headers, body });
        const text = Buffer.from(await r.arrayBuffer()).toString("latin1");
        const status = r.headers.get("grpc-status") ?? /grpc-status:\s*(\d+)/.exec(text)?.[1];
        if (name === "gRPC-Web") assert.equal(status, String(Code.InvalidArgument), `${name}: ${text}`);
        else assert.equal(r.status, 400, `${name}: ${text}`);
        const said = /grpc-message: (\S+)/.exec(text)?.[1];
        assert.match(said ? decodeURIComponent(said) : text, /key: is not valid UTF-8/, name);
      }
      // A decode error quoting a lone surrogate the client sent still travels in grpc-message (as U+FFFD).
      const quoting = Buffer.from('{"key":"k","nope\\ud800":1}');
      const framed = Buffer.alloc(5 + quoting.length);
      framed.writeUInt32BE(quoting.length, 1);
      quoting.copy(framed, 5);
      const web = await fetch(`${base}/${CacheService.typeName}/Get`, { method: "POST", headers: { "content-type": "application/grpc-web+json" }, body: framed });
      const webText = Buffer.from(await web.arrayBuffer()).toString("latin1");
      assert.equal(web.headers.get("grpc-status") ?? /grpc-status:\s*(\d+)/.exec(webText)?.[1], String(Code.InvalidArgument), webText);
      // JSON with bytes that are not UTF-8: refused on both paths, not turned into U+FFFD.
      const json = Buffer.from([0x7b, 0x22, 0x6b, 0x65, 0x79, 0x22, 0x3a, 0x22, 0xff, 0x22, 0x7d]); // {"key":"\xff"}
      for (const [name, headers, body] of [
        ["Connect JSON (fast path)", { "content-type": "application/json" }, json],
        ["Connect JSON gzip (connect-node)", { "content-type": "application/json", "content-encoding": "gzip" }, gzipSync(json)],
      ] as const) {
        const r = await fetch(`${base}/${CacheService.typeName}/Get`, { method: "POST", headers, body });
        const answer = (await r.json()) as { code: string; message: string };
        assert.equal(r.status, 400, `${name}: ${answer.message}`);
        assert.equal(answer.code, "invalid_argument", name);
        assert.match(answer.message, /not valid UTF-8/, name);
      }
    });

    test("a binary message that cannot be decoded is invalid_argument on every path, never internal", async () => {
      const env = (m: Buffer, flags = 0) => {
        const b = Buffer.alloc(5 + m.length);
        b[0] = flags;
        b.writeUInt32BE(m.length, 1);
        m.copy(b, 5);
        return b;
      };
      const broken: [string, Buffer][] = [
        ["truncated", Buffer.from([0x0a, 0x05, 0x61])],
        ["groups nested past the limit", Buffer.alloc(1000, 0x1b)],
        ["wire type 7", Buffer.from([0x0f])],
      ];
      for (const [what, m] of broken) {
        const cases: [string, Record<string, string>, Buffer][] = [
          ["Connect proto (fast path)", { "content-type": "application/proto" }, m],
          ["Connect proto gzip (connect-node)", { "content-type": "application/proto", "content-encoding": "gzip" }, gzipSync(m)],
          ["gRPC-Web (connect-node)", { "content-type": "application/grpc-web+proto" }, env(m)],
          ["gRPC-Web gzip (connect-node)", { "content-type": "application/grpc-web+proto", "grpc-encoding": "gzip" }, env(gzipSync(m), 1)],
        ];
        for (const [name, headers, body] of cases) {
          const r = await fetch(`${base}/${CacheService.typeName}/Get`, { method: "POST", headers, body });
          const raw = Buffer.from(await r.arrayBuffer());
          const text = raw.toString("latin1");
          const grpc = r.headers.get("grpc-status") ?? /grpc-status:\s*(\d+)/.exec(text)?.[1];
          const message = decodeURIComponent(r.headers.get("grpc-message") ?? /grpc-message: (\S+)/.exec(text)?.[1] ?? "") || text;
          if (name.startsWith("gRPC")) assert.equal(grpc, String(Code.InvalidArgument), `${what}, ${name}: ${message}`);
          else assert.equal(r.status, 400, `${what}, ${name}: ${message}`);
          assert.match(message, /cannot decode the request/, `${what}, ${name}`);
        }
      }
      // Still served: a good gRPC-Web call after all that.
      const ok = await createClient(CacheService, createGrpcWebTransport({ baseUrl: base, httpVersion: "1.1" })).get({ key: "k" });
      assert.equal(ok.ttlSeconds, 7);
    });

    test("Connect JSON errors carry google.rpc.BadRequest in details, as connect-node writes them", async () => {
      for (const encoding of ["identity", "gzip"]) {
        const body = JSON.stringify({ key: "invalid" });
        const r = await fetch(`${base}/${CacheService.typeName}/Get`, {
          method: "POST",
          headers: { "content-type": "application/json", ...(encoding === "gzip" ? { "content-encoding": "gzip" } : {}) },
          body: encoding === "gzip" ? gzipSync(body) : body,
        });
        assert.equal(r.status, 400);
        const json = (await r.json()) as { code: string; details: { type: string; value: string; debug: unknown }[] };
        assert.equal(json.code, "invalid_argument");
        assert.deepEqual(json.details.map((d) => [d.type, d.debug]), [["google.rpc.BadRequest", { fieldViolations: [{ field: "key", description: "must be nice" }] }]], encoding);
        assert.match(json.details[0]!.value, /^[A-Za-z0-9+/]+$/, "base64 without padding");
      }
    });

    test("bad requests get clear errors from the fast path", async () => {
      const post = (body: string | Buffer, type: string) => fetch(`${base}/${CacheService.typeName}/Get`, { method: "POST", headers: { "content-type": type }, body });
      let r = await post("{not json", "application/json");
      assert.equal(r.status, 400);
      assert.equal(((await r.json()) as { code: string }).code, "invalid_argument");
      r = await post(Buffer.from([0x7b, 0x22, 0x6b, 0x65, 0x79, 0x22, 0x3a, 0x22, 0xff, 0x22, 0x7d]), "application/json"); // {"key":"\xff"}
      assert.equal(r.status, 400);
      assert.deepEqual(await r.json(), { code: "invalid_argument", message: "cannot decode the request: the JSON is not valid UTF-8: send it encoded as UTF-8" });
      r = await post(JSON.stringify({ key: "k", nope: 1 }), "application/json");
      assert.equal(r.status, 400, "unknown fields are refused");
      r = await post(JSON.stringify({ key: "x".repeat(2000) }), "application/json");
      assert.equal(r.status, 429);
      assert.deepEqual(await r.json(), { code: "resource_exhausted", message: "message size 2010 is larger than configured readMaxBytes 1024" });
      r = await fetch(`${base}/${CacheService.typeName}/Nope`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
      assert.equal(r.status, 404);
    });

    test("a wrong HTTP method (405) or content type (415) is the JSON {code, message}, like every error", async () => {
      const save = `${base}/${CacheService.typeName}/Save`;
      let r = await fetch(save, { method: "GET" });
      assert.equal(r.status, 405);
      assert.equal(r.headers.get("allow"), "POST");
      assert.equal(r.headers.get("content-type"), "application/json");
      assert.deepEqual(await r.json(), { code: "unimplemented", message: `HTTP method GET is not allowed on /${CacheService.typeName}/Save; use POST` });
      r = await fetch(save, { method: "PUT", headers: { "content-type": "application/json" }, body: "{}" });
      assert.equal(r.status, 405);
      for (const [type, shown] of [["text/plain", 'content-type "text/plain"'], [undefined, "a request without content-type"]] as const) {
        r = await fetch(save, { method: "POST", ...(type ? { headers: { "content-type": type } } : {}), body: Buffer.from("{}") }); // bytes: fetch adds no type
        assert.equal(r.status, 415, type);
        assert.equal(r.headers.get("content-type"), "application/json");
        const body = (await r.json()) as { code: string; message: string };
        assert.equal(body.code, "unimplemented");
        assert.ok(body.message.startsWith(`${shown} is not supported on /${CacheService.typeName}/Save; send application/json`), body.message);
      }
      // Connect GET stays allowed where the proto says the method has no side effects.
      const get = `${base}/${CacheService.typeName}/Get`;
      r = await fetch(`${get}?encoding=json&message=${encodeURIComponent(JSON.stringify({ key: "k" }))}`);
      assert.equal(r.status, 200);
      // ... and its errors are JSON too: no encoding (415), a message that does not decode (400, not internal).
      r = await fetch(get);
      assert.equal(r.status, 415);
      assert.equal(((await r.json()) as { code: string }).code, "unimplemented");
      for (const query of ["encoding=proto&base64=1&message=Dw", "encoding=json&message=%7Bx", `encoding=proto&base64=1&compression=gzip&message=${gzipSync(Buffer.from([0x0f])).toString("base64url")}`]) {
        r = await fetch(`${get}?${query}`);
        const body = (await r.json()) as { code: string; message: string };
        assert.equal(r.status, 400, `${query}: ${body.message}`);
        assert.equal(body.code, "invalid_argument", query);
      }
    });

    test("the handler's signal aborts when the client cancels and when the deadline passes", async () => {
      const kit = createClient(CacheService, createGrpcClientTransport({ baseUrl: base, streams: createGrpcTransport({ baseUrl: base }) }));
      for (const how of ["cancel", "deadline"] as const) {
        const seen = new Promise<unknown>((r) => (aborted = r));
        const started = new Promise<void>((r) => (abortableStarted = r));
        const ac = new AbortController();
        const call = kit.get({ key: "abortable" }, how === "cancel" ? { signal: ac.signal } : { timeoutMs: 200 });
        if (how === "cancel") void started.then(() => ac.abort());
        const e = await failure(call);
        assert.equal(e.code, how === "cancel" ? Code.Canceled : Code.DeadlineExceeded, how);
        const reason = ConnectError.from(await seen);
        assert.ok([Code.Canceled, Code.DeadlineExceeded].includes(reason.code), `${how}: the server side aborted (${reason.message})`);
      }
    });

    test("the kit's client: unavailable when nobody listens; a burst over the stream cap opens another session", async () => {
      const closed = await new Promise<number>((resolve) => {
        const s = net.createServer().listen(0, "127.0.0.1", () => {
          const { port } = s.address() as net.AddressInfo;
          s.close(() => resolve(port));
        });
      });
      const down = createClient(CacheService, createGrpcClientTransport({ baseUrl: `http://127.0.0.1:${closed}`, streams: createGrpcTransport({ baseUrl: base }) }));
      assert.equal((await failure(down.get({ key: "k" }))).code, Code.Unavailable);

      const transport = createGrpcClientTransport({ baseUrl: base, streams: createGrpcTransport({ baseUrl: base }), maxStreamsPerSession: 4 });
      const client = createClient(CacheService, transport);
      const all = new Promise<void>((r) => (heldArrived = () => held.length === 6 && r()));
      const calls = Array.from({ length: 6 }, () => client.get({ key: "hold" }));
      await all;
      assert.deepEqual(transport.stats(), { sessions: 2, inFlight: 6 });
      for (const release of held.splice(0)) release();
      assert.equal((await Promise.all(calls)).length, 6);
      assert.equal(transport.stats().inFlight, 0);
      transport.close();
    });

    test("in-process peers: unary calls reach the implementation; a token this process verified for the calling request is not verified again", async () => {
      const { inProcessPeer, newInternalIdentity } = await import("./peers.js");
      const { callContext } = await import("./context.js");
      const { principalOf } = await import("./auth.js");
      const verified: string[] = [];
      const principal = (token: string) => ({ userId: "u", companyId: "c", role: "member" as const, sessionId: "s", expiresAt: 2e9, token });
      const verifier: TokenVerifier = { verify: async (token) => (verified.push(token), principal(token)) };
      const who: ServiceModule = {
        name: "who",
        services: [CacheService],
        routes(router) {
          router.service(CacheService, { get: (_req, ctx) => ({ value: new TextEncoder().encode(principalOf(ctx).token) }) });
        },
      };
      const client = createClient(CacheService, inProcessPeer("caller", who, { log, verifier, internal: newInternalIdentity(), fastPath }));
      const asCaller = (token: string) =>
        callContext.run({ requestId: "r", authorization: "Bearer t1", principal: principal("t1") }, () => client.get({ key: "k" }, { headers: { authorization: `Bearer ${token}` } }));
      assert.equal(new TextDecoder().decode((await asCaller("t1")).value), "t1");
      assert.deepEqual(verified, fastPath ? [] : ["t1"], "the calling request's verified token is reused (on the fast path)");
      assert.equal(new TextDecoder().decode((await asCaller("t2")).value), "t2");
      assert.deepEqual(verified, fastPath ? ["t2"] : ["t1", "t2"], "any other token is verified");
      assert.equal((await failure(client.get({ key: "k" }))).code, Code.Unauthenticated, "no token outside a call");
    });

    test("server streams: gRPC and Connect streaming on the fast path, gRPC-Web on connect-node: same events, errors after messages, cancel ends the handler", async () => {
      const { ChatService } = await import("@crm/gen/crm/chat/v1/chat_pb");
      let ended: () => void = () => {};
      const streams: ServiceModule = {
        name: "streams",
        services: [ChatService],
        publicMethods: [`/${ChatService.typeName}/Subscribe`],
        routes(router) {
          router.service(ChatService, {
            async *subscribe(req, ctx) {
              ctx.responseHeader.set("x-stream", "yes");
              for (let i = 1n; i <= 3n; i++) yield { event: { case: "heartbeat", value: { lastSeq: i } } };
              if (req.chatId === "fail") throw new AppError("not_found", "chat fail not found");
              if (req.chatId === "endless") {
                try {
                  await new Promise<void>((resolve) => ctx.signal.addEventListener("abort", () => resolve(), { once: true }));
                } finally {
                  ended();
                }
              }
              ctx.responseTrailer.set("x-done", ctx.protocolName);
            },
          });
        },
      };
      const s = await startServer({ modules: [streams], port: 0, host: "127.0.0.1", log, verifier: nobody, readMaxBytes: 1024, shutdownTimeoutMs: 1000, fastPath });
      const url = `http://127.0.0.1:${s.port}`;
      try {
        const variants: [string, Transport, string][] = [
          ["gRPC", createGrpcTransport({ baseUrl: url }), "grpc"],
          ["Connect binary h2", createConnectTransport({ baseUrl: url, httpVersion: "2", useBinaryFormat: true }), "connect"],
          ["Connect JSON h2", createConnectTransport({ baseUrl: url, httpVersion: "2" }), "connect"],
          ["gRPC-Web HTTP/1.1 (connect-node)", createGrpcWebTransport({ baseUrl: url, httpVersion: "1.1" }), "grpc-web"],
        ];
        for (const [name, transport, protocol] of variants) {
          const client = createClient(ChatService, transport);
          const seen: bigint[] = [];
          let header: Headers | undefined;
          let trailer: Headers | undefined;
          for await (const ev of client.subscribe({ chatId: "c" }, { onHeader: (h) => (header = h), onTrailer: (t) => (trailer = t) })) if (ev.event.case === "heartbeat") seen.push(ev.event.value.lastSeq);
          assert.deepEqual(seen, [1n, 2n, 3n], name);
          assert.equal(header?.get("x-stream"), "yes", name);
          assert.equal(trailer?.get("x-done"), protocol, name);

          const got: bigint[] = [];
          const e = await failure((async () => {
            for await (const ev of client.subscribe({ chatId: "fail" })) if (ev.event.case === "heartbeat") got.push(ev.event.value.lastSeq);
          })());
          assert.deepEqual(got, [1n, 2n, 3n], `${name}: the messages before the error arrive`);
          assert.equal(e.code, Code.NotFound, name);
          assert.equal(e.metadata.get("crm-error"), "not_found", name);

          const done = new Promise<void>((r) => (ended = r));
          const ac = new AbortController();
          let n = 0;
          const cancelled = await failure((async () => {
            for await (const _ of client.subscribe({ chatId: "endless" }, { signal: ac.signal })) if (++n === 3) ac.abort();
          })());
          assert.equal(cancelled.code, Code.Canceled, name);
          await done; // the handler saw its signal abort and ended
        }
      } finally {
        await s.close();
      }
    });
  });
}

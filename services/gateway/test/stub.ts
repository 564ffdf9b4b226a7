/**
 * A stand-in upstream for the gateway tests: one mTLS HTTP/2 (+HTTP/1.1) server that speaks
 * Connect, gRPC and gRPC-Web for crm.auth.v1.AuthService, grpc.health.v1.Health and
 * ChatService/Subscribe (one heartbeat, then silence: what a stream without heartbeats looks
 * like to nginx), and answers every other /crm.* path with a JSON echo of what it received. It
 * records each request (path, upstream name from the Host/:authority nginx sent, identity and
 * trace headers, the client cert's CN), so a test can prove that a rejected request never
 * reached a service.
 */
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import type { TLSSocket } from "node:tls";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { AuthService, CheckResponseSchema, Role } from "@crm/gen/crm/auth/v1/auth_pb";
import { ApiKeyService } from "@crm/gen/crm/auth/v1/api_keys_pb";
import { ChatService } from "@crm/gen/crm/chat/v1/chat_pb";
import { Health, HealthCheckResponse_ServingStatus } from "@crm/gen/grpc/health/v1/health_pb";

export interface SeenRequest {
  path: string;
  host: string;
  method: string;
  contentType: string;
  userId?: string | undefined;
  companyId?: string | undefined;
  role?: string | undefined;
  authorization?: string | undefined;
  realIp?: string | undefined;
  requestId?: string | undefined;
  traceparent?: string | undefined;
  tracestate?: string | undefined;
  peerCn?: string | undefined;
  /** Serial number of the client certificate nginx showed (a renewed one has a new serial). */
  peerSerial?: string | undefined;
  body?: string;
}

export interface Stub {
  port: number;
  seen: SeenRequest[];
  /** TLS connections accepted so far (nginx keeps idle upstream connections for reuse). */
  readonly connections: number;
  close(): Promise<void>;
}

const roles: Record<string, Role> = { owner: Role.OWNER, admin: Role.ADMIN, member: Role.MEMBER };

/** The one API key the stub's auth knows, and who it is (ExchangeApiKey answers with these). */
export const STUB_API_KEY = `crm_live_0123456789ab_${"K".repeat(43)}`;
export const STUB_API_KEY_ID = "00000000-0000-4000-8000-0000000000a1";
export const STUB_API_KEY_USER = "00000000-0000-4000-8000-0000000000a2";
export const STUB_API_KEY_COMPANY = "00000000-0000-4000-8000-0000000000a3";
let exchanges = 0;

function routes(router: ConnectRouter) {
  router.service(AuthService, {
    check(_req, ctx) {
      const h = ctx.requestHeader;
      if (!h.get("x-user-id")) throw new ConnectError("stub: no identity from the gateway", Code.Unauthenticated);
      return create(CheckResponseSchema, {
        userId: h.get("x-user-id") ?? "",
        companyId: h.get("x-company-id") ?? "",
        role: roles[h.get("x-role") ?? ""] ?? Role.UNSPECIFIED,
        sessionId: h.get("x-session-id") ?? "",
      });
    },
    login(req, ctx) {
      if (req.password !== "right") throw new ConnectError("wrong email or password", Code.Unauthenticated);
      ctx.responseHeader.append("set-cookie", "access_token=stub-access; Path=/; HttpOnly; Secure; SameSite=Strict");
      return { userId: "u-login", companyId: "c-login", role: Role.OWNER, accessToken: "stub-access" };
    },
    refresh(_req, ctx) {
      const cookie = ctx.requestHeader.get("cookie") ?? "";
      if (!/refresh_token=good/.test(cookie)) throw new ConnectError("refresh token is not valid", Code.Unauthenticated);
      ctx.responseHeader.append("set-cookie", "access_token=fresh; Path=/; HttpOnly; Secure; SameSite=Strict");
      ctx.responseHeader.append("set-cookie", "refresh_token=next; Path=/auth; HttpOnly; Secure; SameSite=Strict");
      return { accessToken: "fresh" };
    },
    getJwks() {
      return { keys: [{ kty: "RSA", kid: "stub", use: "sig", alg: "RS256", n: "AQAB", e: "AQAB" }] };
    },
  });
  // auth's exchange as the gateway's auth_request sees it: identity headers and the access token to send on
  router.service(ApiKeyService, {
    exchangeApiKey(req, ctx) {
      if (req.key !== STUB_API_KEY) throw new ConnectError("unknown API key", Code.Unauthenticated);
      const token = `exchanged-${++exchanges}`;
      for (const [k, v] of [["x-user-id", STUB_API_KEY_USER], ["x-company-id", STUB_API_KEY_COMPANY], ["x-role", "member"], ["x-session-id", STUB_API_KEY_ID], ["x-access-token", token], ["x-accel-expires", "60"]]) {
        ctx.responseHeader.set(k!, v!);
      }
      return { accessToken: token, apiKeyId: STUB_API_KEY_ID, userId: STUB_API_KEY_USER, companyId: STUB_API_KEY_COMPANY };
    },
  });
  router.service(Health, {
    check() {
      return { status: HealthCheckResponse_ServingStatus.SERVING };
    },
    async *watch(_req, ctx) {
      // three updates, then quiet until the caller goes away (a long-lived stream)
      for (let i = 0; i < 3; i++) {
        yield { status: HealthCheckResponse_ServingStatus.SERVING };
        await new Promise((r) => setTimeout(r, 20));
      }
      await new Promise<void>((resolve) => ctx.signal.addEventListener("abort", () => resolve(), { once: true }));
    },
  });
  router.service(ChatService, {
    async *subscribe(_req, ctx) {
      yield { event: { case: "heartbeat", value: {} } };
      await new Promise<void>((resolve) => ctx.signal.addEventListener("abort", () => resolve(), { once: true }));
    },
  });
}

export async function startStub(opts: {
  cert: Buffer;
  key: Buffer;
  ca: Buffer;
  port?: number;
  /** answer every path with the JSON echo (benchmarks: the same work behind every route) */
  echoAll?: boolean;
  /** "optional" lets a load generator without a client certificate call it directly */
  clientAuth?: "require" | "optional";
}): Promise<Stub> {
  const seen: SeenRequest[] = [];
  const adapter = connectNodeAdapter({ routes });
  const server = http2.createSecureServer(
    { cert: opts.cert, key: opts.key, ca: opts.ca, requestCert: true, rejectUnauthorized: opts.clientAuth !== "optional", allowHTTP1: true },
    (req, res) => {
      const socket = req.socket as TLSSocket;
      const h = req.headers;
      const one = (v: string | string[] | undefined) => (Array.isArray(v) ? v.join(",") : v);
      const rec: SeenRequest = {
        path: (req.url ?? "").split("?")[0] ?? "",
        host: one(h[":authority"]) ?? one(h.host) ?? "",
        method: req.method ?? "",
        contentType: one(h["content-type"]) ?? "",
        userId: one(h["x-user-id"]),
        companyId: one(h["x-company-id"]),
        role: one(h["x-role"]),
        authorization: one(h.authorization),
        realIp: one(h["x-real-ip"]),
        requestId: one(h["x-request-id"]),
        traceparent: one(h.traceparent),
        tracestate: one(h.tracestate),
        peerCn: socket.getPeerCertificate?.()?.subject?.CN as string | undefined,
        peerSerial: socket.getPeerCertificate?.()?.serialNumber,
      };
      if (!opts.echoAll) seen.push(rec);
      const path = rec.path;
      if ((!opts.echoAll && path.startsWith("/crm.auth.v1.")) || path.startsWith("/grpc.health.v1.") || path === "/crm.chat.v1.ChatService/Subscribe") {
        adapter(req as never, res as never);
        return;
      }
      // any other service: echo what arrived (a Connect JSON answer)
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        rec.body = Buffer.concat(chunks).toString();
        let parsed: unknown = null;
        try {
          parsed = rec.body ? JSON.parse(rec.body) : null;
        } catch {
          parsed = rec.body;
        }
        const text = JSON.stringify({ path, host: rec.host, method: rec.method, contentType: rec.contentType, body: parsed, userId: rec.userId ?? "" });
        res.writeHead(200, { "content-type": "application/json" });
        res.end(text);
      });
    },
  );
  const sockets = new Set<import("node:net").Socket>();
  let connections = 0;
  server.on("connection", (s: import("node:net").Socket) => {
    sockets.add(s);
    s.once("close", () => sockets.delete(s));
  });
  server.on("secureConnection", () => connections++);
  server.on("session", (session) => session.on("error", () => {}));
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? 0, "127.0.0.1", () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    seen,
    get connections() {
      return connections;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      }),
  };
}

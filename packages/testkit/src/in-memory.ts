/**
 * Handlers tested in memory: no network, no database. `inMemory()` makes a small world of made-up
 * callers and serves routes with connect's createRouterTransport through the kit's own server
 * interceptors, in the order a server runs them (call context, errors, in-process peer identity,
 * auth, text rules), so handlers read the caller, and errors leave them (codes, the crm-error
 * reason, google.rpc.BadRequest details), exactly as on a real server.
 *
 * A service under test talks to a fake store served the same way: `serve(routes, { from: "timers" })`
 * is the peer transport the service would get, forwarding the caller's token and naming the
 * calling service, so the fake store reads the same principal and peer identity a real store does.
 */
import { randomUUID } from "node:crypto";
import assert from "node:assert/strict";
import type { DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, createRouterTransport, type Client, type ConnectRouter, type Interceptor, type Transport } from "@connectrpc/connect";
import {
  AppError, authInterceptor, clientIpKey, contextInterceptor, createLogger, errorInterceptor, forwardInterceptor, INTERNAL_HEADER, internalPeerInterceptor,
  newInternalIdentity, reasonOf, textInterceptor, violationsOf, type ErrorReason, type Logger, type Principal, type Role, type TokenVerifier, type Violation,
} from "@crm/kit";

/** The header a test sets to play the client's address (a real server takes it from the socket). */
const CLIENT_IP_HEADER = "x-test-client-ip";
export const TEST_CLIENT_IP = "192.0.2.10";

export interface Who {
  /** The user calling (their token is sent as Authorization: Bearer). */
  user?: Principal | undefined;
  /** An access token to send as Authorization: Bearer (one a handler under test issued). */
  token?: string | undefined;
  /** One of our services calling (the in-process identity: a secret of this world plus the name). */
  service?: string | undefined;
  /** The client's address (clientIpKey); default TEST_CLIENT_IP. */
  ip?: string | undefined;
}

export interface ServeOptions {
  /** Full method paths callable without a token ("/crm.auth.v1.AuthService/Login"). */
  publicMethods?: Iterable<string>;
  /**
   * The service that calls through this transport: makes it the peer transport that service gets
   * in a deployment (the caller's token forwarded from the call context, the service named).
   */
  from?: string;
  /** Records the calls that reach the handlers, and fails the ones a test asks to (`tap()`). */
  tap?: Tap;
}

/** What a test sees of the calls reaching a served implementation (after auth and the text rules). */
export interface Tap {
  /** Method names ("StartTimerDB"), in the order they arrived. */
  calls: string[];
  /** The next call (of `method`, when given) throws `err` in place of the handler, as a failing store would. */
  failNext(err: unknown, method?: string): void;
  interceptor: Interceptor;
}

export function tap(): Tap {
  const calls: string[] = [];
  const failures: { err: unknown; method?: string | undefined }[] = [];
  return {
    calls,
    failNext(err, method) {
      failures.push({ err, method });
    },
    interceptor: (next) => (req) => {
      calls.push(req.method.name);
      const i = failures.findIndex((f) => f.method === undefined || f.method === req.method.name);
      if (i >= 0) return Promise.reject(failures.splice(i, 1)[0]!.err);
      return next(req);
    },
  };
}

export interface InMemory {
  log: Logger;
  /** Verifies the tokens of users made by `user()` (and of `verifier` when given to inMemory). */
  verifier: TokenVerifier;
  /** A verified caller; a new company when companyId is unset, role member unless set (an API key when `apiKey` is set). */
  user(init?: Partial<Omit<Principal, "token">>): Principal;
  /** Ends a user's session: their token is refused from now on (session_ended), as after Logout. */
  endSession(sessionId: string): void;
  /** A transport serving `routes` through the kit's server interceptors. */
  serve(routes: (router: ConnectRouter) => void, opts?: ServeOptions): Transport;
  /** A typed client of `transport`, calling as `who` (nobody when unset). */
  client<S extends DescService>(service: S, transport: Transport, who?: Who | Principal): Client<S>;
}

const isPrincipal = (w: Who | Principal): w is Principal => "userId" in w;

export function inMemory(opts: { verifier?: TokenVerifier } = {}): InMemory {
  const log = createLogger("test", "silent");
  const internal = newInternalIdentity();
  const principals = new Map<string, Principal>();
  const ended = new Set<string>();

  const verifier: TokenVerifier = {
    async verify(token) {
      const p = principals.get(token);
      if (!p) {
        if (opts.verifier) return opts.verifier.verify(token);
        throw new AppError("token_invalid", "access token is invalid: log in again");
      }
      if (ended.has(p.sessionId)) throw new AppError("session_ended", "this session has ended (logged out or revoked): log in again");
      return p;
    },
  };

  /** What the server learns from the connection: here, the client's address from a test header. */
  const connection: Interceptor = (next) => (req) => {
    req.contextValues.set(clientIpKey, req.header.get(CLIENT_IP_HEADER) ?? TEST_CLIENT_IP);
    req.header.delete(CLIENT_IP_HEADER);
    return next(req);
  };

  return {
    log,
    verifier,
    user(init = {}) {
      const token = `test-token-${randomUUID()}`;
      const p: Principal = {
        userId: init.userId ?? randomUUID(),
        companyId: init.companyId ?? randomUUID(),
        role: init.role ?? ("member" satisfies Role),
        sessionId: init.sessionId ?? randomUUID(),
        expiresAt: init.expiresAt ?? Math.floor(Date.now() / 1000) + 900,
        token,
        ...(init.apiKey ? { apiKey: init.apiKey } : {}),
      };
      principals.set(token, p);
      return p;
    },
    endSession(sessionId) {
      ended.add(sessionId);
    },
    serve(routes, o = {}) {
      return createRouterTransport(routes, {
        router: {
          interceptors: [connection, contextInterceptor(), errorInterceptor(log), internalPeerInterceptor(internal), authInterceptor(verifier, new Set(o.publicMethods ?? [])), textInterceptor(), ...(o.tap ? [o.tap.interceptor] : [])],
        },
        transport: { interceptors: o.from ? [forwardInterceptor(o.from, internal)] : [] },
      });
    },
    client(service, transport, who = {}) {
      const w: Who = isPrincipal(who) ? { user: who } : who;
      return createClient(
        service,
        withHeaders(transport, (h) => {
          const token = w.token ?? w.user?.token;
          if (token) h.set("authorization", `Bearer ${token}`);
          if (w.service) h.set(INTERNAL_HEADER, `${internal.secret} ${w.service}`);
          if (w.ip) h.set(CLIENT_IP_HEADER, w.ip);
        }),
      );
    },
  };
}

/** `transport` with `set` adding request headers to every call. */
function withHeaders(transport: Transport, set: (h: Headers) => void): Transport {
  const headers = (init: ConstructorParameters<typeof Headers>[0]) => {
    const h = new Headers(init);
    set(h);
    return h;
  };
  return {
    unary: (method, signal, timeoutMs, header, input, contextValues) => transport.unary(method, signal, timeoutMs, headers(header), input, contextValues),
    stream: (method, signal, timeoutMs, header, input, contextValues) => transport.stream(method, signal, timeoutMs, headers(header), input, contextValues),
  };
}

export interface ExpectedError {
  /** The crm-error reason the caller can branch on. */
  reason?: ErrorReason;
  /** Exactly these fields are named by google.rpc.BadRequest violations (in this order). */
  fields?: string[];
  message?: RegExp;
}

/** Awaits a call that must fail with `code`; checks the reason, the field violations and the message; returns the error. */
export async function expectError(p: Promise<unknown>, code: Code, want: ExpectedError = {}): Promise<ConnectError & { violations: Violation[] }> {
  let err: unknown;
  try {
    await p;
  } catch (e) {
    err = e;
  }
  assert.ok(err !== undefined, `expected ${Code[code]}, but the call succeeded`);
  assert.ok(err instanceof ConnectError, `expected a ConnectError, got ${String(err)}`);
  assert.equal(Code[err.code], Code[code], err.message);
  if (want.reason) assert.equal(reasonOf(err), want.reason, `reason of: ${err.message}`);
  const violations = violationsOf(err);
  if (want.fields) assert.deepEqual(violations.map((v) => v.field), want.fields, err.message);
  if (want.message) assert.match(err.rawMessage, want.message);
  return Object.assign(err, { violations });
}

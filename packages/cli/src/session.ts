/**
 * The connection to one CRM server: typed clients from @crm/gen over connect-node, with the
 * caller's access token added to every call. The token comes from the stored session and is
 * refreshed silently when it is about to expire (or when the server says it expired), the new
 * refresh token stored at once; CRM_API_KEY, when set, is sent instead of any session.
 */
import type { DescService } from "@bufbuild/protobuf";
import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { AuthService, Role } from "@crm/gen/crm/auth/v1/auth_pb";
import { CredentialStore, type StoredSession } from "./config.js";
import { authError } from "./errors.js";

/** Makes the transport to `baseUrl` (tests pass an in-memory one). */
export type TransportFactory = (baseUrl: string, interceptors: Interceptor[]) => Transport;

export const DEFAULT_SERVER = "http://127.0.0.1:8080";

export const connectTransport: TransportFactory = (baseUrl, interceptors) =>
  createConnectTransport({ baseUrl, httpVersion: "1.1", useBinaryFormat: true, interceptors });

/** A token with less than this left is refreshed before use. */
const EARLY_MS = 30_000;

export function normaliseServer(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new Error(`not a URL: ${JSON.stringify(url)} (e.g. http://127.0.0.1:8080)`);
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") throw new Error(`not an http(s) URL: ${url}`);
  return u.href.replace(/\/+$/, "");
}

export const iso = (t: Timestamp | undefined) => (t ? timestampDate(t).toISOString() : "");
export const roleName = (r: Role) => (Role[r] ?? "ROLE_UNSPECIFIED").replace(/^ROLE_/, "").toLowerCase();

export class Api {
  private cached: StoredSession | undefined;
  private readonly plain: Transport;
  private readonly authed: Transport;

  constructor(
    readonly server: string,
    readonly store: CredentialStore,
    makeTransport: TransportFactory,
    private readonly apiKey?: string,
    private readonly now: () => number = Date.now,
  ) {
    const agent: Interceptor = (next) => (req) => {
      req.header.set("user-agent", "crm-cli");
      return next(req);
    };
    const auth: Interceptor = (next) => async (req) => {
      const token = await this.accessToken();
      req.header.set("authorization", `Bearer ${token}`);
      try {
        return await next(req);
      } catch (e) {
        // An access token the server no longer takes (expired early, key rotated): one refresh and
        // one retry of a unary call. A stream's caller reconnects with accessToken() instead.
        if (this.apiKey || req.stream || ConnectError.from(e).code !== Code.Unauthenticated) throw e;
        const fresh = await this.refresh(token);
        req.header.set("authorization", `Bearer ${fresh.accessToken}`);
        return await next(req);
      }
    };
    this.plain = makeTransport(server, [agent]);
    this.authed = makeTransport(server, [agent, auth]);
  }

  /** A client that sends the caller's token (`auth: false`: none, for Login and Refresh). */
  client<S extends DescService>(service: S, opts: { auth?: boolean } = {}): Client<S> {
    return createClient(service, opts.auth === false ? this.plain : this.authed);
  }

  /** Logs in and stores the session (mode 0600) as this server's, the current one. */
  async login(who: { email?: string; phone?: string }, password: string): Promise<StoredSession> {
    const r = await this.client(AuthService, { auth: false }).login({ email: who.email ?? "", phone: who.phone ?? "", password });
    const s: StoredSession = {
      login: who.email || who.phone || "",
      userId: r.userId,
      companyId: r.companyId,
      role: roleName(r.role),
      refreshToken: r.refreshToken,
      refreshExpiresAt: iso(r.refreshExpiresAt),
      accessToken: r.accessToken,
      accessExpiresAt: iso(r.accessExpiresAt),
    };
    await this.store.put(this.server, s, true);
    this.cached = s;
    return s;
  }

  /** The stored session of this server, if any. */
  async session(): Promise<StoredSession | undefined> {
    return this.cached ?? (await this.store.session(this.server));
  }

  /** A valid access token: the stored one, or a refreshed one. */
  async accessToken(): Promise<string> {
    if (this.apiKey) return this.apiKey;
    const s = await this.session();
    if (!s) throw authError(`not logged in to ${this.server}: run \`crm login\``);
    if (this.fresh(s)) {
      this.cached = s;
      return s.accessToken;
    }
    return (await this.refresh(s.accessToken)).accessToken;
  }

  /**
   * Replaces `stale` (an access token that expired or was refused) by refreshing, under the lock
   * file: when another crm process refreshed meanwhile, its tokens are taken instead.
   */
  async refresh(stale: string): Promise<StoredSession> {
    if (this.apiKey) throw authError("the API key in CRM_API_KEY was refused");
    return this.store.withLock(async () => {
      const s = await this.store.session(this.server);
      if (!s) throw authError(`not logged in to ${this.server}: run \`crm login\``);
      if (s.accessToken !== stale && this.fresh(s)) return (this.cached = s);
      let r;
      try {
        r = await this.client(AuthService, { auth: false }).refresh({ refreshToken: s.refreshToken });
      } catch (e) {
        const err = ConnectError.from(e);
        if (err.code !== Code.Unauthenticated) throw err;
        await this.store.put(this.server, undefined);
        this.cached = undefined;
        throw authError(`your session at ${this.server} has ended (${err.rawMessage}): run \`crm login\``);
      }
      const next: StoredSession = { ...s, refreshToken: r.refreshToken, refreshExpiresAt: iso(r.refreshExpiresAt) || s.refreshExpiresAt, accessToken: r.accessToken, accessExpiresAt: iso(r.accessExpiresAt) };
      await this.store.put(this.server, next);
      return (this.cached = next);
    });
  }

  /** Forgets this server's session locally. */
  async forget(): Promise<void> {
    this.cached = undefined;
    await this.store.put(this.server, undefined);
  }

  private fresh(s: StoredSession): boolean {
    const exp = Date.parse(s.accessExpiresAt);
    return Boolean(s.accessToken) && Number.isFinite(exp) && exp - this.now() > EARLY_MS;
  }
}

/**
 * The browser's session, kept in the HttpOnly cookies the API sets (access_token, refresh_token):
 * this code never sees a token. It knows who is signed in (Check) and when the access token
 * expires, refreshes it a minute before (Refresh with the cookie), and retries a call once after a
 * refresh when the server says unauthenticated (e.g. after the laptop slept).
 *
 * Refresh tokens are single-use (reuse ends the session), so tabs must not refresh at once: the
 * refresh runs under a Web Lock shared by every tab of the origin, and a tab that gets the lock
 * after another tab refreshed sees the new expiry via Check and does not refresh again. Logging
 * in or out in one tab is told to the others over a BroadcastChannel.
 */
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { AuthService, Role } from "@crm/gen/crm/auth/v1/auth_pb";

export interface Session {
  userId: string;
  companyId: string;
  sessionId: string;
  /** The role in the access token: a change reaches it with the next refresh. */
  role: Role;
  /** When the access token (cookie) expires. */
  expiresAt: Date;
}

/** undefined: not known yet (first Check in flight); null: signed out. */
export type SessionState = Session | null | undefined;

const baseUrl = window.location.origin;
// Cookies go with every call; "include" also covers an API on another origin (CORS with credentials).
const credentialed: typeof fetch = (input, init) => fetch(input, { ...init, credentials: "include" });

/** Calls that must not trigger a refresh-and-retry (they are the auth flow itself). */
const noRetry = new Set(["Login", "RegisterCompany", "Refresh", "Check", "RequestPasswordReset", "ResetPassword", "AcceptInvite"]);

const retryAfterRefresh: Interceptor = (next) => async (req) => {
  // A refresh under way (e.g. the page's first, when the access cookie had expired): wait for the
  // new cookie instead of sending the old one, failing, refreshing and sending again.
  if (inFlight && !(req.service.typeName === AuthService.typeName && noRetry.has(req.method.name))) await inFlight.catch(() => false);
  try {
    return await next(req);
  } catch (e) {
    const err = ConnectError.from(e);
    if (err.code !== Code.Unauthenticated || req.stream || (req.service.typeName === AuthService.typeName && noRetry.has(req.method.name))) throw e;
    if (!(await refresh())) throw e;
    return next(req);
  }
};

const plain = createConnectTransport({ baseUrl, fetch: credentialed });
/** The transport every screen uses: cookies, and one retry after a silent refresh. */
export const transport = createConnectTransport({ baseUrl, fetch: credentialed, interceptors: [retryAfterRefresh] });
const auth = createClient(AuthService, plain);

let state: SessionState = undefined;
const listeners = new Set<() => void>();
let timer: ReturnType<typeof setTimeout> | undefined;
const channel = typeof BroadcastChannel === "function" ? new BroadcastChannel("crm.session") : undefined;

/**
 * Set while this browser has a session, to when its access cookie expires (ms since the epoch; not
 * a secret, and the same for every tab of the origin). A visitor without it is shown the login
 * screen at once, and never pays a Refresh round trip that could only fail (the cookies are
 * unreadable here). With it, a page whose access cookie has expired refreshes first instead of
 * asking Check, being refused, then refreshing; and a tab that is about to refresh sees whether
 * another tab has done it already.
 */
const hintKey = "crm.signedIn";

/** The access cookie's expiry the hint records: 0 when unknown (an older hint), undefined without one. */
function storedExpiry(): number | undefined {
  const v = localStorage.getItem(hintKey);
  if (v === null) return undefined;
  const n = Number(v);
  return Number.isFinite(n) && n > 1e12 ? n : 0;
}

function set(next: SessionState, tell = false) {
  state = next;
  if (next) localStorage.setItem(hintKey, String(next.expiresAt.getTime()));
  else if (next === null) localStorage.removeItem(hintKey);
  clearTimeout(timer);
  if (next) {
    // A minute before expiry (at least 5 s from now); timers are clamped when a tab sleeps, and
    // the retry interceptor covers a call made after the token lapsed anyway.
    const wait = Math.max(5_000, next.expiresAt.getTime() - Date.now() - 60_000);
    timer = setTimeout(() => void refresh(), Math.min(wait, 2 ** 31 - 1));
  }
  if (tell) channel?.postMessage(next ? "signed-in" : "signed-out");
  for (const l of listeners) l();
}

channel?.addEventListener("message", (ev) => {
  if (ev.data === "signed-out") set(null);
  else void check();
});

export const session = {
  get: (): SessionState => state,
  subscribe(l: () => void) {
    listeners.add(l);
    return () => listeners.delete(l);
  },
};

/** True when this browser had a session last time (a guess: the cookies cannot be read here). */
export function probablySignedIn(): boolean {
  return localStorage.getItem(hintKey) !== null;
}

let first: Promise<Session | null> | undefined;

/**
 * The page's first Check, started once (main.tsx starts it before React renders, in parallel).
 * When the hint says the access cookie has expired (the tab was closed for over 15 minutes) it
 * refreshes first: Refresh then Check, two round trips instead of Check, Refresh, Check; and the
 * screen's own calls, started at the same time, wait for the new cookie (the interceptor above).
 */
export function start(): Promise<Session | null> {
  if (first) return first;
  const expiry = storedExpiry();
  if (expiry && expiry < Date.now() + 5_000) {
    first = refresh().then(async (ok) => (ok ? (state ?? null) : check()));
    return first;
  }
  return (first = check());
}

/** Who the cookies belong to; null when nobody is signed in (after trying one refresh). */
export async function check(): Promise<Session | null> {
  try {
    const s = await whoAmI();
    set(s);
    return s;
  } catch (e) {
    if (ConnectError.from(e).code !== Code.Unauthenticated) throw e;
    if (localStorage.getItem(hintKey) && (await refresh())) return state ?? null;
    set(null);
    return null;
  }
}

async function whoAmI(): Promise<Session> {
  const r = await auth.check({});
  return {
    userId: r.userId,
    companyId: r.companyId,
    sessionId: r.sessionId,
    role: r.role,
    expiresAt: r.expiresAt ? new Date(Number(r.expiresAt.seconds) * 1000) : new Date(Date.now() + 60_000),
  };
}

let inFlight: Promise<boolean> | undefined;

/** Renews the access cookie; false (and signed out) when the session has ended. */
export function refresh(): Promise<boolean> {
  const known = state?.expiresAt.getTime() ?? 0;
  inFlight ??= withLock(() => doRefresh(known)).finally(() => (inFlight = undefined));
  return inFlight;
}

/** `known`: the access token's expiry this tab knew when it decided to refresh. */
async function doRefresh(known: number): Promise<boolean> {
  // Another tab may have refreshed while this one waited for the lock: the cookie is newer then,
  // and the hint says so (an older hint, 0, cannot tell: ask).
  const stored = storedExpiry();
  if (stored === 0 || (stored !== undefined && stored > known && stored > Date.now() + 5_000)) {
    try {
      const s = await whoAmI();
      if (s.expiresAt.getTime() > Math.max(known, Date.now() + 5_000)) {
        set(s);
        return true;
      }
    } catch {
      // expired or missing access cookie: refresh below
    }
  }
  try {
    await auth.refresh({});
    set(await whoAmI());
    return true;
  } catch (e) {
    const code = ConnectError.from(e).code;
    if (code === Code.Unavailable || code === Code.Unknown || code === Code.Internal || code === Code.DeadlineExceeded) {
      // The server or network is down, not the session: try again shortly.
      clearTimeout(timer);
      timer = setTimeout(() => void refresh(), 10_000);
      return false;
    }
    set(null, true);
    return false;
  }
}

function withLock<T>(fn: () => Promise<T>): Promise<T> {
  if (!navigator.locks) return fn();
  return navigator.locks.request("crm.refresh", fn);
}

/**
 * The server accepted the password, but the browser did not keep its cookies: they are `Secure`,
 * which browsers honour only over HTTPS or on localhost (a LAN address over plain HTTP is neither).
 */
export class CookiesRefused extends Error {}

/** After Login or RegisterCompany set the cookies. */
export async function signedIn(): Promise<void> {
  try {
    set(await whoAmI(), true);
  } catch (e) {
    if (ConnectError.from(e).code === Code.Unauthenticated && !window.isSecureContext) throw new CookiesRefused("the session cookies were refused on this insecure origin");
    throw e;
  }
}

/**
 * Ends this session (or every session of the user) on the server, which also clears the cookies.
 * When the server cannot be reached this throws and the user stays signed in here: the HttpOnly
 * cookies can only be cleared by the server, so pretending to be logged out would be a lie.
 */
export async function logout(everywhere: boolean): Promise<number> {
  const client = createClient(AuthService, transport); // an expired access token is refreshed first
  try {
    const revoked = everywhere ? (await client.logoutAll({})).revoked : (await client.logout({}), 1);
    if (everywhere) sessionStorage.setItem(loggedOutAllKey, String(revoked)); // for the login screen
    set(null, true);
    return revoked;
  } catch (e) {
    if (ConnectError.from(e).code !== Code.Unauthenticated) throw e;
    set(null, true); // the session had already ended
    return 0;
  }
}

const loggedOutAllKey = "crm.loggedOutAll";

/** How many sessions "log out everywhere" just ended in this tab; read once by the login screen. */
export function takeLoggedOutAll(): number | undefined {
  const n = sessionStorage.getItem(loggedOutAllKey);
  return n === null ? undefined : Number(n);
}
export function forgetLoggedOutAll(): void {
  sessionStorage.removeItem(loggedOutAllKey);
}

export const authClient = auth;

/** Owners and admins see the admin screens (the server refuses everyone else anyway). */
export function isAdmin(s: Session): boolean {
  return s.role === Role.OWNER || s.role === Role.ADMIN;
}

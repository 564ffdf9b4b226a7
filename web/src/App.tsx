/**
 * Routes: /login and /signup for visitors; the e-mailed links' screens (/reset-password,
 * /accept-invite) and /forgot-password for anyone; the shell (companies, people, deals, chats,
 * timers, account, admin) for a signed-in user.
 */
import { Suspense, useEffect, useRef, useState, useSyncExternalStore, type ReactNode } from "react";
import { Link, Redirect, Route, Switch, useLocation, useRoute } from "wouter";
import { useQueryClient } from "@tanstack/react-query";
import { isAdmin, logout, probablySignedIn, session, start, type Session } from "./session";
import { useI18n, localeNames, type Locale } from "./i18n";
import { describeError } from "./errors";
import type { ScreenModule } from "./query";
import { prefetchFor } from "./prefetch";
import { lazyScreen, type LazyScreen } from "./lazy-screen";
import { RunningClock } from "./screens/RunningClock";
import { ChatsLink } from "./screens/UnreadBadge";
import { Login, Signup } from "./screens/Auth";
import { RecordSearch, Records, recordPaths, recordsNav, recordsScreenAt } from "./screens/records";

// The screens behind the login are chunks of their own, fetched on first use (or by boot, below).
const chats = lazyScreen(() => import("./screens/Chats"), (m) => m.Chats);
const timers = lazyScreen(() => import("./screens/Timers"), (m) => m.Timers);
const account = lazyScreen(() => import("./screens/Account"), (m) => m.Account);
// Owners and admins only: never fetched by anyone else (unless they open /admin by its address).
const admin = lazyScreen(() => import("./screens/Admin"), (m) => m.Admin);
// The e-mailed links' screens: one small chunk, fetched only by whoever opens one.
const forgot = lazyScreen(() => import("./screens/Recovery"), (m) => m.ForgotPassword);
const reset = lazyScreen(() => import("./screens/Recovery"), (m) => m.ResetPassword);
const accept = lazyScreen(() => import("./screens/Recovery"), (m) => m.AcceptInvite);
const { Component: Chats } = chats;
const { Component: Timers } = timers;
const { Component: Account } = account;
const { Component: Admin } = admin;
const { Component: ForgotPassword } = forgot;
const { Component: ResetPassword } = reset;
const { Component: AcceptInvite } = accept;

/** The chunk of the screen at `path`: signed in, or (the e-mailed links) for anyone. */
function screenAt(path: string, signedIn: boolean): Pick<LazyScreen<never, object>, "load"> | undefined {
  if (path.startsWith("/forgot-password")) return forgot;
  if (path.startsWith("/reset-password")) return reset;
  if (path.startsWith("/accept-invite")) return accept;
  if (!signedIn) return undefined;
  if (path === "/" || path.startsWith("/chats")) return chats;
  if (path.startsWith("/timers")) return timers;
  if (path.startsWith("/account")) return account;
  if (path.startsWith("/admin")) return admin;
  return recordsScreenAt(path);
}

/** The first screen's chunk, while boot fetches it: App shows "Loading…" instead of suspending. */
let firstChunk: Promise<unknown> | undefined;

/**
 * Called once before the first render. Asks who is signed in (Check) and, when this browser had a
 * session, at the same moment the calls of the screen in the address bar and of the shell
 * (prefetch.ts), and that screen's chunk: a signed-in screen waits for one round trip (its calls
 * and Check in parallel), not for Check, then its chunk, then its calls. A visitor's login screen
 * waits for nothing: it shows while Check runs.
 */
export function boot(): void {
  start().catch(() => {}); // App shows the error
  const { pathname, search } = window.location;
  const signedIn = probablySignedIn();
  const first = screenAt(pathname, signedIn);
  const params = new URLSearchParams(search);
  firstChunk = first
    ?.load()
    .then((m: ScreenModule) => signedIn && m.prefetch?.(pathname, params))
    .catch(() => {}); // the lazy screen reports it
  if (!signedIn) return;
  prefetchFor(pathname, params);
  // The other everyday screens, once this one is up: a click on them then waits for no download.
  void start()
    .then(() => setTimeout(() => [chats, timers].forEach((x) => x !== first && void x.load().catch(() => {})), 1_500))
    .catch(() => {});
}

/** False until the first screen's chunk (fetched by boot) has arrived or failed. */
function useFirstChunk(): boolean {
  const [done, setDone] = useState(firstChunk === undefined);
  useEffect(() => {
    if (!done) void firstChunk?.finally(() => setDone(true));
  }, [done]);
  return done;
}

export function useSession() {
  return useSyncExternalStore(session.subscribe, session.get);
}

export function App() {
  const known = useSession();
  // Not known yet and this browser had no session: the visitor's screens show at once, while Check
  // runs (were the cookies of a session there after all, its answer moves on to the shell).
  const s = known === undefined && !probablySignedIn() ? null : known;
  const { t } = useI18n();
  const [failed, setFailed] = useState<string>();
  const queryClient = useQueryClient();
  useEffect(() => {
    start().catch((e) => setFailed(describeError(e, { t })));
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);
  // Signed out (here, in another tab, or the session ended): nothing of that user stays cached.
  useEffect(() => {
    if (s === null) queryClient.clear();
  }, [s, queryClient]);
  const chunkReady = useFirstChunk();
  const loading = <p className="page-message" aria-busy="true">{t("app.loading")}</p>;
  if (!chunkReady) return loading;
  return (
    <Suspense fallback={loading}>
      <Switch>
        {/* Whoever is signed in: these need no session (a link opened in any browser). */}
        <Route path="/forgot-password">
          <ForgotPassword />
        </Route>
        <Route path="/reset-password">
          <ResetPassword />
        </Route>
        <Route path="/accept-invite">
          <AcceptInvite />
        </Route>
        <Route>
          {failed && s === undefined ? (
            <p role="alert" className="page-message">
              {failed}
            </p>
          ) : s === undefined ? (
            loading
          ) : (
            <Switch>
              <Route path="/login">{s ? <Redirect to="/chats" replace /> : <Login />}</Route>
              <Route path="/signup">{s ? <Redirect to="/chats" replace /> : <Signup />}</Route>
              <Route>{s ? <Shell session={s} /> : <Redirect to="/login" replace />}</Route>
            </Switch>
          )}
        </Route>
      </Switch>
    </Suspense>
  );
}

function NavLink({ href, children }: { href: string; children: ReactNode }) {
  const [active] = useRoute(`${href}/*?`);
  return (
    <Link href={href} aria-current={active ? "page" : undefined}>
      {children}
    </Link>
  );
}

export function LanguageSwitch() {
  const { t, locale, setLocale } = useI18n();
  return (
    <label className="lang">
      <span className="visually-hidden">{t("lang.label")}</span>
      <select value={locale} onChange={(e) => setLocale(e.target.value as Locale)}>
        {(Object.keys(localeNames) as Locale[]).map((l) => (
          <option key={l} value={l} lang={l}>
            {localeNames[l]}
          </option>
        ))}
      </select>
    </label>
  );
}

function Shell({ session: s }: { session: Session }) {
  const i18n = useI18n();
  const { t } = i18n;
  const queryClient = useQueryClient();
  const [, navigate] = useLocation();
  const [status, setStatus] = useState<{ text: string; error?: boolean }>();
  const [busy, setBusy] = useState(false);
  const main = useRef<HTMLElement>(null);
  const [location] = useLocation();
  const first = useRef(true);
  // After client-side navigation, move focus to the new page (screen readers announce it).
  useEffect(() => {
    if (first.current) {
      first.current = false;
      return;
    }
    main.current?.focus();
  }, [location]);

  const out = async (everywhere: boolean) => {
    setBusy(true);
    try {
      await logout(everywhere);
      queryClient.clear();
      navigate("/login", { replace: true });
    } catch (e) {
      setStatus({ text: describeError(e, i18n), error: true });
      setBusy(false);
    }
  };

  return (
    <div className="shell" data-user={s.userId}>
      <a className="skip" href="#main">
        {t("app.skip")}
      </a>
      <header className="top">
        <span className="brand">{t("app.name")}</span>
        <nav aria-label={t("nav.label")}>
          <ul>
            <li>
              <NavLink href="/companies">{recordsNav[i18n.locale].companies}</NavLink>
            </li>
            <li>
              <NavLink href="/people">{recordsNav[i18n.locale].people}</NavLink>
            </li>
            <li>
              <NavLink href="/deals">{recordsNav[i18n.locale].deals}</NavLink>
            </li>
            <li>
              <NavLink href="/tasks">{recordsNav[i18n.locale].tasks}</NavLink>
            </li>
            <li>
              <NavLink href="/reports">{recordsNav[i18n.locale].reports}</NavLink>
            </li>
            <li>
              <ChatsLink />
            </li>
            <li>
              <NavLink href="/timers">{t("nav.timers")}</NavLink>
            </li>
            <li>
              <NavLink href="/account">{t("nav.account")}</NavLink>
            </li>
            {isAdmin(s) && (
              <li>
                <NavLink href="/admin">{t("nav.admin")}</NavLink>
              </li>
            )}
          </ul>
        </nav>
        <RecordSearch />
        <RunningClock />
        <LanguageSwitch />
        <button type="button" onClick={() => void out(false)} disabled={busy}>
          {t("auth.logout")}
        </button>
      </header>
      {status && (
        <p role={status.error ? "alert" : "status"} className={status.error ? "error" : "notice"}>
          {status.text}
        </p>
      )}
      <main id="main" ref={main} tabIndex={-1}>
        <Suspense fallback={<p aria-busy="true">{t("app.loading")}</p>}>
        <Switch>
          <Route path="/">
            <Redirect to="/chats" replace />
          </Route>
          <Route path="/chats">
            <Chats chatId={undefined} me={s.userId} />
          </Route>
          <Route path="/chats/:id">{(p) => <Chats chatId={p.id} me={s.userId} />}</Route>
          <Route path="/timers">
            <Timers />
          </Route>
          <Route path="/account">
            <Account session={s} />
          </Route>
          <Route path="/admin">
            <Redirect to="/admin/members" replace />
          </Route>
          <Route path="/admin/:section">{(p) => (isAdmin(s) && ["members", "invite", "api-keys", "audit", "webhooks", "permissions"].includes(p.section) ? <Admin session={s} /> : <h1>{t(isAdmin(s) ? "app.notFound" : "admin.forbidden")}</h1>)}</Route>
          <Route path={recordPaths}>
            <Records session={s} />
          </Route>
          <Route>
            <h1>{t("app.notFound")}</h1>
          </Route>
        </Switch>
        </Suspense>
      </main>
    </div>
  );
}

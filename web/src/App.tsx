/**
 * Routes: /login and /signup for visitors; the e-mailed links' screens (/reset-password,
 * /accept-invite) and /forgot-password for anyone; the shell (chats, timers, account) for a
 * signed-in user.
 */
import { lazy, Suspense, useEffect, useRef, useState, useSyncExternalStore, type ReactNode } from "react";
import { Link, Redirect, Route, Switch, useLocation, useRoute } from "wouter";
import { useQueryClient } from "@tanstack/react-query";
import { isAdmin, logout, probablySignedIn, session, start, type Session } from "./session";
import { useI18n, localeNames, type Locale } from "./i18n";
import { describeError } from "./errors";
import { RunningClock } from "./screens/RunningClock";
import { Login, Signup } from "./screens/Auth";

// The screens behind the login are chunks of their own. A browser that had a session fetches them
// at once, in parallel with the first Check, so its screen does not wait twice; a visitor's login
// screen does not spend time on them (they load on first use).
const loadChats = () => import("./screens/Chats");
const loadTimers = () => import("./screens/Timers");
if (probablySignedIn()) {
  void loadChats();
  void loadTimers();
}
const Chats = lazy(() => loadChats().then((m) => ({ default: m.Chats })));
const Timers = lazy(() => loadTimers().then((m) => ({ default: m.Timers })));
// Owners and admins only: never fetched by anyone else.
const Admin = lazy(() => import("./screens/Admin").then((m) => ({ default: m.Admin })));
const Account = lazy(() => import("./screens/Account").then((m) => ({ default: m.Account })));
// The e-mailed links' screens: one small chunk, fetched only by whoever opens one.
const loadRecovery = () => import("./screens/Recovery");
const ForgotPassword = lazy(() => loadRecovery().then((m) => ({ default: m.ForgotPassword })));
const ResetPassword = lazy(() => loadRecovery().then((m) => ({ default: m.ResetPassword })));
const AcceptInvite = lazy(() => loadRecovery().then((m) => ({ default: m.AcceptInvite })));

export function useSession() {
  return useSyncExternalStore(session.subscribe, session.get);
}

export function App() {
  const s = useSession();
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
  const loading = <p className="page-message" aria-busy="true">{t("app.loading")}</p>;
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
      <span>{t("lang.label")}</span>
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
              <NavLink href="/chats">{t("nav.chats")}</NavLink>
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
        <RunningClock />
        <LanguageSwitch />
        <button type="button" onClick={() => void out(false)} disabled={busy}>
          {t("auth.logout")}
        </button>
        <button type="button" className="secondary" onClick={() => void out(true)} disabled={busy}>
          {t("auth.logoutAll")}
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
          <Route path="/admin/:section">{(p) => (isAdmin(s) && (p.section === "members" || p.section === "invite") ? <Admin session={s} /> : <h1>{t(isAdmin(s) ? "app.notFound" : "admin.forbidden")}</h1>)}</Route>
          <Route>
            <h1>{t("app.notFound")}</h1>
          </Route>
        </Switch>
        </Suspense>
      </main>
    </div>
  );
}

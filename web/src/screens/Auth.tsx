/** Log in (e-mail or phone) and sign up (RegisterCompany). Both set the session cookies. */
import { useEffect, useId, useRef, useState, type FormEvent, type ReactNode } from "react";
import { Link } from "wouter";
import { authClient, forgetLoggedOutAll, signedIn, takeLoggedOutAll } from "../session";
import { useI18n } from "../i18n";
import { describeError } from "../errors";
import { LanguageSwitch } from "../App";

function Field(props: { label: string; hint?: string; name: string; type?: string; autoComplete: string; required?: boolean; value: string; onChange(v: string): void }) {
  const id = useId();
  return (
    <div className="field">
      <label htmlFor={id}>{props.label}</label>
      <input
        id={id}
        name={props.name}
        type={props.type ?? "text"}
        autoComplete={props.autoComplete}
        required={props.required ?? true}
        value={props.value}
        onChange={(e) => props.onChange(e.target.value)}
        aria-describedby={props.hint ? `${id}-hint` : undefined}
      />
      {props.hint && (
        <small id={`${id}-hint`} className="hint">
          {props.hint}
        </small>
      )}
    </div>
  );
}

function Card({ title, children }: { title: string; children: ReactNode }) {
  const heading = useRef<HTMLHeadingElement>(null);
  useEffect(() => heading.current?.focus(), []);
  return (
    <div className="auth">
      <header className="auth-top">
        <LanguageSwitch />
      </header>
      <main id="main" className="card">
        <h1 ref={heading} tabIndex={-1}>
          {title}
        </h1>
        {children}
      </main>
    </div>
  );
}

/** Runs a submit once at a time and keeps its error for display. */
function useSubmit(action: () => Promise<void>) {
  const i18n = useI18n();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();
  const onSubmit = async (e: FormEvent) => {
    e.preventDefault();
    if (busy) return;
    setBusy(true);
    setError(undefined);
    try {
      await action();
    } catch (err) {
      setError(describeError(err, i18n));
      setBusy(false);
    }
  };
  return { busy, error, onSubmit };
}

export function Login() {
  const { t } = useI18n();
  const [login, setLogin] = useState("");
  const [password, setPassword] = useState("");
  const [loggedOutAll] = useState(takeLoggedOutAll);
  useEffect(forgetLoggedOutAll, []);
  const notice = loggedOutAll === undefined ? undefined : t("auth.loggedOutAll", { count: loggedOutAll });
  const { busy, error, onSubmit } = useSubmit(async () => {
    const trimmed = login.trim();
    const byPhone = /^[+\d][\d\s().-]*$/.test(trimmed);
    await authClient.login({ email: byPhone ? "" : trimmed, phone: byPhone ? trimmed : "", password });
    await signedIn();
  });
  return (
    <Card title={t("login.title")}>
      {notice && (
        <p role="status" className="notice">
          {notice}
        </p>
      )}
      <form onSubmit={(e) => void onSubmit(e)} aria-busy={busy}>
        <Field label={t("login.login")} hint={t("login.loginHint")} name="login" autoComplete="username" value={login} onChange={setLogin} />
        <Field label={t("login.password")} name="password" type="password" autoComplete="current-password" value={password} onChange={setPassword} />
        {error && (
          <p role="alert" className="error">
            {error}
          </p>
        )}
        <button type="submit" disabled={busy}>
          {busy ? t("form.busy") : t("login.submit")}
        </button>
      </form>
      <p>
        {t("login.noAccount")} <Link href="/signup">{t("login.toSignup")}</Link>
      </p>
    </Card>
  );
}

export function Signup() {
  const { t, locale } = useI18n();
  const [f, setF] = useState({ companyName: "", ownerName: "", email: "", phone: "", password: "" });
  const field = (k: keyof typeof f) => ({ name: k, value: f[k], onChange: (v: string) => setF((prev) => ({ ...prev, [k]: v })) });
  const { busy, error, onSubmit } = useSubmit(async () => {
    await authClient.registerCompany({ ...f, locale, address: "" });
    await signedIn();
  });
  return (
    <Card title={t("signup.title")}>
      <form onSubmit={(e) => void onSubmit(e)} aria-busy={busy}>
        <Field label={t("signup.company")} autoComplete="organization" {...field("companyName")} />
        <Field label={t("signup.name")} autoComplete="name" {...field("ownerName")} />
        <Field label={t("signup.email")} type="email" autoComplete="email" {...field("email")} />
        <Field label={t("signup.phone")} hint={t("signup.phoneHint")} type="tel" autoComplete="tel" required={false} {...field("phone")} />
        <Field label={t("signup.password")} hint={t("signup.passwordHint")} type="password" autoComplete="new-password" {...field("password")} />
        {error && (
          <p role="alert" className="error">
            {error}
          </p>
        )}
        <button type="submit" disabled={busy}>
          {busy ? t("form.busy") : t("signup.submit")}
        </button>
      </form>
      <p>
        {t("signup.haveAccount")} <Link href="/login">{t("signup.toLogin")}</Link>
      </p>
    </Card>
  );
}

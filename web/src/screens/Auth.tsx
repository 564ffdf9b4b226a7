/** Log in (e-mail or phone) and sign up (RegisterCompany). Both set the session cookies. */
import { useEffect, useState } from "react";
import { Link } from "wouter";
import { authClient, forgetLoggedOutAll, signedIn, takeLoggedOutAll } from "../session";
import { useI18n } from "../i18n";
import { Card, Field, FormError, useSubmit } from "../forms";

/** Phone-looking input goes as `phone`, anything else as `email`. */
export function loginFields(login: string): { email: string; phone: string } {
  const trimmed = login.trim();
  const byPhone = /^[+\d][\d\s().-]*$/.test(trimmed);
  return { email: byPhone ? "" : trimmed, phone: byPhone ? trimmed : "" };
}

export function Login() {
  const { t } = useI18n();
  const [login, setLogin] = useState("");
  const [password, setPassword] = useState("");
  const [loggedOutAll] = useState(takeLoggedOutAll);
  useEffect(forgetLoggedOutAll, []);
  const notice = loggedOutAll === undefined ? undefined : t("auth.loggedOutAll", { count: loggedOutAll });
  const { busy, error, fieldError, onSubmit } = useSubmit(
    async () => {
      await authClient.login({ ...loginFields(login), password });
      await signedIn();
    },
    { email: "login", phone: "login", password: "password" },
  );
  return (
    <Card title={t("login.title")}>
      {notice && (
        <p role="status" className="notice">
          {notice}
        </p>
      )}
      <form onSubmit={onSubmit} aria-busy={busy}>
        <Field label={t("login.login")} hint={t("login.loginHint")} name="login" autoComplete="username" value={login} onChange={setLogin} error={fieldError.login} />
        <Field label={t("login.password")} name="password" type="password" autoComplete="current-password" value={password} onChange={setPassword} error={fieldError.password} />
        <FormError text={error} />
        <button type="submit" disabled={busy}>
          {busy ? t("form.busy") : t("login.submit")}
        </button>
      </form>
      <p>
        <Link href="/forgot-password">{t("login.forgot")}</Link>
      </p>
      <p>
        {t("login.noAccount")} <Link href="/signup">{t("login.toSignup")}</Link>
      </p>
    </Card>
  );
}

export function Signup() {
  const { t, locale } = useI18n();
  const [f, setF] = useState({ companyName: "", ownerName: "", email: "", phone: "", password: "" });
  const { busy, error, fieldError, onSubmit } = useSubmit(
    async () => {
      await authClient.registerCompany({ ...f, locale, address: "" });
      await signedIn();
    },
    { companyName: "companyName", ownerName: "ownerName", email: "email", phone: "phone", password: "password" },
  );
  const field = (k: keyof typeof f) => ({ name: k, value: f[k], error: fieldError[k], onChange: (v: string) => setF((prev) => ({ ...prev, [k]: v })) });
  return (
    <Card title={t("signup.title")}>
      <form onSubmit={onSubmit} aria-busy={busy}>
        <Field label={t("signup.company")} autoComplete="organization" {...field("companyName")} />
        <Field label={t("signup.name")} autoComplete="name" {...field("ownerName")} />
        <Field label={t("signup.email")} type="email" autoComplete="email" {...field("email")} />
        <Field label={t("signup.phone")} hint={t("signup.phoneHint")} type="tel" autoComplete="tel" required={false} {...field("phone")} />
        <Field label={t("signup.password")} hint={t("signup.passwordHint")} type="password" autoComplete="new-password" {...field("password")} />
        <FormError text={error} />
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

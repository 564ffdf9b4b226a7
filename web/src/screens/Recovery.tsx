/**
 * The screens behind the e-mailed links and the way to get one: "forgot password"
 * (RequestPasswordReset), "reset password" (/reset-password#token=…, ResetPassword) and "accept
 * invitation" (/accept-invite#token=…, AcceptInvite, which also signs the new user in). The token
 * is read from the fragment (or the query) once and taken out of the address bar, the history and
 * any later Referer.
 */
import { useEffect, useState } from "react";
import { Link, useLocation } from "wouter";
import { authClient, check, signedIn } from "../session";
import { useI18n } from "../i18n";
import { Card, Field, FormError, LocalInvalid, useSubmit } from "../forms";
import { loginFields } from "./Auth";

function readToken(): string {
  return new URLSearchParams(window.location.hash.slice(1)).get("token") || new URLSearchParams(window.location.search).get("token") || "";
}

/** The link's token, kept in memory; the address bar keeps only the path. */
function useLinkToken(): string {
  const [token] = useState(readToken);
  useEffect(() => {
    if (window.location.hash || window.location.search) history.replaceState(history.state, "", window.location.pathname);
  }, []);
  return token;
}

export function ForgotPassword() {
  const { t } = useI18n();
  const [login, setLogin] = useState("");
  const [sent, setSent] = useState(false);
  const { busy, error, fieldError, onSubmit } = useSubmit(
    async () => {
      await authClient.requestPasswordReset(loginFields(login));
      setSent(true);
    },
    { email: "login", phone: "login" },
  );
  return (
    <Card title={t("forgot.title")}>
      {sent ? (
        <p role="status" className="notice">
          {t("forgot.sent")}
        </p>
      ) : (
        <>
          <p>{t("forgot.intro")}</p>
          <form onSubmit={onSubmit} aria-busy={busy}>
            <Field label={t("login.login")} hint={t("login.loginHint")} name="login" autoComplete="username" value={login} onChange={setLogin} error={fieldError.login} />
            <FormError text={error} />
            <button type="submit" disabled={busy}>
              {busy ? t("form.busy") : t("forgot.submit")}
            </button>
          </form>
        </>
      )}
      <p>
        <Link href="/login">{t("forgot.back")}</Link>
      </p>
    </Card>
  );
}

/** The new password twice; the second must match before anything is sent. */
function usePasswordPair() {
  const { t } = useI18n();
  const [password, setPassword] = useState("");
  const [confirm, setConfirm] = useState("");
  const verify = () => {
    if (password !== confirm) throw new LocalInvalid({ confirm: t("recovery.differ") });
  };
  const fields = (fieldError: Record<string, string>) => (
    <>
      <Field label={t("recovery.password")} hint={t("signup.passwordHint")} name="password" type="password" autoComplete="new-password" value={password} onChange={setPassword} error={fieldError.password} />
      <Field label={t("recovery.confirm")} name="confirm" type="password" autoComplete="new-password" value={confirm} onChange={setConfirm} error={fieldError.confirm} />
    </>
  );
  return { password, verify, fields };
}

function NoToken({ title, kind }: { title: string; kind: "reset" | "invite" }) {
  const { t } = useI18n();
  return (
    <Card title={title}>
      <p role="alert" className="error">
        {t(kind === "reset" ? "recovery.noTokenReset" : "recovery.noTokenInvite")}
      </p>
      <p>{kind === "reset" ? <Link href="/forgot-password">{t("forgot.title")}</Link> : <Link href="/login">{t("signup.toLogin")}</Link>}</p>
    </Card>
  );
}

export function ResetPassword() {
  const { t } = useI18n();
  const token = useLinkToken();
  const pair = usePasswordPair();
  const [done, setDone] = useState(false);
  const { busy, error, fieldError, onSubmit } = useSubmit(
    async () => {
      pair.verify();
      await authClient.resetPassword({ token, newPassword: pair.password });
      setDone(true);
      // Every session of the user has ended, maybe this browser's too.
      void check().catch(() => {});
    },
    { newPassword: "password", token: "" },
  );
  if (!token) return <NoToken title={t("reset.title")} kind="reset" />;
  return (
    <Card title={t("reset.title")}>
      {done ? (
        <>
          <p role="status" className="notice">
            {t("reset.done")}
          </p>
          <p>
            <Link href="/login">{t("signup.toLogin")}</Link>
          </p>
        </>
      ) : (
        <>
          <p>{t("reset.intro")}</p>
          <form onSubmit={onSubmit} aria-busy={busy}>
            {pair.fields(fieldError)}
            <FormError text={error} />
            <button type="submit" disabled={busy}>
              {busy ? t("form.busy") : t("reset.submit")}
            </button>
          </form>
        </>
      )}
    </Card>
  );
}

export function AcceptInvite() {
  const { t } = useI18n();
  const token = useLinkToken();
  const pair = usePasswordPair();
  const [, navigate] = useLocation();
  const { busy, error, fieldError, onSubmit } = useSubmit(
    async () => {
      pair.verify();
      await authClient.acceptInvite({ token, password: pair.password });
      await signedIn();
      navigate("/chats", { replace: true });
    },
    { password: "password", token: "" },
  );
  if (!token) return <NoToken title={t("invite.title")} kind="invite" />;
  return (
    <Card title={t("invite.title")}>
      <p>{t("invite.intro")}</p>
      <form onSubmit={onSubmit} aria-busy={busy}>
        {pair.fields(fieldError)}
        <FormError text={error} />
        <button type="submit" disabled={busy}>
          {busy ? t("form.busy") : t("invite.submit")}
        </button>
      </form>
    </Card>
  );
}

/**
 * The signed-in person's own account: their role, their sessions (ListSessions) with a way to end
 * any other one (RevokeSession), and how to change the password. The API has no call to change a
 * password or a profile while signed in: the password changes through the e-mailed reset link.
 */
import { useState } from "react";
import { Link, useLocation } from "wouter";
import { useQueryClient } from "@tanstack/react-query";
import { useMutation, useQuery } from "@connectrpc/connect-query";
import { AuthService, Role } from "@crm/gen/crm/auth/v1/auth_pb";
import { logout, type Session } from "../session";
import { useI18n, type MessageKey } from "../i18n";
import { describeError } from "../errors";
import { SessionTable } from "./SessionTable";

export const roleKeys: Record<number, MessageKey> = { [Role.OWNER]: "role.owner", [Role.ADMIN]: "role.admin", [Role.MEMBER]: "role.member" };

export function Account({ session }: { session: Session }) {
  const i18n = useI18n();
  const { t } = i18n;
  const list = useQuery(AuthService.method.listSessions, {}, { staleTime: 2_000 }); // afresh on every visit, but not twice on the page's first
  const [status, setStatus] = useState<string>();
  const revoke = useMutation(AuthService.method.revokeSession, {
    onSuccess: async () => {
      setStatus(t("account.revoked"));
      await list.refetch();
    },
  });
  const roleKey = roleKeys[session.role];
  const queryClient = useQueryClient();
  const [, navigate] = useLocation();
  const [endingAll, setEndingAll] = useState(false);
  const [allError, setAllError] = useState<string>();
  // "Log out everywhere" lives here, beside the sessions it ends (the header keeps "Log out").
  const outEverywhere = async () => {
    setEndingAll(true);
    setAllError(undefined);
    try {
      await logout(true);
      queryClient.clear();
      navigate("/login", { replace: true });
    } catch (e) {
      setAllError(describeError(e, i18n));
      setEndingAll(false);
    }
  };
  return (
    <section aria-labelledby="account-title">
      <h1 id="account-title">{t("account.title")}</h1>
      {roleKey && <p>{t("account.role", { role: t(roleKey) })}</p>}

      <h2>{t("account.password")}</h2>
      <p>
        {t("account.passwordHow")} <Link href="/forgot-password">{t("account.passwordLink")}</Link>
      </p>

      <h2 id="sessions-title">{t("account.sessions")}</h2>
      <p className="hint">{t("account.sessionsHint")}</p>
      <p>
        <button type="button" className="secondary danger" onClick={() => void outEverywhere()} disabled={endingAll}>
          {t("auth.logoutAll")}
        </button>
      </p>
      {allError && (
        <p role="alert" className="error">
          {allError}
        </p>
      )}
      {status && (
        <p role="status" className="notice">
          {status}
        </p>
      )}
      {revoke.error && (
        <p role="alert" className="error">
          {describeError(revoke.error, i18n)}
        </p>
      )}
      {list.isPending ? (
        <p aria-busy="true">{t("app.loading")}</p>
      ) : list.error ? (
        <p role="alert" className="error">
          {describeError(list.error, i18n)}
        </p>
      ) : (
        <SessionTable
          sessions={list.data.sessions}
          labelledBy="sessions-title"
          end={(s, named) =>
            !s.current && (
              <button
                type="button"
                className="secondary"
                disabled={revoke.isPending}
                aria-label={t("account.revokeOne", { device: named.device, when: named.created })}
                onClick={() => {
                  setStatus(undefined);
                  revoke.mutate({ sessionId: s.sessionId });
                }}
              >
                {t("account.revoke")}
              </button>
            )
          }
        />
      )}
    </section>
  );
}

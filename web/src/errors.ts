/** What to tell a person about a failed call: a translated line for known reasons, else the server's message. */
import { Code, ConnectError } from "@connectrpc/connect";
import type { I18n, MessageKey } from "./i18n";
import { CookiesRefused } from "./session";

const known: Record<string, MessageKey> = {
  invalid_credentials: "error.invalid_credentials",
  resource_exhausted: "error.resource_exhausted",
  session_ended: "error.sessionEnded",
  refresh_token_reused: "error.sessionEnded",
};

export function describeError(e: unknown, { t }: Pick<I18n, "t">): string {
  if (e instanceof CookiesRefused) return t("error.insecureOrigin", { local: `http://localhost:${window.location.port || "80"}/` });
  const err = ConnectError.from(e);
  const reason = err.metadata.get("crm-error") ?? "";
  const key = known[reason] ?? (err.code === Code.ResourceExhausted ? known.resource_exhausted : undefined);
  if (key) return t(key);
  if (err.code === Code.Unavailable || (err.code === Code.Unknown && /fetch|network/i.test(err.rawMessage))) return t("error.network");
  return err.rawMessage;
}

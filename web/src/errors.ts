/** What to tell a person about a failed call: a translated line for known reasons, else the server's message. */
import { Code, ConnectError } from "@connectrpc/connect";
import { BadRequestSchema } from "@crm/gen/google/rpc/error_details_pb";
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
  if (err.code === Code.PermissionDenied && !err.rawMessage) return t("error.permission");
  return err.rawMessage;
}

/**
 * The field violations of an invalid_argument (google.rpc.BadRequest details), by the request
 * field's JSON name as the server names it ("newPassword", "users[3].email"); empty for any other error.
 */
export function fieldErrors(e: unknown): Record<string, string> {
  if (!e) return {};
  const err = ConnectError.from(e);
  const out: Record<string, string> = {};
  for (const d of err.findDetails(BadRequestSchema)) for (const v of d.fieldViolations) out[v.field] = out[v.field] ? `${out[v.field]}; ${v.description}` : v.description;
  return out;
}

/**
 * A form's failure: the violations of the fields it shows go next to those fields; the rest (and
 * every other error) into one line for the whole form. `fields` maps the server's field names to
 * the form's own ("" for a field the form does not show, like the token of a link).
 */
export function formErrors(e: unknown, i18n: Pick<I18n, "t">, fields: Record<string, string>): { form?: string; fields: Record<string, string> } {
  const all = fieldErrors(e);
  const shown: Record<string, string> = {};
  const rest: string[] = [];
  for (const [server, text] of Object.entries(all)) {
    const mine = fields[server];
    if (mine) shown[mine] = shown[mine] ? `${shown[mine]}; ${text}` : text;
    else rest.push(mine === "" ? text : `${server}: ${text}`); // "": the form's own, said without the field name
  }
  if (Object.keys(shown).length === 0) return { form: describeError(e, i18n), fields: {} };
  return { form: rest.length ? rest.join("; ") : i18n.t("form.fixFields"), fields: shown };
}

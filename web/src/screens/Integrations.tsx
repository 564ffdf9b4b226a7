/**
 * Integrations, under Admin (owners and admins; a chunk of its own): API keys (ApiKeyService:
 * create with scopes, an expiry and a rate, the secret shown once; the list; revoke) and the
 * audit log (AuditService: filtered by actor, action and time, newest first, keyset pages; the
 * same events exported as CSV by the server's stream).
 */
import { useId, useState } from "react";
import { createConnectQueryKey, useInfiniteQuery, useQuery } from "@connectrpc/connect-query";
import { useQueryClient } from "@tanstack/react-query";
import { createClient } from "@connectrpc/connect";
import { timestampDate, timestampFromDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { ApiKeyService, type ApiKey } from "@crm/gen/crm/auth/v1/api_keys_pb";
import { AuditService } from "@crm/gen/crm/admin/v1/audit_pb";
import { AdminService } from "@crm/gen/crm/admin/v1/admin_pb";
import { apiKeyScopes } from "@crm/contracts/scopes";
import { transport } from "../session";
import { useI18n } from "../i18n";
import { describeError, fieldErrors } from "../errors";
import { Field, FormError, LocalInvalid, Notice, useSubmit, type NoticeText } from "../forms";

const keys = createClient(ApiKeyService, transport);
const audit = createClient(AuditService, transport);

const enWords = {
  "apiKeys": "API keys",
  "apiKeysIntro": "A key lets another program call the API for you, limited to its scopes, until it expires or is revoked.",
  "newKey": "New API key",
  "keyName": "Name",
  "keyNameHint": "Shown as “API key <name>” in timelines and the audit log",
  "scopes": "Scopes",
  "scopesHint": "What the key may do; write does not include read",
  "read": "read",
  "write": "write",
  "expires": "Expires on",
  "expiresHint": "Optional; at most 5 years ahead",
  "rate": "Calls per minute",
  "rateHint": "Optional; 600 when empty",
  "createKey": "Create key",
  "secretTitle": "The new key “{name}”",
  "secretOnce": "This is the only time the key is shown: copy it now and keep it secret.",
  "secretLabel": "The key",
  "copy": "Copy",
  "copied": "Copied.",
  "done": "I have stored it",
  "showRevoked": "Show revoked keys",
  "noKeys": "No API keys.",
  "prefix": "Key",
  "createdBy": "Created by",
  "created": "Created",
  "lastUsed": "Last used",
  "never": "never",
  "status": "Status",
  "active": "active",
  "revoked": "revoked {when}",
  "expired": "expired",
  "revoke": "Revoke",
  "revokeOf": "Revoke the key “{name}”",
  "revokedNow": "The key “{name}” is revoked: every call with it is refused from now on.",
  "actions": "Actions",
  "audit": "Audit log",
  "auditIntro": "Security-relevant and data-changing actions of the company, newest first.",
  "actor": "Who",
  "anyone": "Anyone",
  "action": "Action",
  "anyAction": "Any action",
  "from": "From",
  "to": "Until",
  "when": "When",
  "target": "Target",
  "ip": "Address",
  "details": "Details",
  "noEvents": "No events match.",
  "loadMore": "Load more",
  "export": "Export CSV",
  "exported": "Events exported: {count}.",
  "filters": "Filters",
  "wholeNumber": "Type a whole number.",
};
type Word = keyof typeof enWords;
const ruWords: Record<Word, string> = {
  "apiKeys": "Ключи API",
  "apiKeysIntro": "Ключ позволяет другой программе вызывать API от вашего имени в пределах его прав, пока он не истечёт или не будет отозван.",
  "newKey": "Новый ключ API",
  "keyName": "Название",
  "keyNameHint": "Видно как «API key <название>» в истории и журнале аудита",
  "scopes": "Права",
  "scopesHint": "Что ключу можно; запись не включает чтение",
  "read": "чтение",
  "write": "запись",
  "expires": "Действует до",
  "expiresHint": "Необязательно; не более 5 лет",
  "rate": "Вызовов в минуту",
  "rateHint": "Необязательно; 600, если пусто",
  "createKey": "Создать ключ",
  "secretTitle": "Новый ключ «{name}»",
  "secretOnce": "Ключ показывается только сейчас: скопируйте его и храните в секрете.",
  "secretLabel": "Ключ",
  "copy": "Копировать",
  "copied": "Скопировано.",
  "done": "Я сохранил ключ",
  "showRevoked": "Показать отозванные",
  "noKeys": "Ключей API нет.",
  "prefix": "Ключ",
  "createdBy": "Создал",
  "created": "Создан",
  "lastUsed": "Последнее использование",
  "never": "не использовался",
  "status": "Состояние",
  "active": "действует",
  "revoked": "отозван {when}",
  "expired": "истёк",
  "revoke": "Отозвать",
  "revokeOf": "Отозвать ключ «{name}»",
  "revokedNow": "Ключ «{name}» отозван: все вызовы с ним отныне отклоняются.",
  "actions": "Действия",
  "audit": "Журнал аудита",
  "auditIntro": "Действия в компании, важные для безопасности и данных, — сначала новые.",
  "actor": "Кто",
  "anyone": "Любой",
  "action": "Действие",
  "anyAction": "Любое действие",
  "from": "С",
  "to": "До",
  "when": "Когда",
  "target": "Объект",
  "ip": "Адрес",
  "details": "Подробности",
  "noEvents": "Событий нет.",
  "loadMore": "Показать ещё",
  "export": "Выгрузить CSV",
  "exported": "Выгружено событий: {count}.",
  "filters": "Фильтры",
  "wholeNumber": "Введите целое число.",
};

function useWords() {
  const i18n = useI18n();
  const dict = i18n.locale === "ru" ? ruWords : enWords;
  return { ...i18n, i18n, w: (key: Word, params?: Record<string, string | number>) => i18n.format(dict[key], params) };
}

const at = (t: Timestamp | undefined) => (t ? timestampDate(t) : undefined);

/** The company's users by id, for names (owners and admins may list them). */
function useUserNames() {
  const users = useQuery(AdminService.method.listUsers, { pageSize: 500 }, { staleTime: 60_000 });
  const list = users.data?.users ?? [];
  return { list, name: (id: string) => list.find((u) => u.userId === id)?.name ?? id.slice(0, 8) };
}

/** The scopes as a table: one row per area, read and write checkboxes (reports: read only); then admin. */
function ScopePicker({ value, onChange, error }: { value: string[]; onChange(v: string[]): void; error: string | undefined }) {
  const { w } = useWords();
  const id = useId();
  const areas = [...new Set(apiKeyScopes.filter((s) => s.includes(":")).map((s) => s.split(":")[0]!))];
  const toggle = (s: string) => onChange(value.includes(s) ? value.filter((x) => x !== s) : [...value, s]);
  return (
    <fieldset className="scopes" aria-describedby={`${id}-hint${error ? ` ${id}-error` : ""}`} aria-invalid={error ? true : undefined}>
      <legend>{w("scopes")}</legend>
      <small id={`${id}-hint`} className="hint">
        {w("scopesHint")}
      </small>
      <div className="scope-grid">
        {areas.map((a) => (
          <div key={a} className="scope-row">
            <span className="scope-area">{a}</span>
            {(["read", "write"] as const).filter((k) => apiKeyScopes.includes(`${a}:${k}`)).map((k) => (
              <label key={k} className="inline-label">
                <input type="checkbox" checked={value.includes(`${a}:${k}`)} onChange={() => toggle(`${a}:${k}`)} />
                {`${a}:${k}`}
              </label>
            ))}
          </div>
        ))}
        <label className="inline-label">
          <input type="checkbox" checked={value.includes("admin")} onChange={() => toggle("admin")} />
          admin
        </label>
      </div>
      {error && (
        <small id={`${id}-error`} className="field-error">
          {error}
        </small>
      )}
    </fieldset>
  );
}

export function ApiKeys() {
  const words = useWords();
  const { w } = words;
  const queryClient = useQueryClient();
  const users = useUserNames();
  const [showRevoked, setShowRevoked] = useState(false);
  const list = useQuery(ApiKeyService.method.listApiKeys, { includeRevoked: showRevoked });
  const refresh = () => queryClient.invalidateQueries({ queryKey: createConnectQueryKey({ schema: ApiKeyService.method.listApiKeys, cardinality: undefined }) });
  const [name, setName] = useState("");
  const [scopes, setScopes] = useState<string[]>([]);
  const [expires, setExpires] = useState("");
  const [rate, setRate] = useState("");
  const [secret, setSecret] = useState<{ name: string; key: string }>();
  const [copied, setCopied] = useState(false);
  const [notice, setNotice] = useState<NoticeText>();
  const revokedId = useId();
  const submit = useSubmit(async () => {
    const local: Record<string, string> = {};
    const rpm = rate.trim() ? Number(rate.trim()) : 0;
    if (rate.trim() && !/^\d+$/.test(rate.trim())) local.requestsPerMinute = w("wholeNumber");
    if (Object.keys(local).length) throw new LocalInvalid(local);
    try {
      const r = await keys.createApiKey({ name: name.trim(), scopes, expiresAt: expires ? timestampFromDate(new Date(`${expires}T23:59:59Z`)) : undefined, requestsPerMinute: rpm });
      setSecret({ name: r.apiKey!.name, key: r.secret });
      setCopied(false);
      setName("");
      setScopes([]);
      setExpires("");
      setRate("");
      await refresh();
    } catch (e) {
      const fields = fieldErrors(e);
      const mine: Record<string, string> = {};
      for (const [f, text] of Object.entries(fields)) mine[f.split(/[.[]/)[0]!] = text;
      if (Object.keys(mine).length) throw new LocalInvalid(mine);
      throw e;
    }
  });
  const revoke = async (k: ApiKey) => {
    try {
      await keys.revokeApiKey({ apiKeyId: k.apiKeyId });
      setNotice({ text: w("revokedNow", { name: k.name }) });
    } catch (e) {
      setNotice({ text: describeError(e, words.i18n), error: true });
    }
    await refresh();
  };
  const copy = async () => {
    if (!secret) return;
    try {
      await navigator.clipboard.writeText(secret.key);
      setCopied(true);
    } catch {
      setCopied(false);
    }
  };
  const err = submit.fieldError;
  const rows = list.data?.apiKeys ?? [];
  return (
    <section aria-labelledby="keys-title">
      <h2 id="keys-title">{w("apiKeys")}</h2>
      <p className="hint">{w("apiKeysIntro")}</p>
      {secret && (
        <div className="secret-box" role="region" aria-labelledby="secret-title">
          <h3 id="secret-title">{w("secretTitle", { name: secret.name })}</h3>
          <p>
            <strong>{w("secretOnce")}</strong>
          </p>
          <label htmlFor="new-secret">{w("secretLabel")}</label>
          <div className="secret-row">
            <input id="new-secret" readOnly value={secret.key} onFocus={(e) => e.target.select()} spellCheck={false} autoComplete="off" />
            <button type="button" className="secondary" onClick={() => void copy()}>
              {w("copy")}
            </button>
            <button type="button" onClick={() => setSecret(undefined)}>
              {w("done")}
            </button>
          </div>
          <Notice notice={copied ? { text: w("copied") } : undefined} />
        </div>
      )}
      <form className="new-key" onSubmit={submit.onSubmit} noValidate aria-labelledby="new-key-title">
        <h3 id="new-key-title">{w("newKey")}</h3>
        <Field label={w("keyName")} hint={w("keyNameHint")} name="keyName" autoComplete="off" value={name} onChange={setName} error={err.name} />
        <ScopePicker value={scopes} onChange={setScopes} error={err.scopes} />
        <Field label={w("expires")} hint={w("expiresHint")} name="expires" type="date" autoComplete="off" required={false} value={expires} onChange={setExpires} error={err.expiresAt} />
        <Field label={w("rate")} hint={w("rateHint")} name="rate" autoComplete="off" required={false} value={rate} onChange={setRate} error={err.requestsPerMinute} />
        <FormError text={submit.error} />
        <button type="submit" disabled={submit.busy}>
          {w("createKey")}
        </button>
      </form>
      <p className="inline-label">
        <input id={revokedId} type="checkbox" checked={showRevoked} onChange={(e) => setShowRevoked(e.target.checked)} />
        <label htmlFor={revokedId}>{w("showRevoked")}</label>
      </p>
      <Notice notice={notice} />
      {list.error && (
        <p role="alert" className="error">
          {describeError(list.error, words.i18n)}
        </p>
      )}
      {rows.length === 0 ? (
        <p>{list.isPending ? "…" : w("noKeys")}</p>
      ) : (
        <div className="table-wrap">
          <table className="entries" aria-labelledby="keys-title">
            <thead>
              <tr>
                <th scope="col">{w("keyName")}</th>
                <th scope="col">{w("prefix")}</th>
                <th scope="col">{w("scopes")}</th>
                <th scope="col">{w("createdBy")}</th>
                <th scope="col">{w("created")}</th>
                <th scope="col">{w("expires")}</th>
                <th scope="col">{w("lastUsed")}</th>
                <th scope="col">{w("rate")}</th>
                <th scope="col">{w("status")}</th>
                <th scope="col">{w("actions")}</th>
              </tr>
            </thead>
            <tbody>
              {rows.map((k) => {
                const revoked = at(k.revokedAt);
                const expiresAt = at(k.expiresAt);
                const used = at(k.lastUsedAt);
                const expired = expiresAt !== undefined && expiresAt.getTime() < Date.now();
                return (
                  <tr key={k.apiKeyId} data-key={k.apiKeyId}>
                    <th scope="row">{k.name}</th>
                    <td>
                      <code>{k.prefix}</code>
                    </td>
                    <td>{k.scopes.join(", ")}</td>
                    <td>{users.name(k.createdBy)}</td>
                    <td>{at(k.createdAt) && words.dateTime(at(k.createdAt)!)}</td>
                    <td>{expiresAt ? words.dateTime(expiresAt) : "—"}</td>
                    <td>{used ? `${words.dateTime(used)}${k.lastUsedIp ? ` (${k.lastUsedIp})` : ""}` : w("never")}</td>
                    <td className="num">{words.number(k.requestsPerMinute)}</td>
                    <td>{revoked ? w("revoked", { when: words.dateTime(revoked) }) : expired ? w("expired") : w("active")}</td>
                    <td>
                      {!revoked && (
                        <button type="button" className="secondary small danger" onClick={() => void revoke(k)} aria-label={w("revokeOf", { name: k.name })}>
                          {w("revoke")}
                        </button>
                      )}
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}

/** The actions the audit log has (audit.proto). */
const auditActions = ["auth.login", "auth.login_failed", "auth.logout", "auth.logout_all", "auth.session_revoked", "auth.company_registered", "admin.user_added", "admin.user_deactivated", "admin.role_changed", "admin.session_revoked", "admin.sessions_revoked", "api_key.created", "api_key.used", "api_key.revoked"];

const auditPaging = { pageParamKey: "pageToken", getNextPageParam: (last: { nextPageToken: string }) => last.nextPageToken || undefined } as const;

export function AuditLog() {
  const words = useWords();
  const { w } = words;
  const id = useId();
  const users = useUserNames();
  const [actor, setActor] = useState("");
  const [action, setAction] = useState("");
  const [from, setFrom] = useState("");
  const [to, setTo] = useState("");
  const [notice, setNotice] = useState<NoticeText>();
  const [exporting, setExporting] = useState(false);
  const filter = {
    actorId: actor,
    actions: action ? [action] : [],
    startTime: from ? timestampFromDate(new Date(`${from}T00:00:00`)) : undefined,
    // "Until" a day includes that day: the next day's midnight (local time).
    endTime: to ? timestampFromDate(new Date(new Date(`${to}T00:00:00`).getTime() + 86_400_000)) : undefined,
  };
  const list = useInfiniteQuery(AuditService.method.listAuditEvents, { ...filter, pageSize: 50, pageToken: "" }, { ...auditPaging, placeholderData: (p) => p });
  const rows = list.data?.pages.flatMap((p) => p.events) ?? [];
  const exportCsv = async () => {
    setExporting(true);
    setNotice(undefined);
    try {
      const parts: string[] = [];
      for await (const chunk of audit.exportAuditEvents(filter)) parts.push(chunk.csv);
      const csv = parts.join("");
      const url = URL.createObjectURL(new Blob([csv], { type: "text/csv;charset=utf-8" }));
      const a = document.createElement("a");
      a.href = url;
      a.download = `audit-${new Date().toISOString().slice(0, 10)}.csv`;
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
      setNotice({ text: w("exported", { count: Math.max(0, csv.split("\n").filter(Boolean).length - 1) }) });
    } catch (e) {
      setNotice({ text: describeError(e, words.i18n), error: true });
    } finally {
      setExporting(false);
    }
  };
  return (
    <section aria-labelledby="audit-title">
      <h2 id="audit-title">{w("audit")}</h2>
      <p className="hint">{w("auditIntro")}</p>
      <form role="search" aria-label={w("filters")} className="filters" onSubmit={(e) => e.preventDefault()}>
        <div className="field">
          <label htmlFor={`${id}-actor`}>{w("actor")}</label>
          <select id={`${id}-actor`} value={actor} onChange={(e) => setActor(e.target.value)}>
            <option value="">{w("anyone")}</option>
            {users.list.map((u) => (
              <option key={u.userId} value={u.userId}>
                {u.name || u.email}
              </option>
            ))}
          </select>
        </div>
        <div className="field">
          <label htmlFor={`${id}-action`}>{w("action")}</label>
          <select id={`${id}-action`} value={action} onChange={(e) => setAction(e.target.value)}>
            <option value="">{w("anyAction")}</option>
            {auditActions.map((a) => (
              <option key={a} value={a}>
                {a}
              </option>
            ))}
          </select>
        </div>
        <div className="field">
          <label htmlFor={`${id}-from`}>{w("from")}</label>
          <input id={`${id}-from`} type="date" value={from} onChange={(e) => setFrom(e.target.value)} />
        </div>
        <div className="field">
          <label htmlFor={`${id}-to`}>{w("to")}</label>
          <input id={`${id}-to`} type="date" value={to} onChange={(e) => setTo(e.target.value)} />
        </div>
        <button type="button" className="secondary" onClick={() => void exportCsv()} disabled={exporting} aria-busy={exporting || undefined}>
          {w("export")}
        </button>
      </form>
      <Notice notice={notice} />
      {list.error && (
        <p role="alert" className="error">
          {describeError(list.error, words.i18n)}
        </p>
      )}
      {list.isPending ? (
        <p aria-busy="true">{words.t("app.loading")}</p>
      ) : rows.length === 0 ? (
        <p>{w("noEvents")}</p>
      ) : (
        <div className="table-wrap">
          <table className="entries" aria-labelledby="audit-title" aria-busy={list.isFetching || undefined}>
            <thead>
              <tr>
                <th scope="col">{w("when")}</th>
                <th scope="col">{w("action")}</th>
                <th scope="col">{w("actor")}</th>
                <th scope="col">{w("target")}</th>
                <th scope="col">{w("ip")}</th>
                <th scope="col">{w("details")}</th>
              </tr>
            </thead>
            <tbody>
              {rows.map((e) => (
                <tr key={e.eventId} data-action={e.action}>
                  <td>{at(e.occurredAt) && words.dateTime(at(e.occurredAt)!)}</td>
                  <td>
                    <code>{e.action}</code>
                  </td>
                  <td>{e.actorName || (e.actorId ? users.name(e.actorId) : "—")}</td>
                  <td>{e.targetType ? `${e.targetType} ${e.targetId === e.actorId ? "" : e.targetId.slice(0, 8)}`.trim() : ""}</td>
                  <td>{e.ip}</td>
                  <td>
                    {Object.entries(e.details)
                      .map(([k, v]) => `${k}: ${v}`)
                      .join("; ")}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {list.hasNextPage && (
        <button type="button" className="secondary" onClick={() => void list.fetchNextPage()} disabled={list.isFetchingNextPage}>
          {w("loadMore")}
        </button>
      )}
    </section>
  );
}

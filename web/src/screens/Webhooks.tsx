/**
 * Webhooks, under Admin (owners and admins; a chunk of its own): WebhookService's endpoints
 * (create, edit, activate, delete; the secret shown once; rotate it; send a test) and the delivery
 * log per endpoint (each attempt's status, latency and first bytes; redeliver one; replay every
 * change since a version).
 */
import { useEffect, useId, useRef, useState } from "react";
import { createConnectQueryKey, useInfiniteQuery, useQuery } from "@connectrpc/connect-query";
import { useQueryClient } from "@tanstack/react-query";
import { createClient } from "@connectrpc/connect";
import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { DeliveryStatus, WebhookService, type Delivery, type Endpoint } from "@crm/gen/crm/webhooks/v1/webhooks_pb";
import { transport } from "../session";
import { useI18n } from "../i18n";
import { describeError, fieldErrors } from "../errors";
import { Field, FormError, LocalInvalid, Notice, useSubmit, type NoticeText } from "../forms";

const hooks = createClient(WebhookService, transport);

const enWords = {
  "title": "Webhooks",
  "intro": "Every change of a company, person or deal is sent, signed, to each active endpoint that asked for its type.",
  "newEndpoint": "New endpoint",
  "editEndpoint": "Edit “{url}”",
  "url": "URL",
  "urlHint": "https://…; private and loopback addresses are refused unless the server allows them",
  "events": "Event types",
  "eventsHint": "Comma-separated: company.created, deal.stage_changed, person.*, import.finished, user.added, user.deactivated, chat.message; * is every event but chat messages",
  "description": "Description",
  "ordered": "Ordered (one at a time, in version order)",
  "active": "Active",
  "create": "Create endpoint",
  "save": "Save",
  "cancel": "Cancel",
  "secretTitle": "The signing secret of “{url}”",
  "secretOnce": "This is the only time the secret is shown: copy it now and keep it secret.",
  "secretLabel": "The secret",
  "previousUntil": "The previous secret also signs until {when}.",
  "copy": "Copy",
  "copied": "Copied.",
  "done": "I have stored it",
  "noEndpoints": "No endpoints.",
  "status": "Status",
  "enabled": "active",
  "inactive": "inactive",
  "disabled": "disabled: {reason}",
  "actions": "Actions",
  "edit": "Edit",
  "editOf": "Edit the endpoint {url}",
  "rotate": "Rotate secret",
  "rotateOf": "Rotate secret of {url}",
  "test": "Send test",
  "testOf": "Send test to {url}",
  "testSent": "A test event is on its way to {url}.",
  "log": "Deliveries",
  "logOf": "Deliveries to {url}",
  "remove": "Delete",
  "removeOf": "Delete the endpoint {url}",
  "confirmRemove": "Delete the endpoint {url}? Its pending deliveries are dropped.",
  "removed": "The endpoint {url} is deleted.",
  "saved": "Saved.",
  "deliveriesTitle": "Deliveries to {url}",
  "refresh": "Refresh",
  "noDeliveries": "No deliveries in the last 30 days.",
  "queued": "Queued",
  "event": "Event",
  "version": "Version",
  "attempts": "Attempts",
  "httpStatus": "HTTP",
  "latency": "Latency",
  "answer": "First bytes of the answer",
  "nextAttempt": "next attempt {when}",
  "pending": "pending",
  "succeeded": "delivered",
  "failed": "failed",
  "redeliver": "Redeliver",
  "redeliverOf": "Redeliver {event} version {version}",
  "redelivered": "Sent again: {event}.",
  "replay": "Replay changes",
  "replaySince": "Since version",
  "replayHint": "Every change after this tenant version is sent again, with the same ids",
  "replayed": "Changes queued: {count}.",
  "loadMore": "Load more",
  "wholeNumber": "Type a whole number.",
  "ms": "{n} ms",
};
type Word = keyof typeof enWords;
const ruWords: Record<Word, string> = {
  "title": "Вебхуки",
  "intro": "Каждое изменение компании, человека или сделки отправляется, с подписью, на каждый активный адрес, подписанный на этот тип.",
  "newEndpoint": "Новый адрес",
  "editEndpoint": "Изменить «{url}»",
  "url": "URL",
  "urlHint": "https://…; частные и локальные адреса отклоняются, если сервер их не разрешил",
  "events": "Типы событий",
  "eventsHint": "Через запятую: company.created, deal.stage_changed, person.*, import.finished, user.added, user.deactivated, chat.message; * — все события, кроме сообщений чатов",
  "description": "Описание",
  "ordered": "По порядку (по одному, в порядке версий)",
  "active": "Активен",
  "create": "Создать адрес",
  "save": "Сохранить",
  "cancel": "Отмена",
  "secretTitle": "Секрет подписи для «{url}»",
  "secretOnce": "Секрет показывается только сейчас: скопируйте его и храните в тайне.",
  "secretLabel": "Секрет",
  "previousUntil": "Прежний секрет тоже подписывает до {when}.",
  "copy": "Копировать",
  "copied": "Скопировано.",
  "done": "Я сохранил секрет",
  "noEndpoints": "Адресов нет.",
  "status": "Состояние",
  "enabled": "активен",
  "inactive": "выключен",
  "disabled": "отключён: {reason}",
  "actions": "Действия",
  "edit": "Изменить",
  "editOf": "Изменить адрес {url}",
  "rotate": "Сменить секрет",
  "rotateOf": "Сменить секрет адреса {url}",
  "test": "Отправить тест",
  "testOf": "Отправить тест на {url}",
  "testSent": "Тестовое событие отправлено на {url}.",
  "log": "Доставки",
  "logOf": "Доставки на {url}",
  "remove": "Удалить",
  "removeOf": "Удалить адрес {url}",
  "confirmRemove": "Удалить адрес {url}? Ожидающие доставки будут отброшены.",
  "removed": "Адрес {url} удалён.",
  "saved": "Сохранено.",
  "deliveriesTitle": "Доставки на {url}",
  "refresh": "Обновить",
  "noDeliveries": "За последние 30 дней доставок нет.",
  "queued": "В очереди с",
  "event": "Событие",
  "version": "Версия",
  "attempts": "Попытки",
  "httpStatus": "HTTP",
  "latency": "Задержка",
  "answer": "Начало ответа",
  "nextAttempt": "следующая попытка {when}",
  "pending": "ожидает",
  "succeeded": "доставлено",
  "failed": "не доставлено",
  "redeliver": "Отправить снова",
  "redeliverOf": "Отправить снова {event} версии {version}",
  "redelivered": "Отправлено снова: {event}.",
  "replay": "Повторить изменения",
  "replaySince": "С версии",
  "replayHint": "Все изменения после этой версии отправляются снова, с теми же id",
  "replayed": "Поставлено в очередь изменений: {count}.",
  "loadMore": "Показать ещё",
  "wholeNumber": "Введите целое число.",
  "ms": "{n} мс",
};

function useWords() {
  const i18n = useI18n();
  const dict = i18n.locale === "ru" ? ruWords : enWords;
  return { ...i18n, i18n, w: (key: Word, params?: Record<string, string | number>) => i18n.format(dict[key], params) };
}

const at = (t: Timestamp | undefined) => (t ? timestampDate(t) : undefined);
const splitTypes = (s: string) => s.split(/[,\s]+/).map((x) => x.trim()).filter(Boolean);

/** The server's field violations, by the form's field names. */
function asLocal(e: unknown): never {
  const fields = fieldErrors(e);
  const mine: Record<string, string> = {};
  for (const [f, text] of Object.entries(fields)) mine[f.split(/[.[]/)[0]!] = text;
  if (Object.keys(mine).length) throw new LocalInvalid(mine);
  throw e;
}

export function Webhooks() {
  const words = useWords();
  const { w } = words;
  const queryClient = useQueryClient();
  const list = useQuery(WebhookService.method.listEndpoints, {});
  const refresh = () => queryClient.invalidateQueries({ queryKey: createConnectQueryKey({ schema: WebhookService.method.listEndpoints, cardinality: undefined }) });
  const [editing, setEditing] = useState<Endpoint>();
  const [url, setUrl] = useState("");
  const [types, setTypes] = useState("*");
  const [description, setDescription] = useState("");
  const [ordered, setOrdered] = useState(false);
  const [active, setActive] = useState(true);
  const [secret, setSecret] = useState<{ url: string; secret: string; previousUntil?: Date | undefined }>();
  const [copied, setCopied] = useState(false);
  const [notice, setNotice] = useState<NoticeText>();
  const [logOf, setLogOf] = useState<Endpoint>();
  const orderedId = useId();
  const activeId = useId();
  const formRef = useRef<HTMLFormElement>(null);
  // "Edit" fills the form below the list: bring it into view, the URL field focused.
  useEffect(() => {
    if (editing) formRef.current?.querySelector("input")?.focus();
  }, [editing]);

  const reset = () => {
    setEditing(undefined);
    setUrl("");
    setTypes("*");
    setDescription("");
    setOrdered(false);
    setActive(true);
  };
  const startEdit = (e: Endpoint) => {
    setEditing(e);
    setUrl(e.url);
    setTypes(e.eventTypes.join(", "));
    setDescription(e.description);
    setOrdered(e.ordered);
    setActive(e.active);
    setNotice(undefined);
  };
  const submit = useSubmit(async () => {
    try {
      if (editing) {
        await hooks.updateEndpoint({ endpointId: editing.endpointId, url: url.trim(), eventTypes: { values: splitTypes(types) }, description, ordered, active });
        setNotice({ text: w("saved") });
      } else {
        const r = await hooks.createEndpoint({ url: url.trim(), eventTypes: splitTypes(types), description, ordered });
        setSecret({ url: r.endpoint!.url, secret: r.secret });
        setCopied(false);
      }
      reset();
      await refresh();
    } catch (e) {
      asLocal(e);
    }
  });
  const act = async (fn: () => Promise<string>) => {
    try {
      setNotice({ text: await fn() });
    } catch (e) {
      setNotice({ text: describeError(e, words.i18n), error: true });
    }
    await refresh();
  };
  const rotate = (e: Endpoint) =>
    act(async () => {
      const r = await hooks.rotateSecret({ endpointId: e.endpointId });
      setSecret({ url: e.url, secret: r.secret, previousUntil: at(r.previousSecretExpireTime) });
      setCopied(false);
      return "";
    });
  const sendTest = (e: Endpoint) =>
    act(async () => {
      await hooks.sendTest({ endpointId: e.endpointId });
      setLogOf(e);
      await queryClient.invalidateQueries({ queryKey: createConnectQueryKey({ schema: WebhookService.method.listDeliveries, cardinality: undefined }) });
      return w("testSent", { url: e.url });
    });
  const remove = (e: Endpoint) => {
    if (!window.confirm(w("confirmRemove", { url: e.url }))) return;
    void act(async () => {
      await hooks.deleteEndpoint({ endpointId: e.endpointId });
      if (logOf?.endpointId === e.endpointId) setLogOf(undefined);
      if (editing?.endpointId === e.endpointId) reset();
      return w("removed", { url: e.url });
    });
  };
  const copy = async () => {
    if (!secret) return;
    try {
      await navigator.clipboard.writeText(secret.secret);
      setCopied(true);
    } catch {
      setCopied(false);
    }
  };
  const err = submit.fieldError;
  const rows = list.data?.endpoints ?? [];
  return (
    <section aria-labelledby="hooks-title">
      <h2 id="hooks-title">{w("title")}</h2>
      <p className="hint">{w("intro")}</p>
      {secret && (
        <div className="secret-box" role="region" aria-labelledby="hook-secret-title">
          <h3 id="hook-secret-title">{w("secretTitle", { url: secret.url })}</h3>
          <p>
            <strong>{w("secretOnce")}</strong>
          </p>
          {secret.previousUntil && <p>{w("previousUntil", { when: words.dateTime(secret.previousUntil) })}</p>}
          <label htmlFor="hook-secret">{w("secretLabel")}</label>
          <div className="secret-row">
            <input id="hook-secret" readOnly value={secret.secret} onFocus={(e) => e.target.select()} spellCheck={false} autoComplete="off" />
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
      <Notice notice={notice} />
      {list.error && (
        <p role="alert" className="error">
          {describeError(list.error, words.i18n)}
        </p>
      )}
      {rows.length === 0 ? (
        <p>{list.isPending ? "…" : w("noEndpoints")}</p>
      ) : (
        <div className="table-wrap">
          <table className="entries" aria-labelledby="hooks-title">
            <thead>
              <tr>
                <th scope="col">{w("url")}</th>
                <th scope="col">{w("events")}</th>
                <th scope="col">{w("description")}</th>
                <th scope="col">{w("status")}</th>
                <th scope="col">{w("actions")}</th>
              </tr>
            </thead>
            <tbody>
              {rows.map((e) => (
                <tr key={e.endpointId} data-endpoint={e.endpointId}>
                  <th scope="row">
                    <code>{e.url}</code>
                  </th>
                  <td>{e.eventTypes.join(", ")}</td>
                  <td>{e.description}</td>
                  <td>
                    {e.disabledReason ? w("disabled", { reason: e.disabledReason }) : e.active ? w("enabled") : w("inactive")}
                    {e.ordered ? ` · ${w("ordered")}` : ""}
                  </td>
                  <td className="row-actions">
                    <button type="button" className="secondary small" onClick={() => setLogOf(e)} aria-label={w("logOf", { url: e.url })} aria-pressed={logOf?.endpointId === e.endpointId}>
                      {w("log")}
                    </button>
                    <button type="button" className="secondary small" onClick={() => void sendTest(e)} aria-label={w("testOf", { url: e.url })}>
                      {w("test")}
                    </button>
                    <button type="button" className="secondary small" onClick={() => startEdit(e)} aria-label={w("editOf", { url: e.url })}>
                      {w("edit")}
                    </button>
                    <button type="button" className="secondary small" onClick={() => void rotate(e)} aria-label={w("rotateOf", { url: e.url })}>
                      {w("rotate")}
                    </button>
                    <button type="button" className="secondary small danger" onClick={() => remove(e)} aria-label={w("removeOf", { url: e.url })}>
                      {w("remove")}
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {logOf && <Deliveries key={logOf.endpointId} endpoint={logOf} />}
      <form ref={formRef} className="new-key" onSubmit={submit.onSubmit} noValidate aria-labelledby="hook-form-title">
        <h3 id="hook-form-title">{editing ? w("editEndpoint", { url: editing.url }) : w("newEndpoint")}</h3>
        <Field label={w("url")} hint={w("urlHint")} name="url" type="url" autoComplete="off" value={url} onChange={setUrl} error={err.url} />
        <Field label={w("events")} hint={w("eventsHint")} name="eventTypes" autoComplete="off" value={types} onChange={setTypes} error={err.eventTypes} />
        <Field label={w("description")} name="description" autoComplete="off" required={false} value={description} onChange={setDescription} error={err.description} />
        <p className="inline-label">
          <input id={orderedId} type="checkbox" checked={ordered} onChange={(e) => setOrdered(e.target.checked)} />
          <label htmlFor={orderedId}>{w("ordered")}</label>
        </p>
        {editing && (
          <p className="inline-label">
            <input id={activeId} type="checkbox" checked={active} onChange={(e) => setActive(e.target.checked)} />
            <label htmlFor={activeId}>{w("active")}</label>
          </p>
        )}
        <FormError text={submit.error} />
        <div className="actions">
          <button type="submit" disabled={submit.busy}>
            {editing ? w("save") : w("create")}
          </button>
          {editing && (
            <button type="button" className="secondary" onClick={reset}>
              {w("cancel")}
            </button>
          )}
        </div>
      </form>
    </section>
  );
}

const paging = { pageParamKey: "pageToken", getNextPageParam: (last: { nextPageToken: string }) => last.nextPageToken || undefined } as const;

function Deliveries({ endpoint }: { endpoint: Endpoint }) {
  const words = useWords();
  const { w } = words;
  const id = useId();
  const [notice, setNotice] = useState<NoticeText>();
  const [since, setSince] = useState("");
  const list = useInfiniteQuery(WebhookService.method.listDeliveries, { endpointId: endpoint.endpointId, pageSize: 50, pageToken: "" }, {
    ...paging,
    // While a delivery waits for its next attempt the log rereads itself.
    refetchInterval: (q) => (q.state.data?.pages.some((p) => p.deliveries.some((d) => d.status === DeliveryStatus.PENDING)) ? 1000 : false),
  });
  const rows = list.data?.pages.flatMap((p) => p.deliveries) ?? [];
  const statusWord = (d: Delivery) => (d.status === DeliveryStatus.SUCCEEDED ? w("succeeded") : d.status === DeliveryStatus.FAILED ? w("failed") : w("pending"));
  const redeliver = async (d: Delivery) => {
    try {
      await hooks.redeliver({ endpointId: endpoint.endpointId, deliveryId: d.deliveryId });
      setNotice({ text: w("redelivered", { event: d.eventType }) });
    } catch (e) {
      setNotice({ text: describeError(e, words.i18n), error: true });
    }
    await list.refetch();
  };
  const replay = useSubmit(async () => {
    if (!/^\d+$/.test(since.trim())) throw new LocalInvalid({ sinceVersion: w("wholeNumber") });
    try {
      const r = await hooks.replayEvents({ endpointId: endpoint.endpointId, sinceVersion: BigInt(since.trim()) });
      setNotice({ text: w("replayed", { count: r.queued }) });
      await list.refetch();
    } catch (e) {
      asLocal(e);
    }
  });
  return (
    <section aria-labelledby={`${id}-title`} className="deliveries">
      <h3 id={`${id}-title`}>{w("deliveriesTitle", { url: endpoint.url })}</h3>
      <div className="actions">
        <button type="button" className="secondary" onClick={() => void list.refetch()} disabled={list.isFetching}>
          {w("refresh")}
        </button>
      </div>
      <form className="filters" onSubmit={replay.onSubmit} noValidate aria-label={w("replay")}>
        <Field label={w("replaySince")} hint={w("replayHint")} name="sinceVersion" autoComplete="off" value={since} onChange={setSince} error={replay.fieldError.sinceVersion} />
        <button type="submit" className="secondary" disabled={replay.busy}>
          {w("replay")}
        </button>
        <FormError text={replay.error} />
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
        <p>{w("noDeliveries")}</p>
      ) : (
        <div className="table-wrap">
          <table className="entries" aria-labelledby={`${id}-title`}>
            <thead>
              <tr>
                <th scope="col">{w("queued")}</th>
                <th scope="col">{w("event")}</th>
                <th scope="col">{w("version")}</th>
                <th scope="col">{w("status")}</th>
                <th scope="col">{w("attempts")}</th>
                <th scope="col">{w("actions")}</th>
              </tr>
            </thead>
            <tbody>
              {rows.map((d) => (
                <tr key={d.deliveryId} data-delivery={d.deliveryId} data-status={statusWord(d)}>
                  <td>{at(d.createTime) && words.dateTime(at(d.createTime)!)}</td>
                  <td>
                    <code>{d.eventType}</code>
                  </td>
                  <td className="num">{d.version.toString()}</td>
                  <td>
                    {statusWord(d)}
                    {d.status === DeliveryStatus.PENDING && at(d.nextAttemptTime) ? ` (${w("nextAttempt", { when: words.dateTime(at(d.nextAttemptTime)!) })})` : ""}
                  </td>
                  <td>
                    {d.attempts.length === 0 ? (
                      "—"
                    ) : (
                      <ol className="attempts">
                        {d.attempts.map((a, i) => (
                          <li key={i} data-http={a.httpStatus}>
                            {at(a.attemptTime) && words.dateTime(at(a.attemptTime)!)} · {w("httpStatus")} {a.httpStatus || "—"} · {w("ms", { n: words.number(a.latencyMs) })}
                            {a.error ? ` · ${a.error}` : ""}
                            {a.responsePrefix && (
                              <>
                                {" · "}
                                <code title={w("answer")}>{a.responsePrefix.slice(0, 200)}</code>
                              </>
                            )}
                          </li>
                        ))}
                      </ol>
                    )}
                  </td>
                  <td>
                    <button type="button" className="secondary small" onClick={() => void redeliver(d)} aria-label={w("redeliverOf", { event: d.eventType, version: d.version.toString() })}>
                      {w("redeliver")}
                    </button>
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

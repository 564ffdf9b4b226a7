/**
 * A new deal (name, pipeline and stage, amount in the person's locale and a currency, expected
 * close date, company, person, owner) and a deal's page: details edited in place (update_mask +
 * etag; the stage through MoveDeal), its company and people, and its timeline with the moves.
 */
import { useId, useState, type FormEvent } from "react";
import { Link, useLocation, useSearch } from "wouter";
import { createConnectQueryKey, createQueryOptions, useQuery } from "@connectrpc/connect-query";
import { useQueryClient } from "@tanstack/react-query";
import { create } from "@bufbuild/protobuf";
import { DealService, DealStatus, GetDealResponseSchema, type Deal, type DealSchema } from "@crm/gen/crm/records/v1/deal_pb";
import { ObjectType } from "@crm/gen/crm/records/v1/common_pb";
import { isAdmin, transport, type Session } from "../../session";
import { prefetch as prefetchQuery, queryClient as pageQueryClient } from "../../query";
import { PipelineService } from "@crm/gen/crm/records/v1/pipeline_pb";
import { Field, FormError, LocalInvalid, useRequestId, useSubmit } from "../../forms";
import { currencies, formatAmountInput, formatDate, formatMoney, minorDigits, parseAmount } from "./format";
import { CompanyLink, InlineField, LinkedItem, Notice, ReadOnlyHint, RecordPicker, api, assigneeOptions, date, permissionsMethod, pipelinesInput, recordError, splitErrors, statusWord, timelineOf, useDirectory, useInvalidate, useMayEdit, usePipelines } from "./common";
import { OwnerSelect, Times, TrashBanner, useFieldSaver, type Patch } from "./Companies";
import { Timeline, prefetchTimeline } from "./Timeline";
import { CustomDetails } from "./custom";
import { RecordActivity } from "./activity-lazy";
import { RecordChats } from "./RecordChats";
import { useWords, type Words } from "./words";

/** The pipelines (stage names, the form's choices), and a deal page's deal and timeline. */
export function prefetch(path: string): void {
  prefetchQuery(PipelineService.method.listPipelines, pipelinesInput);
  const id = /^\/deals\/([0-9a-f-]{36})$/.exec(path)?.[1];
  if (!id) return;
  void pageQueryClient.prefetchQuery(createQueryOptions(DealService.method.getDeal, { id }, { transport }));
  void pageQueryClient.prefetchQuery(createQueryOptions(permissionsMethod, {}, { transport }));
  prefetchTimeline(ObjectType.DEAL, id);
}

const currencyKey = "crm.currency";
/** The currency of the last deal made in this browser, else one for the language. */
function defaultCurrency(locale: string): string {
  return localStorage.getItem(currencyKey) ?? (locale === "ru" ? "RUB" : "USD");
}

const dealFields = ["name", "pipelineId", "stageId", "amountMinor", "currencyCode", "expectedCloseDate", "lostReason", "companyId", "personIds", "ownerId", "assigneeId"];

/** 12,500 in the currency's minor units: the example the amount's hint shows. */
const exampleMinor = (currency: string) => 12500n * 10n ** BigInt(minorDigits(currency));

/** The amount typed → minor units, or the reason beside the field. */
function amountOf(text: string, currency: string, words: Words): bigint | undefined {
  if (!text.trim()) return undefined;
  const r = parseAmount(text, currency, words.locale);
  if (r.ok) return r.minor;
  const example = formatAmountInput(exampleMinor(currency), currency, words.locale);
  throw new LocalInvalid({ amountMinor: r.reason === "fraction" ? words.w("amountFraction", { currency, digits: minorDigits(currency) }) : words.w("amountFormat", { example }) });
}

export function CurrencySelect({ id, value, onChange, error }: { id: string; value: string; onChange(v: string): void; error?: string | undefined }) {
  const { locale } = useWords();
  let names: Intl.DisplayNames | undefined;
  try {
    names = new Intl.DisplayNames(locale, { type: "currency" });
  } catch {
    names = undefined;
  }
  const list = currencies();
  if (value && !list.includes(value)) list.unshift(value);
  return (
    <select id={id} value={value} onChange={(e) => onChange(e.target.value)} aria-invalid={error ? true : undefined} aria-describedby={error ? `${id}-error` : undefined}>
      {list.map((c) => (
        <option key={c} value={c}>
          {c} — {names?.of(c) ?? c}
        </option>
      ))}
    </select>
  );
}

export function NewDeal({ session }: { session: Session }) {
  const words = useWords();
  const { w, locale } = words;
  const dir = useDirectory(session);
  const [, navigate] = useLocation();
  const search = new URLSearchParams(useSearch());
  const { pipelines } = usePipelines();
  const invalidate = useInvalidate();
  const ids = { stage: useId(), pipeline: useId(), currency: useId(), close: useId() };
  const [v, setV] = useState({
    name: "",
    pipelineId: search.get("pipeline") ?? "",
    stageId: search.get("stage") ?? "",
    amount: "",
    currency: defaultCurrency(locale),
    closeDate: "",
    companyId: search.get("company") ?? "",
    personId: search.get("person") ?? "",
    ownerId: "",
  });
  const change = (k: keyof typeof v) => (x: string) => setV({ ...v, [k]: x });
  const pipeline = pipelines.find((p) => p.id === v.pipelineId) ?? pipelines[0];
  const requestId = useRequestId();
  const submit = useSubmit(async () => {
    const amountMinor = amountOf(v.amount, v.currency, words);
    try {
      const r = await api.deals.createDeal({
        requestId: requestId.current,
        deal: {
          name: v.name.trim(),
          pipelineId: pipeline?.id ?? "",
          stageId: v.stageId && pipeline?.stages.some((s) => s.id === v.stageId) ? v.stageId : "",
          amountMinor,
          currencyCode: amountMinor !== undefined ? v.currency : "",
          expectedCloseDate: v.closeDate,
          companyId: v.companyId,
          personIds: v.personId ? [v.personId] : [],
          ownerId: v.ownerId,
        },
      });
      if (amountMinor !== undefined) localStorage.setItem(currencyKey, v.currency);
      await invalidate(DealService.method.listDeals);
      navigate(`/deals/${r.deal!.id}`);
    } catch (e) {
      const split = splitErrors(e, words, "deal", dealFields, v.name);
      throw new LocalInvalid(split.fields, split.form);
    }
  });
  const err = submit.fieldError;
  const example = formatAmountInput(exampleMinor(v.currency), v.currency, locale);
  return (
    <section aria-labelledby="new-deal-title" className="record-form">
      <h1 id="new-deal-title">{w("newDeal")}</h1>
      <form onSubmit={submit.onSubmit} noValidate>
        <Field label={w("dealName")} name="name" autoComplete="off" value={v.name} onChange={change("name")} error={err.name} />
        <div className="field">
          <label htmlFor={ids.pipeline}>{w("pipeline")}</label>
          <select id={ids.pipeline} value={pipeline?.id ?? ""} onChange={(e) => setV({ ...v, pipelineId: e.target.value, stageId: "" })} aria-invalid={err.pipelineId ? true : undefined} aria-describedby={err.pipelineId ? `${ids.pipeline}-error` : undefined}>
            {pipelines.map((p) => (
              <option key={p.id} value={p.id}>
                {p.name}
              </option>
            ))}
          </select>
          {err.pipelineId && (
            <small id={`${ids.pipeline}-error`} className="field-error">
              {err.pipelineId}
            </small>
          )}
        </div>
        <div className="field">
          <label htmlFor={ids.stage}>{w("stage")}</label>
          <select id={ids.stage} value={v.stageId} onChange={(e) => change("stageId")(e.target.value)}>
            <option value="">{w("firstStage")}</option>
            {pipeline?.stages.map((s) => (
              <option key={s.id} value={s.id}>
                {s.name}
              </option>
            ))}
          </select>
        </div>
        <div className="money-fields">
          <Field label={w("amount")} hint={w("amountHint", { currency: v.currency, example })} name="amount" autoComplete="off" required={false} value={v.amount} onChange={change("amount")} error={err.amountMinor} />
          <div className="field">
            <label htmlFor={ids.currency}>{w("currency")}</label>
            <CurrencySelect id={ids.currency} value={v.currency} onChange={change("currency")} error={err.currencyCode} />
            {err.currencyCode && (
              <small id={`${ids.currency}-error`} className="field-error">
                {err.currencyCode}
              </small>
            )}
          </div>
        </div>
        <Field label={w("closeDate")} name="expectedCloseDate" type="date" autoComplete="off" required={false} value={v.closeDate} onChange={change("closeDate")} error={err.expectedCloseDate} />
        <RecordPicker kind="company" label={w("company")} value={v.companyId} onChange={change("companyId")} error={err.companyId} />
        <RecordPicker kind="person" label={w("person")} value={v.personId} onChange={change("personId")} error={err.personIds} />
        {isAdmin(session) && <OwnerSelect dir={dir} value={v.ownerId} onChange={change("ownerId")} error={err.ownerId} />}
        <FormError text={submit.error} />
        <div className="form-buttons">
          <button type="submit" disabled={submit.busy || !pipeline}>
            {w("createDeal")}
          </button>
          <Link href={pipeline ? `/deals?pipeline=${pipeline.id}` : "/deals"} className="button secondary">
            {w("cancel")}
          </Link>
        </div>
        {!pipeline && <p>{w(isAdmin(session) ? "noPipeline" : "noPipelineMember")}</p>}
      </form>
    </section>
  );
}

export function DealPage({ id, session }: { id: string; session: Session }) {
  const words = useWords();
  const { w, t } = words;
  const dir = useDirectory(session);
  const queryClient = useQueryClient();
  const invalidate = useInvalidate();
  const { stages } = usePipelines();
  const q = useQuery(DealService.method.getDeal, { id }, { staleTime: 2_000 });
  const may = useMayEdit(session, ObjectType.DEAL);
  const d = q.data?.deal;
  const [notice, setNotice] = useState<{ text: string; error?: boolean }>();
  const key = createConnectQueryKey({ schema: DealService.method.getDeal, input: { id }, transport, cardinality: "finite" });
  const put = (deal: Deal) => queryClient.setQueryData(key, create(GetDealResponseSchema, { deal }));
  const saver = useFieldSaver<Deal>(() => q.refetch(), put, () => invalidate(DealService.method.listDeals, timelineOf));
  if (q.isPending) return <p aria-busy="true">{t("app.loading")}</p>;
  if (!d)
    return (
      <p role="alert" className="error">
        {recordError(q.error, words, "")}
      </p>
    );
  const here = stages.get(d.stageId);
  const canEdit = may.edit(d);
  const errorsOf = (e: unknown) => (e instanceof LocalInvalid ? { fields: e.fields } : splitErrors(e, words, "deal", dealFields, d.name));
  const save = (mask: string[], patch: Patch<typeof DealSchema>) => saver(async () => (await api.deals.updateDeal({ deal: { ...patch, id: d.id, etag: d.etag }, updateMask: { paths: mask } })).deal);
  const trashToggle = async () => {
    try {
      if (d.deleteTime) {
        await api.deals.undeleteDeal({ id });
        setNotice({ text: w("restored", { name: d.name }) });
      } else {
        await api.deals.deleteDeal({ id, etag: d.etag });
        setNotice({ text: w("deleted", { name: d.name }) });
      }
    } catch (e) {
      setNotice({ text: recordError(e, words, d.name), error: true });
    }
    await q.refetch();
    await invalidate(DealService.method.listDeals, timelineOf);
  };
  const closed = date(d.closeTime);
  const entered = date(d.stageEnterTime);
  return (
    <article aria-labelledby="record-title" className="record">
      <div className="list-head">
        <h1 id="record-title">{d.name}</h1>
        <Link href={`/deals?pipeline=${d.pipelineId}`}>{w("openBoard")}</Link>
      </div>
      <TrashBanner record={d} />
      <Notice notice={notice} />
      <ReadOnlyHint show={!d.deleteTime && !canEdit} />
      <div className="record-grid">
        <section aria-labelledby="details-title" className="details">
          <h2 id="details-title">{w("details")}</h2>
          <InlineField label={w("dealName")} field="name" display={d.name} initial={d.name} editor={{ kind: "text", maxLength: 200 }} canEdit={canEdit} errorsOf={errorsOf} save={(v) => save(["name"], { name: v.trim() })} />
          <div className="detail">
            <span className="detail-label">{w("pipeline")}</span>
            <span className="detail-value">{here?.pipeline.name ?? ""}</span>
          </div>
          <InlineField
            label={w("stage")}
            field="stageId"
            display={here?.stage.name ?? ""}
            initial={d.stageId}
            editor={{ kind: "select", options: (here?.pipeline.stages ?? []).map((s) => ({ value: s.id, label: s.name })) }}
            canEdit={canEdit}
            errorsOf={errorsOf}
            save={(stageId) => (stageId === d.stageId ? Promise.resolve() : saver(async () => (await api.deals.moveDeal({ id: d.id, stageId, etag: d.etag })).deal))}
          />
          <div className="detail">
            <span className="detail-label">{w("status")}</span>
            <span className={`detail-value status-${DealStatus[d.status]?.toLowerCase()}`}>{statusWord[d.status] ? w(statusWord[d.status]!) : ""}</span>
          </div>
          <MoneyField deal={d} canEdit={canEdit} errorsOf={errorsOf} save={save} />
          <InlineField
            label={w("closeDate")}
            field="expectedCloseDate"
            display={d.expectedCloseDate ? formatDate(d.expectedCloseDate, words.locale) : w("empty")}
            initial={d.expectedCloseDate}
            editor={{ kind: "text", type: "date" }}
            canEdit={canEdit}
            errorsOf={errorsOf}
            save={(v) => save(["expected_close_date"], { expectedCloseDate: v })}
          />
          {(d.status === DealStatus.LOST || d.lostReason) && (
            <InlineField label={w("lostReason")} field="lostReason" display={d.lostReason || w("empty")} initial={d.lostReason} editor={{ kind: "textarea", maxLength: 500 }} canEdit={canEdit} errorsOf={errorsOf} save={(v) => save(["lost_reason"], { lostReason: v.trim() })} />
          )}
          <InlineField label={w("company")} field="companyId" display={d.companyId ? <CompanyLink id={d.companyId} /> : w("empty")} initial={d.companyId} editor={{ kind: "picker", pick: "company" }} canEdit={canEdit} errorsOf={errorsOf} save={(v) => save(["company_id"], { companyId: v })} />
          <InlineField
            label={w("owner")}
            field="ownerId"
            display={dir.name(d.ownerId)}
            initial={d.ownerId}
            editor={{ kind: "select", options: dir.users.map((u) => ({ value: u.id, label: u.name })) }}
            canEdit={canEdit && isAdmin(session) && dir.users.length > 0}
            errorsOf={errorsOf}
            save={(v) => save(["owner_id"], { ownerId: v })}
          />
          <InlineField
            label={w("assignee")}
            field="assigneeId"
            display={d.assigneeId ? dir.name(d.assigneeId) : w("nobody")}
            initial={d.assigneeId}
            editor={{ kind: "select", options: assigneeOptions(dir, words) }}
            canEdit={may.assign(d) && dir.users.length > 0}
            errorsOf={errorsOf}
            save={(v) => save(["assignee_id"], { assigneeId: v })}
          />
          {entered && (
            <div className="detail">
              <span className="detail-label">{w("stageEntered")}</span>
              <span className="detail-value">
                <time dateTime={entered.toISOString()}>{words.dateTime(entered)}</time>
              </span>
            </div>
          )}
          {closed && (
            <div className="detail">
              <span className="detail-label">{w("closed")}</span>
              <span className="detail-value">
                <time dateTime={closed.toISOString()}>{words.dateTime(closed)}</time>
              </span>
            </div>
          )}
          <CustomDetails objectType={ObjectType.DEAL} prefix="deal" custom={d.custom} dir={dir} canEdit={canEdit} errorsOf={errorsOf} save={(key, value) => save([`custom.${key}`], { custom: { [key]: value } })} />
          <Times record={d} />
          {may.change(d) && (
            <button type="button" className={d.deleteTime ? "secondary" : "secondary danger"} onClick={() => void trashToggle()}>
              {d.deleteTime ? w("restore") : w("delete")}
            </button>
          )}
        </section>
        <section aria-labelledby="linked-title" className="linked">
          <h2 id="linked-title">{w("linked")}</h2>
          <h3>{w("company")}</h3>
          <p>{d.companyId ? <CompanyLink id={d.companyId} /> : w("noLinked")}</p>
          <h3>{w("peopleHere")}</h3>
          <DealPeople deal={d} canEdit={canEdit} errorsOf={errorsOf} save={(personIds) => save(["person_ids"], { personIds })} />
        </section>
      </div>
      <RecordActivity objectType={ObjectType.DEAL} recordId={d.id} name={d.name} dir={dir} session={session} />
      {!d.deleteTime && <RecordChats objectType={ObjectType.DEAL} recordId={d.id} name={d.name} />}
      <Timeline objectType={ObjectType.DEAL} recordId={d.id} dir={dir} currency={d.currencyCode} />
    </article>
  );
}

/** The amount and its currency, edited together (one update of amount_minor and currency_code). */
function MoneyField({ deal: d, canEdit, errorsOf, save }: { deal: Deal; canEdit: boolean; errorsOf(e: unknown): { form?: string; fields: Record<string, string> }; save(mask: string[], patch: Patch<typeof DealSchema>): Promise<void> }) {
  const words = useWords();
  const { w, locale } = words;
  const id = useId();
  const [editing, setEditing] = useState(false);
  const [amount, setAmount] = useState("");
  const [currency, setCurrency] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<{ form?: string; amount?: string; currency?: string }>();
  const begin = () => {
    const cur = d.currencyCode || defaultCurrency(locale);
    setCurrency(cur);
    setAmount(d.amountMinor !== undefined ? formatAmountInput(d.amountMinor, cur, locale) : "");
    setError(undefined);
    setEditing(true);
  };
  const onSubmit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      const minor = amountOf(amount, currency, words);
      await save(["amount_minor", "currency_code"], { amountMinor: minor, currencyCode: minor === undefined ? "" : currency });
      setEditing(false);
    } catch (err) {
      const r = errorsOf(err);
      setError({ amount: r.fields.amountMinor, currency: r.fields.currencyCode, form: r.fields.amountMinor || r.fields.currencyCode ? undefined : r.form });
    } finally {
      setBusy(false);
    }
  };
  const label = w("amount");
  return (
    <div className="detail" data-field="amountMinor">
      {editing ? (
        <form className="inline-edit money-fields" onSubmit={(e) => void onSubmit(e)} onKeyDown={(e) => e.key === "Escape" && setEditing(false)}>
          <div className="field">
            <label htmlFor={`${id}-a`}>{label}</label>
            <input id={`${id}-a`} value={amount} onChange={(e) => setAmount(e.target.value)} autoFocus aria-invalid={error?.amount ? true : undefined} aria-describedby={error?.amount ? `${id}-a-error` : undefined} />
            {error?.amount && (
              <small id={`${id}-a-error`} className="field-error">
                {error.amount}
              </small>
            )}
          </div>
          <div className="field">
            <label htmlFor={`${id}-c`}>{w("currency")}</label>
            <CurrencySelect id={`${id}-c`} value={currency} onChange={setCurrency} error={error?.currency} />
            {error?.currency && (
              <small id={`${id}-c-error`} className="field-error">
                {error.currency}
              </small>
            )}
          </div>
          <span className="inline-edit-buttons">
            <button type="submit" disabled={busy} aria-label={w("saveOf", { field: label })}>
              {w("save")}
            </button>
            <button type="button" className="secondary" onClick={() => setEditing(false)}>
              {w("cancel")}
            </button>
          </span>
        </form>
      ) : (
        <>
          <span className="detail-label">{label}</span>
          <span className="detail-value">{d.amountMinor !== undefined && d.currencyCode ? formatMoney(d.amountMinor, d.currencyCode, locale) : w("empty")}</span>
          {canEdit && (
            <button type="button" className="secondary small" onClick={begin} aria-label={w("editOf", { field: label })}>
              {w("edit")}
            </button>
          )}
        </>
      )}
      {error?.form && (
        <p role="alert" className="error detail-error">
          {error.form}
        </p>
      )}
    </div>
  );
}

/** The people of a deal: each with Remove, and a picker to add one (person_ids is saved whole). */
function DealPeople({ deal, canEdit, errorsOf, save }: { deal: Deal; canEdit: boolean; errorsOf(e: unknown): { form?: string; fields: Record<string, string> }; save(ids: string[]): Promise<void> }) {
  const { w } = useWords();
  const [personId, setPersonId] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<{ form?: string; field?: string }>();
  const run = async (ids: string[]) => {
    setBusy(true);
    setError(undefined);
    try {
      await save(ids);
      setPersonId("");
    } catch (e) {
      const r = errorsOf(e);
      setError({ field: r.fields.personIds, form: r.fields.personIds ? undefined : r.form });
    } finally {
      setBusy(false);
    }
  };
  return (
    <>
      {deal.personIds.length === 0 ? (
        <p>{w("noLinked")}</p>
      ) : (
        <ul className="linked-list">
          {deal.personIds.map((pid) => (
            <LinkedItem key={pid} kind="person" id={pid} busy={busy} onRemove={canEdit ? () => void run(deal.personIds.filter((x) => x !== pid)) : undefined} />
          ))}
        </ul>
      )}
      {canEdit && (
        <form
          className="add-link"
          onSubmit={(e) => {
            e.preventDefault();
            if (personId && !deal.personIds.includes(personId)) void run([...deal.personIds, personId]);
          }}
        >
          <RecordPicker kind="person" label={w("addPerson")} value={personId} onChange={setPersonId} error={error?.field} />
          <button type="submit" disabled={busy || !personId}>
            {w("add")}
          </button>
        </form>
      )}
      {error?.form && (
        <p role="alert" className="error">
          {error.form}
        </p>
      )}
    </>
  );
}

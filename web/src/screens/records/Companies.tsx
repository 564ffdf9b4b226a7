/**
 * Companies: the list (sortable columns, simple filters mapped to the filter tree, keyset pages
 * with "load more" and infinite scroll, the trash with restore), the create form with the
 * server's reasons beside the fields, and a company's page (details edited in place with
 * update_mask + etag, its people and deals, its timeline).
 */
import { useState, type ReactNode } from "react";
import { Link, useLocation } from "wouter";
import { createConnectQueryKey, createInfiniteQueryOptions, createQueryOptions, useInfiniteQuery, useQuery } from "@connectrpc/connect-query";
import { useQueryClient } from "@tanstack/react-query";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { CompanyService, GetCompanyResponseSchema, type Company, type CompanySchema } from "@crm/gen/crm/records/v1/company_pb";
import { PersonService } from "@crm/gen/crm/records/v1/person_pb";
import { ObjectType, Operator } from "@crm/gen/crm/records/v1/common_pb";
import { isAdmin, transport, type Session } from "../../session";
import { queryClient as pageQueryClient } from "../../query";
import { Field, FormError, LocalInvalid, useRequestId, useSubmit } from "../../forms";
import { allOf, anyContains, orderBy, splitList } from "./format";
import { FilterSelect, FilterText, InlineField, ListReadOnlyHint, ReadOnlyMark, Notice, OwnerFilter, ReadOnlyHint, SortHeader, api, assigneeOptions, date, permissionsMethod, personName, recordError, splitErrors, timelineOf, useDirectory, useInvalidate, useMayEdit, useSearchState, useSort, type Directory } from "./common";
import { DealsTable } from "./DealsTable";
import { Timeline, prefetchTimeline } from "./Timeline";
import { useLiveList } from "./live";
import { flatRows } from "./live-pages";
import { CustomDetails, CustomFilter, customColumns, customCondition, useFields } from "./custom";
import { ColumnCells, ColumnChooser, ColumnHeaders, ViewBar, visibleColumns, type Column, type ParamMap } from "./views";
import { RecordActivity } from "./activity-lazy";
import { RecordChats } from "./RecordChats";
import { useWords, type Words } from "./words";
import { ExportButton } from "./ExportButton";
import { RecordTable } from "./RecordTable";

const defaultSort = { field: "create_time", desc: true };
const paging = { pageParamKey: "pageToken", getNextPageParam: (last: { nextPageToken: string }) => last.nextPageToken || undefined } as const;

/** The list's request from the address bar's parameters (the screen and the early prefetch ask the same). */
export function companiesInput(p: URLSearchParams) {
  const trash = p.get("show") === "trash";
  const sort = p.get("sort") ?? defaultSort.field;
  const desc = p.has("sort") ? p.get("desc") === "1" : defaultSort.desc;
  const filter = allOf(
    anyContains(["name"], p.get("name") ?? ""),
    anyContains(["domain"], p.get("domain") ?? ""),
    anyContains(["industry"], p.get("industry") ?? ""),
    p.get("tag") ? { field: "tags", op: Operator.EQUALS, values: [p.get("tag")!.trim()] } : undefined,
    p.get("owner") ? { field: "owner_id", op: Operator.EQUALS, values: [p.get("owner")!] } : undefined,
    customCondition(p),
    trash ? { field: "delete_time", op: Operator.IS_NOT_EMPTY } : undefined,
  );
  return { filter, orderBy: orderBy(sort, desc), pageSize: 50, pageToken: "", showDeleted: trash };
}

/** The list's parameters (cleared when a view is picked) and how a view's conditions map back to them. */
const companyParams = ["name", "domain", "industry", "tag", "owner", "show", "cf", "cop", "cv", "sort", "desc", "cols"];
const companyMaps: ParamMap[] = [
  { param: "name", fields: ["name"], op: Operator.CONTAINS },
  { param: "domain", fields: ["domain"], op: Operator.CONTAINS },
  { param: "industry", fields: ["industry"], op: Operator.CONTAINS },
  { param: "tag", fields: ["tags"], op: Operator.EQUALS },
  { param: "owner", fields: ["owner_id"], op: Operator.EQUALS },
];

export function prefetch(path: string, search: URLSearchParams): void {
  if (path === "/companies") void pageQueryClient.prefetchInfiniteQuery(createInfiniteQueryOptions(CompanyService.method.listCompanies, companiesInput(search), { transport, ...paging }));
  const id = /^\/companies\/([0-9a-f-]{36})$/.exec(path)?.[1];
  if (!id) return;
  void pageQueryClient.prefetchQuery(createQueryOptions(CompanyService.method.getCompany, { id }, { transport }));
  void pageQueryClient.prefetchQuery(createQueryOptions(permissionsMethod, {}, { transport }));
  prefetchTimeline(ObjectType.COMPANY, id);
}

export function CompanyList({ session }: { session: Session }) {
  const words = useWords();
  const { w } = words;
  const [params, set] = useSearchState();
  const sort = useSort(params, set, defaultSort);
  const dir = useDirectory(session);
  const trash = params.get("show") === "trash";
  const input = companiesInput(params);
  const fields = useFields(ObjectType.COMPANY);
  const columns: Column<Company>[] = [
    { key: "domain", label: w("domain"), sort: "domain", cell: (c) => c.domain },
    { key: "industry", label: w("industry"), sort: "industry", cell: (c) => c.industry },
    { key: "size", label: w("size"), sort: "size", num: true, cell: (c) => (c.size !== undefined ? words.number(c.size) : "") },
    { key: "owner_id", label: w("owner"), sort: "owner_id", cell: (c) => dir.name(c.ownerId) },
    { key: "tags", label: w("tags"), cell: (c) => <Tags tags={c.tags} /> },
    ...customColumns<Company>(fields, dir),
    { key: "create_time", label: w("created"), sort: "create_time", cell: (c) => date(c.createTime) && words.dateTime(date(c.createTime)!) },
  ];
  const cols = visibleColumns(params, columns);
  const list = useInfiniteQuery(CompanyService.method.listCompanies, input, { ...paging, placeholderData: (prev) => prev, staleTime: 2_000, refetchOnWindowFocus: false });
  // Live: a change made anywhere to a record this list shows (or now would) rereads it.
  useLiveList({ objectType: ObjectType.COMPANY, filter: input.filter, showDeleted: input.showDeleted }, CompanyService.method.listCompanies, input, "companies", list.dataUpdatedAt);
  const rows = flatRows(list.data?.pages, "companies");
  const may = useMayEdit(session, ObjectType.COMPANY);
  const invalidate = useInvalidate();
  const [notice, setNotice] = useState<{ text: string; error?: boolean; action?: ReactNode }>();

  const restore = async (c: Company) => {
    try {
      await api.companies.undeleteCompany({ id: c.id });
      setNotice({ text: w("restored", { name: c.name }) });
    } catch (e) {
      setNotice({ text: recordError(e, words, c.name), error: true });
    }
    // The list itself follows over WatchRecords (useLiveList): no reread of every page loaded.
    await invalidate(CompanyService.method.getCompany, timelineOf);
  };
  const remove = async (c: Company) => {
    try {
      await api.companies.deleteCompany({ id: c.id, etag: c.etag });
      setNotice({
        text: w("deleted", { name: c.name }),
        action: (
          <button type="button" className="secondary small" onClick={() => void restore(c)}>
            {w("restore")}
          </button>
        ),
      });
    } catch (e) {
      setNotice({ text: recordError(e, words, c.name), error: true });
    }
    // The list itself follows over WatchRecords (useLiveList): no reread of every page loaded.
    await invalidate(CompanyService.method.getCompany, timelineOf);
  };

  return (
    <section aria-labelledby="companies-title">
      <div className="list-head">
        <h1 id="companies-title">{w("companies")}</h1>
        <Link href="/companies/new" className="button">
          {w("newCompany")}
        </Link>
        <Link href="/companies/import" className="button secondary">
          {w("importCsv")}
        </Link>
        <ExportButton fileName="companies" request={{ objectType: ObjectType.COMPANY, filter: input.filter, orderBy: input.orderBy, showDeleted: input.showDeleted, columns: ["name", ...cols.map((c) => c.key)] }} />
      </div>
      <form role="search" aria-label={w("filters")} className="filters" onSubmit={(e) => e.preventDefault()}>
        <FilterText label={w("nameContains")} value={params.get("name") ?? ""} onChange={(v) => set({ name: v })} />
        <FilterText label={w("domainContains")} value={params.get("domain") ?? ""} onChange={(v) => set({ domain: v })} />
        <FilterText label={w("industryContains")} value={params.get("industry") ?? ""} onChange={(v) => set({ industry: v })} />
        <FilterText label={w("tagIs")} value={params.get("tag") ?? ""} onChange={(v) => set({ tag: v })} />
        <OwnerFilter dir={dir} value={params.get("owner") ?? ""} onChange={(v) => set({ owner: v })} />
        <CustomFilter fields={fields} params={params} set={set} dir={dir} />
        <ColumnChooser all={columns} visible={cols} onChange={(keys) => set({ cols: keys?.join(",") })} />
        <FilterSelect
          label={w("show")}
          value={trash ? "trash" : ""}
          onChange={(v) => set({ show: v })}
          options={[
            { value: "", label: w("active") },
            { value: "trash", label: w("trash") },
          ]}
        />
      </form>
      <ViewBar objectType={ObjectType.COMPANY} session={session} params={params} set={set} stateParams={companyParams} maps={companyMaps} request={input} columns={cols.map((c) => c.key)} />
      <Notice notice={notice} />
      <ListReadOnlyHint show={rows.some((r) => !may.change(r))} />
      <RecordTable
        labelledBy="companies-title"
        list={list}
        rows={rows}
        rowKey={(c) => c.id}
        colSpan={2 + cols.length}
        head={
          <>
            <SortHeader label={w("name")} field="name" sort={sort} />
            <ColumnHeaders cols={cols} sort={sort} />
            <th scope="col">{w("actions")}</th>
          </>
        }
        empty={w(trash ? "trashEmpty" : "noCompanies")}
      >
        {(c) => (
          <>
            <th scope="row">
              <Link href={`/companies/${c.id}`}>{c.name}</Link>
            </th>
            <ColumnCells cols={cols} row={c} />
            <td>
              {!may.change(c) ? (
                <ReadOnlyMark />
              ) : c.deleteTime ? (
                <button type="button" className="secondary small" onClick={() => void restore(c)} aria-label={w("restoreOf", { name: c.name })}>
                  {w("restore")}
                </button>
              ) : (
                <button type="button" className="secondary small danger" onClick={() => void remove(c)} aria-label={w("deleteOf", { name: c.name })}>
                  {w("delete")}
                </button>
              )}
            </td>
          </>
        )}
      </RecordTable>
    </section>
  );
}

export function Tags({ tags }: { tags: string[] }) {
  if (tags.length === 0) return null;
  return (
    <ul className="tags">
      {tags.map((t) => (
        <li key={t}>{t}</li>
      ))}
    </ul>
  );
}

function ownerOptions(dir: Directory) {
  return dir.users.map((u) => ({ value: u.id, label: u.name }));
}

const companyFields = ["name", "domain", "address", "industry", "size", "tags", "ownerId", "assigneeId"];

/** "" → unset; a whole number 0.. → the number; anything else is refused here, beside the field. */
function parseSize(text: string, words: Words, field: string): number | undefined {
  const s = text.replace(/[\s\u00a0\u202f,.]/g, "");
  if (!s) return undefined;
  if (!/^\d{1,9}$/.test(s)) throw new LocalInvalid({ [field]: words.w("amountFormat", { example: words.number(250) }) });
  return Number(s);
}

export function NewCompany({ session }: { session: Session }) {
  const words = useWords();
  const { w } = words;
  const dir = useDirectory(session);
  const [, navigate] = useLocation();
  const invalidate = useInvalidate();
  const [v, setV] = useState({ name: "", domain: "", address: "", industry: "", size: "", tags: "", ownerId: "" });
  const change = (k: keyof typeof v) => (x: string) => setV({ ...v, [k]: x });
  const requestId = useRequestId();
  const submit = useSubmit(async () => {
    const size = parseSize(v.size, words, "size");
    try {
      const r = await api.companies.createCompany({ requestId: requestId.current, company: { name: v.name.trim(), domain: v.domain.trim(), address: v.address, industry: v.industry.trim(), size, tags: splitList(v.tags), ownerId: v.ownerId } });
      await invalidate(CompanyService.method.listCompanies);
      navigate(`/companies/${r.company!.id}`);
    } catch (e) {
      if (e instanceof LocalInvalid) throw e;
      const split = splitErrors(e, words, "company", companyFields, v.name);
      throw new LocalInvalid(split.fields, split.form);
    }
  });
  const err = submit.fieldError;
  return (
    <section aria-labelledby="new-company-title" className="record-form">
      <h1 id="new-company-title">{w("newCompany")}</h1>
      <form onSubmit={submit.onSubmit} noValidate>
        <Field label={w("name")} name="name" autoComplete="organization" value={v.name} onChange={change("name")} error={err.name} />
        <Field label={w("domain")} hint={w("domainHint")} name="domain" autoComplete="url" required={false} value={v.domain} onChange={change("domain")} error={err.domain} />
        <TextArea label={w("address")} value={v.address} onChange={change("address")} error={err.address} />
        <Field label={w("industry")} name="industry" autoComplete="off" required={false} value={v.industry} onChange={change("industry")} error={err.industry} />
        <Field label={w("size")} name="size" type="text" autoComplete="off" required={false} value={v.size} onChange={change("size")} error={err.size} />
        <Field label={w("tags")} hint={w("tagsHint")} name="tags" autoComplete="off" required={false} value={v.tags} onChange={change("tags")} error={err.tags} />
        {isAdmin(session) && <OwnerSelect dir={dir} value={v.ownerId} onChange={change("ownerId")} error={err.ownerId} />}
        <FormError text={submit.error} />
        <div className="form-buttons">
          <button type="submit" disabled={submit.busy}>
            {w("createCompany")}
          </button>
          <Link href="/companies" className="button secondary">
            {w("cancel")}
          </Link>
        </div>
      </form>
    </section>
  );
}

export function TextArea({ label, value, onChange, error, hint }: { label: string; value: string; onChange(v: string): void; error?: string | undefined; hint?: string }) {
  const id = `ta-${label.replace(/\W+/g, "-")}`;
  const described = [hint ? `${id}-hint` : "", error ? `${id}-error` : ""].filter(Boolean).join(" ") || undefined;
  return (
    <div className="field">
      <label htmlFor={id}>{label}</label>
      <textarea id={id} rows={3} value={value} onChange={(e) => onChange(e.target.value)} aria-invalid={error ? true : undefined} aria-describedby={described} />
      {hint && (
        <small id={`${id}-hint`} className="hint">
          {hint}
        </small>
      )}
      {error && (
        <small id={`${id}-error`} className="field-error">
          {error}
        </small>
      )}
    </div>
  );
}

/** The owner of a new record, for owners and admins (members own what they create). */
export function OwnerSelect({ dir, value, onChange, error }: { dir: Directory; value: string; onChange(v: string): void; error?: string | undefined }) {
  const { w } = useWords();
  const id = "owner-select";
  return (
    <div className="field">
      <label htmlFor={id}>{w("owner")}</label>
      <select id={id} value={value || dir.me} onChange={(e) => onChange(e.target.value)} aria-invalid={error ? true : undefined} aria-describedby={error ? `${id}-error` : undefined}>
        {!dir.users.some((u) => u.id === dir.me) && <option value={dir.me}>{w("you")}</option>}
        {ownerOptions(dir).map((o) => (
          <option key={o.value} value={o.value}>
            {o.label}
          </option>
        ))}
      </select>
      {error && (
        <small id={`${id}-error`} className="field-error">
          {error}
        </small>
      )}
    </div>
  );
}

/** Some fields of a record, to send with an update mask. */
export type Patch<S extends Parameters<typeof create>[0]> = Omit<Exclude<MessageInitShape<S>, { $typeName: string }>, "$typeName">;

/**
 * Saves one field of a record with its etag; the page's cached record is replaced by the answer.
 * A stale etag reloads the record (the latest version is shown) and the error says so.
 */
export function useFieldSaver<R extends { etag: string }>(refetch: () => Promise<unknown>, put: (r: R) => void, after: () => Promise<unknown>) {
  return async (send: () => Promise<R | undefined>) => {
    try {
      const r = await send();
      if (r) put(r);
      await after();
    } catch (e) {
      if (ConnectError.from(e).code === Code.Aborted) await refetch();
      throw e;
    }
  };
}

export function CompanyPage({ id, session }: { id: string; session: Session }) {
  const words = useWords();
  const { w, t } = words;
  const dir = useDirectory(session);
  const queryClient = useQueryClient();
  const invalidate = useInvalidate();
  const q = useQuery(CompanyService.method.getCompany, { id }, { staleTime: 2_000 });
  const may = useMayEdit(session, ObjectType.COMPANY);
  const c = q.data?.company;
  const [notice, setNotice] = useState<{ text: string; error?: boolean }>();
  const key = createConnectQueryKey({ schema: CompanyService.method.getCompany, input: { id }, transport, cardinality: "finite" });
  const saver = useFieldSaver<Company>(
    () => q.refetch(),
    (company) => queryClient.setQueryData(key, create(GetCompanyResponseSchema, { company })),
    () => invalidate(CompanyService.method.listCompanies, timelineOf),
  );
  if (q.isPending) return <p aria-busy="true">{t("app.loading")}</p>;
  if (!c)
    return (
      <p role="alert" className="error">
        {recordError(q.error, words, "")}
      </p>
    );
  const canEdit = may.edit(c);
  const errorsOf = (e: unknown) => splitErrors(e, words, "company", companyFields, c.name);
  const save = (mask: string, patch: Patch<typeof CompanySchema>) => saver(async () => (await api.companies.updateCompany({ company: { ...patch, id: c.id, etag: c.etag }, updateMask: { paths: [mask] } })).company);
  const text = (field: keyof Company & string, mask: string, label: string, opts: { maxLength?: number; hint?: string; textarea?: boolean } = {}) => (
    <InlineField
      label={label}
      field={field}
      display={String(c[field] ?? "") || w("empty")}
      initial={String(c[field] ?? "")}
      editor={opts.textarea ? { kind: "textarea", maxLength: opts.maxLength, hint: opts.hint } : { kind: "text", maxLength: opts.maxLength, hint: opts.hint }}
      canEdit={canEdit}
      errorsOf={errorsOf}
      save={(v) => save(mask, { [field]: v.trim() })}
    />
  );
  const trashToggle = async () => {
    try {
      if (c.deleteTime) {
        await api.companies.undeleteCompany({ id });
        setNotice({ text: w("restored", { name: c.name }) });
      } else {
        await api.companies.deleteCompany({ id, etag: c.etag });
        setNotice({ text: w("deleted", { name: c.name }) });
      }
    } catch (e) {
      setNotice({ text: recordError(e, words, c.name), error: true });
    }
    await q.refetch();
    await invalidate(CompanyService.method.listCompanies, timelineOf);
  };
  return (
    <article aria-labelledby="record-title" className="record">
      <div className="list-head">
        <h1 id="record-title">{c.name}</h1>
        <Link href="/companies">{w("companies")}</Link>
      </div>
      <TrashBanner record={c} />
      <Notice notice={notice} />
      <ReadOnlyHint show={!c.deleteTime && !canEdit} />
      <div className="record-grid">
        <section aria-labelledby="details-title" className="details">
          <h2 id="details-title">{w("details")}</h2>
          {text("name", "name", w("name"), { maxLength: 200 })}
          {text("domain", "domain", w("domain"), { hint: w("domainHint") })}
          {text("address", "address", w("address"), { maxLength: 500, textarea: true })}
          {text("industry", "industry", w("industry"), { maxLength: 100 })}
          <InlineField
            label={w("size")}
            field="size"
            display={c.size !== undefined ? words.number(c.size) : w("empty")}
            initial={c.size !== undefined ? String(c.size) : ""}
            editor={{ kind: "text", type: "text" }}
            canEdit={canEdit}
            errorsOf={(e) => (e instanceof LocalInvalid ? { fields: e.fields } : errorsOf(e))}
            save={(v) => save("size", { size: parseSize(v, words, "size") })}
          />
          <InlineField
            label={w("tags")}
            field="tags"
            display={c.tags.length ? <Tags tags={c.tags} /> : w("empty")}
            initial={c.tags.join(", ")}
            editor={{ kind: "text", hint: w("tagsHint") }}
            canEdit={canEdit}
            errorsOf={errorsOf}
            save={(v) => save("tags", { tags: splitList(v) })}
          />
          <InlineField
            label={w("owner")}
            field="ownerId"
            display={dir.name(c.ownerId)}
            initial={c.ownerId}
            editor={{ kind: "select", options: ownerOptions(dir) }}
            canEdit={canEdit && isAdmin(session) && dir.users.length > 0}
            errorsOf={errorsOf}
            save={(v) => save("owner_id", { ownerId: v })}
          />
          <InlineField
            label={w("assignee")}
            field="assigneeId"
            display={c.assigneeId ? dir.name(c.assigneeId) : w("nobody")}
            initial={c.assigneeId}
            editor={{ kind: "select", options: assigneeOptions(dir, words) }}
            canEdit={may.assign(c) && dir.users.length > 0}
            errorsOf={errorsOf}
            save={(v) => save("assignee_id", { assigneeId: v })}
          />
          <CustomDetails objectType={ObjectType.COMPANY} prefix="company" custom={c.custom} dir={dir} canEdit={canEdit} errorsOf={errorsOf} save={(key, value) => save(`custom.${key}`, { custom: { [key]: value } })} />
          <Times record={c} />
          {may.change(c) && (
            <button type="button" className={c.deleteTime ? "secondary" : "secondary danger"} onClick={() => void trashToggle()}>
              {c.deleteTime ? w("restore") : w("delete")}
            </button>
          )}
        </section>
        <section aria-labelledby="linked-title" className="linked">
          <h2 id="linked-title">{w("linked")}</h2>
          <PeopleOf companyId={c.id} />
          <h3>{w("dealsHere")}</h3>
          <DealsTable filter={allOf({ field: "company_id", op: Operator.EQUALS, values: [c.id] })} />
          <p>
            <Link href={`/deals/new?company=${c.id}`}>{w("newDeal")}</Link>
          </p>
        </section>
      </div>
      <RecordActivity objectType={ObjectType.COMPANY} recordId={c.id} name={c.name} dir={dir} session={session} />
      {!c.deleteTime && <RecordChats objectType={ObjectType.COMPANY} recordId={c.id} name={c.name} />}
      <Timeline objectType={ObjectType.COMPANY} recordId={c.id} dir={dir} />
    </article>
  );
}

function PeopleOf({ companyId }: { companyId: string }) {
  const { w } = useWords();
  const people = useQuery(PersonService.method.listPeople, { filter: allOf({ field: "company_ids", op: Operator.EQUALS, values: [companyId] }), orderBy: "last_name, first_name", pageSize: 100 });
  const rows = people.data?.people ?? [];
  return (
    <>
      <h3>{w("peopleHere")}</h3>
      {rows.length === 0 ? (
        <p>{people.isPending ? "…" : w("noLinked")}</p>
      ) : (
        <ul className="linked-list">
          {rows.map((p) => (
            <li key={p.id}>
              <Link href={`/people/${p.id}`}>{personName(p)}</Link>
              {p.companies.find((l) => l.companyId === companyId)?.role ? ` — ${p.companies.find((l) => l.companyId === companyId)!.role}` : ""}
              {p.jobTitle && !p.companies.find((l) => l.companyId === companyId)?.role ? ` — ${p.jobTitle}` : ""}
            </li>
          ))}
        </ul>
      )}
      <p>
        <Link href={`/people/new?company=${companyId}`}>{w("newPerson")}</Link>
      </p>
    </>
  );
}

/** "In the trash since …" on a record that is there. */
export function TrashBanner({ record }: { record: { deleteTime?: Company["deleteTime"]; purgeTime?: Company["purgeTime"] } }) {
  const { w, dateTime } = useWords();
  const del = date(record.deleteTime);
  if (!del) return null;
  const purge = date(record.purgeTime);
  return <p className="trash-banner">{w("inTrash", { when: dateTime(del), purge: purge ? dateTime(purge) : "—" })}</p>;
}

export function Times({ record }: { record: { createTime?: Company["createTime"]; updateTime?: Company["updateTime"] } }) {
  const { w, dateTime } = useWords();
  const created = date(record.createTime);
  const updated = date(record.updateTime);
  return (
    <>
      {created && (
        <div className="detail">
          <span className="detail-label">{w("created")}</span>
          <span className="detail-value">
            <time dateTime={created.toISOString()}>{dateTime(created)}</time>
          </span>
        </div>
      )}
      {updated && (
        <div className="detail">
          <span className="detail-label">{w("updated")}</span>
          <span className="detail-value">
            <time dateTime={updated.toISOString()}>{dateTime(updated)}</time>
          </span>
        </div>
      )}
    </>
  );
}

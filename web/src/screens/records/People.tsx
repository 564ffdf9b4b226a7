/**
 * People: the list (sortable columns, filters, keyset pages, the trash), the create form (e-mails
 * and phones as lists, a company with the person's role there), and a person's page (details
 * edited in place, their companies added and removed, their deals, their timeline).
 */
import { useState, type FormEvent, type ReactNode } from "react";
import { Link, useLocation, useSearch } from "wouter";
import { createConnectQueryKey, createInfiniteQueryOptions, createQueryOptions, useInfiniteQuery, useQuery } from "@connectrpc/connect-query";
import { useQueryClient } from "@tanstack/react-query";
import { create } from "@bufbuild/protobuf";
import { GetPersonResponseSchema, PersonService, type Person, type PersonSchema } from "@crm/gen/crm/records/v1/person_pb";
import { ObjectType, Operator } from "@crm/gen/crm/records/v1/common_pb";
import { isAdmin, transport, type Session } from "../../session";
import { queryClient as pageQueryClient } from "../../query";
import { Field, FormError, LocalInvalid, useRequestId, useSubmit } from "../../forms";
import { allOf, anyContains, orderBy, splitList } from "./format";
import { CompanyLink, LinkedItem, FilterSelect, FilterText, InlineField, ListReadOnlyHint, ReadOnlyMark, Notice, OwnerFilter, ReadOnlyHint, RecordPicker, SortHeader, api, date, permissionsMethod, personName, recordError, splitErrors, timelineOf, useDirectory, useInvalidate, useMayEdit, useSearchState, useSort } from "./common";
import { OwnerSelect, Times, TrashBanner, useFieldSaver, type Patch } from "./Companies";
import { DealsTable } from "./DealsTable";
import { Timeline, prefetchTimeline } from "./Timeline";
import { useLiveList } from "./live";
import { flatRows } from "./live-pages";
import { CustomDetails, CustomFilter, customColumns, customCondition, useFields } from "./custom";
import { ColumnCells, ColumnChooser, ColumnHeaders, ViewBar, visibleColumns, type Column, type ParamMap } from "./views";
import { RecordActivity } from "./activity-lazy";
import { RecordChats } from "./RecordChats";
import { ExportButton } from "./ExportButton";
import { RecordTable } from "./RecordTable";
import { useWords } from "./words";

const defaultSort = { field: "create_time", desc: true };
const paging = { pageParamKey: "pageToken", getNextPageParam: (last: { nextPageToken: string }) => last.nextPageToken || undefined } as const;

export function peopleInput(p: URLSearchParams) {
  const trash = p.get("show") === "trash";
  const sort = p.get("sort") ?? defaultSort.field;
  const desc = p.has("sort") ? p.get("desc") === "1" : defaultSort.desc;
  const filter = allOf(
    anyContains(["first_name", "last_name"], p.get("name") ?? ""),
    anyContains(["emails"], p.get("email") ?? ""),
    anyContains(["job_title"], p.get("job") ?? ""),
    p.get("company") ? { field: "company_ids", op: Operator.EQUALS, values: [p.get("company")!] } : undefined,
    p.get("owner") ? { field: "owner_id", op: Operator.EQUALS, values: [p.get("owner")!] } : undefined,
    customCondition(p),
    trash ? { field: "delete_time", op: Operator.IS_NOT_EMPTY } : undefined,
  );
  // Sorting by name sorts by last name, then first name.
  const order = sort === "last_name" ? `last_name ${desc ? "desc" : "asc"}, first_name ${desc ? "desc" : "asc"}` : orderBy(sort, desc);
  return { filter, orderBy: order, pageSize: 50, pageToken: "", showDeleted: trash };
}

/** The list's parameters (cleared when a view is picked) and how a view's conditions map back to them. */
const personParams = ["name", "email", "job", "company", "owner", "show", "cf", "cop", "cv", "sort", "desc", "cols"];
const personMaps: ParamMap[] = [
  { param: "name", fields: ["first_name", "last_name"], op: Operator.CONTAINS },
  { param: "email", fields: ["emails"], op: Operator.CONTAINS },
  { param: "job", fields: ["job_title"], op: Operator.CONTAINS },
  { param: "company", fields: ["company_ids"], op: Operator.EQUALS },
  { param: "owner", fields: ["owner_id"], op: Operator.EQUALS },
];

export function prefetch(path: string, search: URLSearchParams): void {
  if (path === "/people") void pageQueryClient.prefetchInfiniteQuery(createInfiniteQueryOptions(PersonService.method.listPeople, peopleInput(search), { transport, ...paging }));
  const id = /^\/people\/([0-9a-f-]{36})$/.exec(path)?.[1];
  if (!id) return;
  void pageQueryClient.prefetchQuery(createQueryOptions(PersonService.method.getPerson, { id }, { transport }));
  void pageQueryClient.prefetchQuery(createQueryOptions(permissionsMethod, {}, { transport }));
  prefetchTimeline(ObjectType.PERSON, id);
}

export function PersonList({ session }: { session: Session }) {
  const words = useWords();
  const { w } = words;
  const [params, set] = useSearchState();
  const sort = useSort(params, set, defaultSort);
  const dir = useDirectory(session);
  const trash = params.get("show") === "trash";
  const input = peopleInput(params);
  const fields = useFields(ObjectType.PERSON);
  const columns: Column<Person>[] = [
    { key: "emails", label: w("email"), sort: "emails", cell: (p) => p.emails[0] && <a href={`mailto:${p.emails[0]}`}>{p.emails[0]}</a> },
    { key: "phones", label: w("phone"), sort: "phones", cell: (p) => p.phones[0] && <a href={`tel:${p.phones[0]}`}>{p.phones[0]}</a> },
    { key: "job_title", label: w("jobTitle"), sort: "job_title", cell: (p) => p.jobTitle },
    {
      key: "company_ids",
      label: w("companiesHere"),
      cell: (p) =>
        p.companies.map((l, i) => (
          <span key={l.companyId}>
            {i > 0 && ", "}
            <CompanyLink id={l.companyId} />
          </span>
        )),
    },
    { key: "owner_id", label: w("owner"), sort: "owner_id", cell: (p) => dir.name(p.ownerId) },
    ...customColumns<Person>(fields, dir),
    { key: "create_time", label: w("created"), sort: "create_time", cell: (p) => date(p.createTime) && words.dateTime(date(p.createTime)!) },
  ];
  const cols = visibleColumns(params, columns);
  const list = useInfiniteQuery(PersonService.method.listPeople, input, { ...paging, placeholderData: (prev) => prev, staleTime: 2_000, refetchOnWindowFocus: false });
  // Live: a change made anywhere to a record this list shows (or now would) rereads it.
  useLiveList({ objectType: ObjectType.PERSON, filter: input.filter, showDeleted: input.showDeleted }, PersonService.method.listPeople, input, "people", list.dataUpdatedAt);
  const rows = flatRows(list.data?.pages, "people");
  const may = useMayEdit(session, ObjectType.PERSON);
  const invalidate = useInvalidate();
  const [notice, setNotice] = useState<{ text: string; error?: boolean; action?: ReactNode }>();
  const company = params.get("company");

  const restore = async (p: Person) => {
    try {
      await api.people.undeletePerson({ id: p.id });
      setNotice({ text: w("restored", { name: personName(p) }) });
    } catch (e) {
      setNotice({ text: recordError(e, words, personName(p)), error: true });
    }
    // The list itself follows over WatchRecords (useLiveList): no reread of every page loaded.
    await invalidate(PersonService.method.getPerson, timelineOf);
  };
  const remove = async (p: Person) => {
    try {
      await api.people.deletePerson({ id: p.id, etag: p.etag });
      setNotice({
        text: w("deleted", { name: personName(p) }),
        action: (
          <button type="button" className="secondary small" onClick={() => void restore(p)}>
            {w("restore")}
          </button>
        ),
      });
    } catch (e) {
      setNotice({ text: recordError(e, words, personName(p)), error: true });
    }
    // The list itself follows over WatchRecords (useLiveList): no reread of every page loaded.
    await invalidate(PersonService.method.getPerson, timelineOf);
  };

  return (
    <section aria-labelledby="people-title">
      <div className="list-head">
        <h1 id="people-title">{w("people")}</h1>
        <Link href="/people/new" className="button">
          {w("newPerson")}
        </Link>
        <Link href="/people/import" className="button secondary">
          {w("importCsv")}
        </Link>
        <ExportButton fileName="people" request={{ objectType: ObjectType.PERSON, filter: input.filter, orderBy: input.orderBy, showDeleted: input.showDeleted, columns: ["first_name", "last_name", ...cols.map((c) => c.key)] }} />
      </div>
      <form role="search" aria-label={w("filters")} className="filters" onSubmit={(e) => e.preventDefault()}>
        <FilterText label={w("nameContains")} value={params.get("name") ?? ""} onChange={(v) => set({ name: v })} />
        <FilterText label={w("emailContains")} value={params.get("email") ?? ""} onChange={(v) => set({ email: v })} />
        <FilterText label={w("jobContains")} value={params.get("job") ?? ""} onChange={(v) => set({ job: v })} />
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
        {company && (
          <p className="chip">
            {w("company")}: <CompanyLink id={company} />{" "}
            <button type="button" className="secondary small" onClick={() => set({ company: undefined })} aria-label={w("removeOf", { name: w("company") })}>
              ×
            </button>
          </p>
        )}
      </form>
      <ViewBar objectType={ObjectType.PERSON} session={session} params={params} set={set} stateParams={personParams} maps={personMaps} request={input} columns={cols.map((c) => c.key)} />
      <Notice notice={notice} />
      <ListReadOnlyHint show={rows.some((r) => !may.change(r))} />
      <RecordTable
        labelledBy="people-title"
        list={list}
        rows={rows}
        rowKey={(p) => p.id}
        colSpan={2 + cols.length}
        head={
          <>
            <SortHeader label={w("name")} field="last_name" sort={sort} />
            <ColumnHeaders cols={cols} sort={sort} />
            <th scope="col">{w("actions")}</th>
          </>
        }
        empty={w(trash ? "trashEmpty" : "noPeople")}
      >
        {(p) => (
          <>
            <th scope="row">
              <Link href={`/people/${p.id}`}>{personName(p)}</Link>
            </th>
            <ColumnCells cols={cols} row={p} />
            <td>
              {!may.change(p) ? (
                <ReadOnlyMark />
              ) : p.deleteTime ? (
                <button type="button" className="secondary small" onClick={() => void restore(p)} aria-label={w("restoreOf", { name: personName(p) })}>
                  {w("restore")}
                </button>
              ) : (
                <button type="button" className="secondary small danger" onClick={() => void remove(p)} aria-label={w("deleteOf", { name: personName(p) })}>
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

const personFields = ["firstName", "lastName", "emails", "phones", "jobTitle", "companies", "ownerId"];

export function NewPerson({ session }: { session: Session }) {
  const words = useWords();
  const { w } = words;
  const dir = useDirectory(session);
  const [, navigate] = useLocation();
  const search = new URLSearchParams(useSearch());
  const invalidate = useInvalidate();
  const [v, setV] = useState({ firstName: "", lastName: "", emails: "", phones: "", jobTitle: "", companyId: search.get("company") ?? "", role: "", ownerId: "" });
  const change = (k: keyof typeof v) => (x: string) => setV({ ...v, [k]: x });
  const requestId = useRequestId();
  const submit = useSubmit(async () => {
    try {
      const r = await api.people.createPerson({
        requestId: requestId.current,
        person: {
          firstName: v.firstName.trim(),
          lastName: v.lastName.trim(),
          emails: splitList(v.emails),
          phones: splitList(v.phones),
          jobTitle: v.jobTitle.trim(),
          companies: v.companyId ? [{ companyId: v.companyId, role: v.role.trim() }] : [],
          ownerId: v.ownerId,
        },
      });
      await invalidate(PersonService.method.listPeople);
      navigate(`/people/${r.person!.id}`);
    } catch (e) {
      const split = splitErrors(e, words, "person", personFields, [v.firstName, v.lastName].join(" "));
      throw new LocalInvalid(split.fields, split.form);
    }
  });
  const err = submit.fieldError;
  return (
    <section aria-labelledby="new-person-title" className="record-form">
      <h1 id="new-person-title">{w("newPerson")}</h1>
      <form onSubmit={submit.onSubmit} noValidate>
        <Field label={w("firstName")} name="firstName" autoComplete="off" required={false} value={v.firstName} onChange={change("firstName")} error={err.firstName} />
        <Field label={w("lastName")} name="lastName" autoComplete="off" required={false} value={v.lastName} onChange={change("lastName")} error={err.lastName} />
        <Field label={w("emails")} hint={w("emailsHint")} name="emails" autoComplete="off" required={false} value={v.emails} onChange={change("emails")} error={err.emails} />
        <Field label={w("phones")} hint={w("phonesHint")} name="phones" autoComplete="off" required={false} value={v.phones} onChange={change("phones")} error={err.phones} />
        <Field label={w("jobTitle")} name="jobTitle" autoComplete="off" required={false} value={v.jobTitle} onChange={change("jobTitle")} error={err.jobTitle} />
        <RecordPicker kind="company" label={w("company")} value={v.companyId} onChange={change("companyId")} error={err.companies} />
        {v.companyId && <Field label={w("companyRole")} hint={w("companyRoleHint")} name="role" autoComplete="off" required={false} value={v.role} onChange={change("role")} />}
        {isAdmin(session) && <OwnerSelect dir={dir} value={v.ownerId} onChange={change("ownerId")} error={err.ownerId} />}
        <FormError text={submit.error} />
        <div className="form-buttons">
          <button type="submit" disabled={submit.busy}>
            {w("createPerson")}
          </button>
          <Link href="/people" className="button secondary">
            {w("cancel")}
          </Link>
        </div>
      </form>
    </section>
  );
}

export function PersonPage({ id, session }: { id: string; session: Session }) {
  const words = useWords();
  const { w, t } = words;
  const dir = useDirectory(session);
  const queryClient = useQueryClient();
  const invalidate = useInvalidate();
  const q = useQuery(PersonService.method.getPerson, { id }, { staleTime: 2_000 });
  const may = useMayEdit(session, ObjectType.PERSON);
  const p = q.data?.person;
  const [notice, setNotice] = useState<{ text: string; error?: boolean }>();
  const key = createConnectQueryKey({ schema: PersonService.method.getPerson, input: { id }, transport, cardinality: "finite" });
  const saver = useFieldSaver<Person>(
    () => q.refetch(),
    (person) => queryClient.setQueryData(key, create(GetPersonResponseSchema, { person })),
    () => invalidate(PersonService.method.listPeople, timelineOf),
  );
  if (q.isPending) return <p aria-busy="true">{t("app.loading")}</p>;
  if (!p)
    return (
      <p role="alert" className="error">
        {recordError(q.error, words, "")}
      </p>
    );
  const name = personName(p);
  const canEdit = may.edit(p);
  const errorsOf = (e: unknown) => splitErrors(e, words, "person", personFields, name);
  const save = (mask: string, patch: Patch<typeof PersonSchema>) => saver(async () => (await api.people.updatePerson({ person: { ...patch, id: p.id, etag: p.etag }, updateMask: { paths: [mask] } })).person);
  const text = (field: "firstName" | "lastName" | "jobTitle", mask: string, label: string) => (
    <InlineField label={label} field={field} display={p[field] || w("empty")} initial={p[field]} editor={{ kind: "text", maxLength: field === "jobTitle" ? 200 : 100 }} canEdit={canEdit} errorsOf={errorsOf} save={(v) => save(mask, { [field]: v.trim() })} />
  );
  const list = (field: "emails" | "phones", label: string, hint: string, href: string) => (
    <InlineField
      label={label}
      field={field}
      display={
        p[field].length
          ? p[field].map((x, i) => (
              <span key={x}>
                {i > 0 && ", "}
                <a href={`${href}${x}`}>{x}</a>
              </span>
            ))
          : w("empty")
      }
      initial={p[field].join(", ")}
      editor={{ kind: "text", hint }}
      canEdit={canEdit}
      errorsOf={errorsOf}
      save={(v) => save(field, { [field]: splitList(v) })}
    />
  );
  const setCompanies = (companies: Person["companies"]) => save("companies", { companies: companies.map((l) => ({ companyId: l.companyId, role: l.role })) });
  const trashToggle = async () => {
    try {
      if (p.deleteTime) {
        await api.people.undeletePerson({ id });
        setNotice({ text: w("restored", { name }) });
      } else {
        await api.people.deletePerson({ id, etag: p.etag });
        setNotice({ text: w("deleted", { name }) });
      }
    } catch (e) {
      setNotice({ text: recordError(e, words, name), error: true });
    }
    await q.refetch();
    await invalidate(PersonService.method.listPeople, timelineOf);
  };
  return (
    <article aria-labelledby="record-title" className="record">
      <div className="list-head">
        <h1 id="record-title">{name}</h1>
        <Link href="/people">{w("people")}</Link>
      </div>
      <TrashBanner record={p} />
      <Notice notice={notice} />
      <ReadOnlyHint show={!p.deleteTime && !canEdit} />
      <div className="record-grid">
        <section aria-labelledby="details-title" className="details">
          <h2 id="details-title">{w("details")}</h2>
          {text("firstName", "first_name", w("firstName"))}
          {text("lastName", "last_name", w("lastName"))}
          {list("emails", w("emails"), w("emailsHint"), "mailto:")}
          {list("phones", w("phones"), w("phonesHint"), "tel:")}
          {text("jobTitle", "job_title", w("jobTitle"))}
          <InlineField
            label={w("owner")}
            field="ownerId"
            display={dir.name(p.ownerId)}
            initial={p.ownerId}
            editor={{ kind: "select", options: dir.users.map((u) => ({ value: u.id, label: u.name })) }}
            canEdit={canEdit && isAdmin(session) && dir.users.length > 0}
            errorsOf={errorsOf}
            save={(v) => save("owner_id", { ownerId: v })}
          />
          <CustomDetails objectType={ObjectType.PERSON} prefix="person" custom={p.custom} dir={dir} canEdit={canEdit} errorsOf={errorsOf} save={(key, value) => save(`custom.${key}`, { custom: { [key]: value } })} />
          <Times record={p} />
          {may.change(p) && (
            <button type="button" className={p.deleteTime ? "secondary" : "secondary danger"} onClick={() => void trashToggle()}>
              {p.deleteTime ? w("restore") : w("delete")}
            </button>
          )}
        </section>
        <section aria-labelledby="linked-title" className="linked">
          <h2 id="linked-title">{w("linked")}</h2>
          <h3>{w("companiesHere")}</h3>
          <CompanyLinks person={p} canEdit={canEdit} onChange={setCompanies} errorsOf={errorsOf} />
          <h3>{w("dealsHere")}</h3>
          <DealsTable filter={allOf({ field: "person_ids", op: Operator.EQUALS, values: [p.id] })} />
          <p>
            <Link href={`/deals/new?person=${p.id}${p.companies[0] ? `&company=${p.companies[0].companyId}` : ""}`}>{w("newDeal")}</Link>
          </p>
        </section>
      </div>
      <RecordActivity objectType={ObjectType.PERSON} recordId={p.id} name={name} dir={dir} session={session} />
      {!p.deleteTime && <RecordChats objectType={ObjectType.PERSON} recordId={p.id} name={name} />}
      <Timeline objectType={ObjectType.PERSON} recordId={p.id} dir={dir} />
    </article>
  );
}

/** A person's companies: each with the role and a Remove button, and a form to add one (the list is saved whole). */
function CompanyLinks({ person, canEdit, onChange, errorsOf }: { person: Person; canEdit: boolean; onChange(c: Person["companies"]): Promise<void>; errorsOf(e: unknown): { form?: string; fields: Record<string, string> } }) {
  const { w } = useWords();
  const [companyId, setCompanyId] = useState("");
  const [role, setRole] = useState("");
  const [error, setError] = useState<{ form?: string; field?: string }>();
  const [busy, setBusy] = useState(false);
  const run = async (next: Person["companies"]) => {
    setBusy(true);
    setError(undefined);
    try {
      await onChange(next);
      setCompanyId("");
      setRole("");
    } catch (e) {
      const r = errorsOf(e);
      setError({ field: r.fields.companies, form: r.fields.companies ? undefined : r.form });
    } finally {
      setBusy(false);
    }
  };
  const add = (e: FormEvent) => {
    e.preventDefault();
    if (!companyId) return;
    void run([...person.companies.filter((l) => l.companyId !== companyId), { companyId, role: role.trim() } as Person["companies"][number]]);
  };
  return (
    <>
      {person.companies.length === 0 ? (
        <p>{w("noLinked")}</p>
      ) : (
        <ul className="linked-list">
          {person.companies.map((l) => (
            <LinkedItem key={l.companyId} kind="company" id={l.companyId} note={l.role} onRemove={canEdit ? () => void run(person.companies.filter((x) => x.companyId !== l.companyId)) : undefined} busy={busy} />
          ))}
        </ul>
      )}
      {canEdit && (
        <form className="add-link" onSubmit={add}>
          <RecordPicker kind="company" label={w("company")} value={companyId} onChange={setCompanyId} error={error?.field} />
          <Field label={w("companyRole")} name="role" autoComplete="off" required={false} value={role} onChange={setRole} />
          <button type="submit" disabled={busy || !companyId}>
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

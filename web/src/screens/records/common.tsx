/**
 * What the records screens share: API clients, the directory of users (owner names), the URL's
 * search parameters as screen state, sortable column headers, "load more" with infinite scroll,
 * an inline-editable detail row with its server error beside it, record pickers, and names of
 * linked records.
 */
import { useEffect, useId, useRef, useState, type FormEvent, type ReactNode } from "react";
import { Link, useLocation, useSearch } from "wouter";
import { useQuery, createConnectQueryKey } from "@connectrpc/connect-query";
import { useQueryClient } from "@tanstack/react-query";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import type { DescMethodUnary } from "@bufbuild/protobuf";
import { AdminService, UserStatus } from "@crm/gen/crm/admin/v1/admin_pb";
import { CompanyService } from "@crm/gen/crm/records/v1/company_pb";
import { PersonService, type Person } from "@crm/gen/crm/records/v1/person_pb";
import { DealService, DealStatus } from "@crm/gen/crm/records/v1/deal_pb";
import { PipelineService } from "@crm/gen/crm/records/v1/pipeline_pb";
import { TimelineService } from "@crm/gen/crm/records/v1/timeline_pb";
import { ObjectType, Operator } from "@crm/gen/crm/records/v1/common_pb";
import { PermissionService } from "@crm/gen/crm/records/v1/permission_pb";
import { isAdmin, transport, type Session } from "../../session";
import { describeError, fieldErrors } from "../../errors";
import { allOf, anyContains, violationField } from "./format";
import { useWords, type RecordWord, type Words } from "./words";
import "./records.css";

export const api = {
  companies: createClient(CompanyService, transport),
  people: createClient(PersonService, transport),
  deals: createClient(DealService, transport),
  pipelines: createClient(PipelineService, transport),
};

/** Every cached query of these methods (any input, list or page) is refetched. */
export function useInvalidate() {
  const queryClient = useQueryClient();
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  return (...methods: DescMethodUnary<any, any>[]) => Promise.all(methods.map((schema) => queryClient.invalidateQueries({ queryKey: createConnectQueryKey({ schema, cardinality: undefined }) })));
}

export const timelineOf = TimelineService.method.listTimeline;

export function personName(p: Pick<Person, "firstName" | "lastName">): string {
  return [p.firstName, p.lastName].filter(Boolean).join(" ");
}

export const date = (t: Timestamp | undefined) => (t ? timestampDate(t) : undefined);

/** The user directory for owner and assignee names and the pickers: AdminService.ListMembers, which every member may read (names and roles, no contact details). */
export function useDirectory(session: Session) {
  const { w } = useWords();
  const users = useQuery(AdminService.method.listMembers, { pageSize: 500 }, { staleTime: 60_000 });
  const all = (users.data?.members ?? []).map((u) => ({ id: u.userId, name: u.name, active: u.status === UserStatus.ACTIVE }));
  // Pickers offer active members; names are shown for everyone (a record may belong to someone who left).
  const list = all.filter((u) => u.active);
  return {
    me: session.userId,
    users: list,
    name(id: string): string {
      if (!id) return w("empty");
      if (id === session.userId) return w("you");
      return all.find((u) => u.id === id)?.name ?? w("someone");
    },
  };
}
export type Directory = ReturnType<typeof useDirectory>;

/** The grants' query (GetRecordPermissions, which every member may read); record pages prefetch it with the record. */
export const permissionsMethod = PermissionService.method.getRecordPermissions;

/**
 * What the caller may change on records of one type, as the server's row-level security decides
 * it (this only hides what it would refuse): owners and admins everything; members what they own
 * or are assigned, or every record of a type an owner or admin allowed (PermissionService). The
 * assignee is set by the record's owner, owners and admins, and by members where the type is
 * allowed: an assignee may not hand the record on.
 */
export function useMayEdit(session: Session, objectType: ObjectType) {
  const grants = useQuery(permissionsMethod, {}, { staleTime: 30_000 });
  const all = isAdmin(session) || (grants.data?.membersEditAll ?? []).includes(objectType);
  type Rec = { ownerId: string; assigneeId?: string; deleteTime?: Timestamp | undefined };
  return {
    /** Every member may change every record of the type (by an admin's grant or being one). */
    all,
    edit: (r: Rec) => !r.deleteTime && (all || r.ownerId === session.userId || (Boolean(r.assigneeId) && r.assigneeId === session.userId)),
    /** May move it to the trash and back, or move a deal on the board (the same rule, in the trash too). */
    change: (r: Rec) => all || r.ownerId === session.userId || (Boolean(r.assigneeId) && r.assigneeId === session.userId),
    assign: (r: Rec) => !r.deleteTime && (all || r.ownerId === session.userId),
  };
}

/** The members to pick as a record's assignee: nobody, then the active members by name. */
export function assigneeOptions(dir: Directory, words: Words) {
  return [{ value: "", label: words.w("nobody") }, ...dir.users.map((u) => ({ value: u.id, label: u.id === dir.me ? `${u.name} (${words.w("you")})` : u.name }))];
}

/** Said on a record page the caller may read but not change. */
export function ReadOnlyHint({ show }: { show: boolean }) {
  const { w } = useWords();
  if (!show) return null;
  return <p className="hint read-only">{w("readOnly")}</p>;
}

/** In a list row or a card the caller may not change: "Read only", the reason in its title (and in `ListReadOnlyHint`). */
export function ReadOnlyMark() {
  const { w } = useWords();
  return (
    <span className="hint read-only-mark" title={w("readOnly")}>
      {w("readOnlyShort")}
    </span>
  );
}

/** Under a list or board heading when some of its records are read-only for the caller: why. */
export function ListReadOnlyHint({ show, board = false }: { show: boolean; board?: boolean }) {
  const { w } = useWords();
  if (!show) return null;
  return <p className="hint read-only">{w(board ? "boardReadOnly" : "listReadOnly")}</p>;
}

/** The URL's search parameters as the screen's state (filters, sort): a reload or a shared link shows the same list. */
export function useSearchState(): [URLSearchParams, (changes: Record<string, string | undefined>) => void] {
  const search = useSearch();
  const [path, navigate] = useLocation();
  const params = new URLSearchParams(search);
  const set = (changes: Record<string, string | undefined>) => {
    const next = new URLSearchParams(window.location.search);
    for (const [k, v] of Object.entries(changes)) {
      if (v) next.set(k, v);
      else next.delete(k);
    }
    const qs = next.toString();
    navigate(qs ? `${path}?${qs}` : path, { replace: true });
  };
  return [params, set];
}

/** A text input whose value reaches `onChange` 300 ms after the last key (one request per pause, not per key). */
export function FilterText({ label, value, onChange, type = "search" }: { label: string; value: string; onChange(v: string): void; type?: string }) {
  const id = useId();
  const [text, setText] = useState(value);
  const last = useRef(value);
  useEffect(() => {
    if (value !== last.current) setText(value);
  }, [value]);
  useEffect(() => {
    if (text === last.current) return;
    const t = setTimeout(() => {
      last.current = text;
      onChange(text);
    }, 300);
    return () => clearTimeout(t);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [text]);
  return (
    <div className="field">
      <label htmlFor={id}>{label}</label>
      <input id={id} type={type} value={text} onChange={(e) => setText(e.target.value)} />
    </div>
  );
}

export function FilterSelect({ label, value, onChange, options }: { label: string; value: string; onChange(v: string): void; options: { value: string; label: string }[] }) {
  const id = useId();
  return (
    <div className="field">
      <label htmlFor={id}>{label}</label>
      <select id={id} value={value} onChange={(e) => onChange(e.target.value)}>
        {options.map((o) => (
          <option key={o.value} value={o.value}>
            {o.label}
          </option>
        ))}
      </select>
    </div>
  );
}

/** The owner filter: anyone, me, or (for owners and admins, who see the directory) any user. */
export function OwnerFilter({ dir, value, onChange }: { dir: Directory; value: string; onChange(v: string): void }) {
  const { w } = useWords();
  const options = [{ value: "", label: w("anyone") }, { value: dir.me, label: w("me") }, ...dir.users.filter((u) => u.id !== dir.me).map((u) => ({ value: u.id, label: u.name }))];
  return <FilterSelect label={w("owner")} value={value} onChange={onChange} options={options} />;
}

/** The sort state in the URL: `sort=field` and `desc=1`. */
export function useSort(params: URLSearchParams, set: (c: Record<string, string | undefined>) => void, fallback: { field: string; desc: boolean }) {
  const field = params.get("sort") ?? fallback.field;
  const desc = params.has("sort") ? params.get("desc") === "1" : fallback.desc;
  return {
    field,
    desc,
    toggle(f: string) {
      set({ sort: f, desc: f === field ? (desc ? undefined : "1") : undefined });
    },
  };
}

/** A column header that sorts by its field on click (aria-sort tells which way). */
export function SortHeader({ label, field, sort }: { label: string; field: string; sort: ReturnType<typeof useSort> }) {
  const { w } = useWords();
  const active = sort.field === field;
  return (
    <th scope="col" aria-sort={active ? (sort.desc ? "descending" : "ascending") : "none"}>
      <button type="button" className="sort" onClick={() => sort.toggle(field)} title={w("sortBy", { column: label })}>
        {label}
        <span aria-hidden="true" className="sort-mark">
          {active ? (sort.desc ? " ▼" : " ▲") : " ↕"}
        </span>
      </button>
    </th>
  );
}

/** "Load more" for keyset pages; the next page also loads by itself when the button scrolls into view. */
export function LoadMore({ hasNext, busy, onMore, label }: { hasNext: boolean; busy: boolean; onMore(): void; label: string }) {
  const ref = useRef<HTMLButtonElement>(null);
  const more = useRef(onMore);
  more.current = onMore;
  useEffect(() => {
    const el = ref.current;
    if (!el || !hasNext || busy || typeof IntersectionObserver !== "function") return;
    const io = new IntersectionObserver((entries) => {
      if (entries.some((e) => e.isIntersecting)) more.current();
    });
    io.observe(el);
    return () => io.disconnect();
  }, [hasNext, busy]);
  if (!hasNext) return null;
  return (
    <button ref={ref} type="button" className="secondary more" onClick={onMore} disabled={busy} aria-busy={busy || undefined}>
      {label}
    </button>
  );
}

/** "12 of 40" / "50 of about 1,200" under a list. */
export function Count({ shown, total, exact }: { shown: number; total: bigint | undefined; exact: boolean }) {
  const { w, number } = useWords();
  if (total === undefined) return null;
  return <p className="hint count">{w(exact ? "shown" : "shownAbout", { shown: number(shown), total: number(total) })}</p>;
}

/** What to tell about a failed call on a record: a stale etag in the screen's words, else as everywhere. */
export function recordError(e: unknown, words: Words, name: string): string {
  const err = ConnectError.from(e);
  if (err.code === Code.Aborted) return words.w("stale", { name });
  if (err.code === Code.NotFound) return words.w("notFound");
  return describeError(e, words.i18n);
}

/**
 * A form's server errors split for display: violations of the fields the form shows go beside
 * them (by the request's field, "person.emails[1]" → "emails"), the rest into the form's line.
 */
export function splitErrors(e: unknown, words: Words, prefix: string, shown: string[], name = ""): { form?: string; fields: Record<string, string> } {
  const fields: Record<string, string> = {};
  const rest: string[] = [];
  for (const [server, text] of Object.entries(fieldErrors(e))) {
    const f = violationField(server, prefix);
    if (shown.includes(f)) fields[f] = fields[f] ? `${fields[f]}; ${text}` : text;
    else rest.push(`${server}: ${text}`);
  }
  if (Object.keys(fields).length === 0) return { form: recordError(e, words, name), fields };
  return { form: rest.length ? rest.join("; ") : words.t("form.fixFields"), fields };
}

/** The console's one notice line, used by every records screen. */
export { Notice } from "../../forms";

export type Editor =
  | { kind: "text"; type?: string; maxLength?: number; hint?: string }
  | { kind: "textarea"; maxLength?: number; hint?: string }
  | { kind: "select"; options: { value: string; label: string }[] }
  | { kind: "picker"; pick: "company" | "person" };

/**
 * A detail row of a record page: label, value, and an "Edit" button that turns it into a field
 * with Save and Cancel. `save` sends that one field (update_mask + the etag read); a server
 * violation of the field is shown beside it, any other failure (a stale etag) in the row's alert.
 */
export function InlineField(props: {
  label: string;
  field: string;
  display: ReactNode;
  initial: string;
  editor: Editor;
  canEdit: boolean;
  save(value: string): Promise<void>;
  errorsOf(e: unknown): { form?: string; fields: Record<string, string> };
}) {
  const { w } = useWords();
  const id = useId();
  const [editing, setEditing] = useState(false);
  const [value, setValue] = useState(props.initial);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<{ form?: string; field?: string }>();
  const [status, setStatus] = useState<string>();
  const input = useRef<HTMLInputElement & HTMLTextAreaElement & HTMLSelectElement>(null);
  const editButton = useRef<HTMLButtonElement>(null);
  const begin = () => {
    setValue(props.initial);
    setError(undefined);
    setStatus(undefined);
    setEditing(true);
  };
  useEffect(() => {
    if (editing) input.current?.focus();
  }, [editing]);
  const stop = () => {
    setEditing(false);
    setTimeout(() => editButton.current?.focus(), 0);
  };
  const onSubmit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      await props.save(value);
      setStatus(w("saved", { field: props.label }));
      stop();
    } catch (err) {
      const r = props.errorsOf(err);
      const field = r.fields[props.field];
      setError({ form: field ? undefined : r.form, field });
      setTimeout(() => input.current?.focus(), 0);
    } finally {
      setBusy(false);
    }
  };
  const ed = props.editor;
  const described = [(ed.kind === "text" || ed.kind === "textarea") && ed.hint ? `${id}-hint` : "", error?.field ? `${id}-error` : ""].filter(Boolean).join(" ") || undefined;
  return (
    <div className="detail" data-field={props.field}>
      {editing && ed.kind === "picker" ? (
        <form className="inline-edit" onSubmit={(e) => void onSubmit(e)} onKeyDown={(e) => e.key === "Escape" && stop()}>
          <RecordPicker kind={ed.pick} label={props.label} value={value} onChange={setValue} error={error?.field} />
          <span className="inline-edit-buttons">
            <button type="submit" disabled={busy} aria-label={w("saveOf", { field: props.label })}>
              {w("save")}
            </button>
            <button type="button" className="secondary" onClick={stop}>
              {w("cancel")}
            </button>
          </span>
        </form>
      ) : editing && ed.kind !== "picker" ? (
        <form className="inline-edit" onSubmit={(e) => void onSubmit(e)} onKeyDown={(e) => e.key === "Escape" && stop()}>
          <label htmlFor={id} className="detail-label">
            {props.label}
          </label>
          <div className="inline-edit-field">
            {ed.kind === "select" ? (
              <select id={id} ref={input} value={value} onChange={(e) => setValue(e.target.value)} aria-invalid={error?.field ? true : undefined} aria-describedby={described}>
                {ed.options.map((o) => (
                  <option key={o.value} value={o.value}>
                    {o.label}
                  </option>
                ))}
              </select>
            ) : ed.kind === "textarea" ? (
              <textarea id={id} ref={input} rows={3} maxLength={ed.maxLength} value={value} onChange={(e) => setValue(e.target.value)} aria-invalid={error?.field ? true : undefined} aria-describedby={described} />
            ) : (
              <input id={id} ref={input} type={ed.type ?? "text"} maxLength={ed.maxLength} value={value} onChange={(e) => setValue(e.target.value)} aria-invalid={error?.field ? true : undefined} aria-describedby={described} />
            )}
            {(ed.kind === "text" || ed.kind === "textarea") && ed.hint && (
              <small id={`${id}-hint`} className="hint">
                {ed.hint}
              </small>
            )}
            {error?.field && (
              <small id={`${id}-error`} className="field-error">
                {error.field}
              </small>
            )}
            <span className="inline-edit-buttons">
              <button type="submit" disabled={busy} aria-label={w("saveOf", { field: props.label })}>
                {w("save")}
              </button>
              <button type="button" className="secondary" onClick={stop}>
                {w("cancel")}
              </button>
            </span>
          </div>
        </form>
      ) : (
        <>
          <span className="detail-label">{props.label}</span>
          <span className="detail-value">{props.display}</span>
          {props.canEdit && (
            <button ref={editButton} type="button" className="secondary small" onClick={begin} aria-label={w("editOf", { field: props.label })}>
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
      {status && !editing && (
        <span role="status" className="visually-hidden">
          {status}
        </span>
      )}
    </div>
  );
}

/** A company's name by id (read once, cached across the page). */
export function useCompanyName(id: string): string {
  const q = useQuery(CompanyService.method.getCompany, { id }, { enabled: Boolean(id), staleTime: 60_000, retry: false });
  return q.data?.company?.name ?? id.slice(0, 8);
}

export function usePersonName(id: string): string {
  const q = useQuery(PersonService.method.getPerson, { id }, { enabled: Boolean(id), staleTime: 60_000, retry: false });
  return q.data?.person ? personName(q.data.person) : id.slice(0, 8);
}

/** A company's name as a link to its page. */
export function CompanyLink({ id }: { id: string }) {
  const name = useCompanyName(id);
  if (!id) return <>{"—"}</>;
  return <Link href={`/companies/${id}`}>{name}</Link>;
}

export function PersonLink({ id }: { id: string }) {
  const name = usePersonName(id);
  return <Link href={`/people/${id}`}>{name}</Link>;
}

export function DealLink({ id }: { id: string }) {
  const q = useQuery(DealService.method.getDeal, { id }, { enabled: Boolean(id), staleTime: 60_000, retry: false });
  return <Link href={`/deals/${id}`}>{q.data?.deal?.name ?? id.slice(0, 8)}</Link>;
}

export const statusWord: Record<number, RecordWord> = { [DealStatus.OPEN]: "status.open", [DealStatus.WON]: "status.won", [DealStatus.LOST]: "status.lost" };

/**
 * Picks one company or person: a search box and a select of the first 20 matches (by name), the
 * current choice kept among them. `value` is the id ("" for none).
 */
export function RecordPicker({ kind, label, value, onChange, error, hint }: { kind: "company" | "person"; label: string; value: string; onChange(id: string): void; error?: string | undefined; hint?: string }) {
  const { w } = useWords();
  const id = useId();
  const [text, setText] = useState("");
  const [query, setQuery] = useState("");
  useEffect(() => {
    const t = setTimeout(() => setQuery(text.trim()), 300);
    return () => clearTimeout(t);
  }, [text]);
  const companies = useQuery(CompanyService.method.listCompanies, { filter: allOf(anyContains(["name", "domain"], query)), orderBy: "name", pageSize: 20 }, { enabled: kind === "company", placeholderData: (p) => p });
  const people = useQuery(PersonService.method.listPeople, { filter: allOf(anyContains(["first_name", "last_name", "emails"], query)), orderBy: "last_name, first_name", pageSize: 20 }, { enabled: kind === "person", placeholderData: (p) => p });
  const options =
    kind === "company"
      ? (companies.data?.companies ?? []).map((c) => ({ value: c.id, label: c.domain ? `${c.name} (${c.domain})` : c.name }))
      : (people.data?.people ?? []).map((p) => ({ value: p.id, label: p.emails[0] ? `${personName(p)} <${p.emails[0]}>` : personName(p) }));
  const current = useQuery(CompanyService.method.getCompany, { id: value }, { enabled: kind === "company" && Boolean(value) && !options.some((o) => o.value === value), staleTime: 60_000 });
  const currentPerson = useQuery(PersonService.method.getPerson, { id: value }, { enabled: kind === "person" && Boolean(value) && !options.some((o) => o.value === value), staleTime: 60_000 });
  if (value && !options.some((o) => o.value === value)) {
    const c = current.data?.company;
    const p = currentPerson.data?.person;
    options.unshift({ value, label: c ? c.name : p ? personName(p) : value });
  }
  const described = [hint ? `${id}-hint` : "", error ? `${id}-error` : ""].filter(Boolean).join(" ") || undefined;
  return (
    <fieldset className="picker">
      <legend>{label}</legend>
      <label htmlFor={`${id}-q`} className="visually-hidden">
        {w("search", { what: w(kind === "company" ? "searchCompanies" : "searchPeople") })}
      </label>
      <input id={`${id}-q`} type="search" value={text} onChange={(e) => setText(e.target.value)} placeholder={w("search", { what: w(kind === "company" ? "searchCompanies" : "searchPeople") })} />
      <select id={id} aria-label={label} value={value} onChange={(e) => onChange(e.target.value)} aria-invalid={error ? true : undefined} aria-describedby={described}>
        <option value="">{w("none")}</option>
        {options.map((o) => (
          <option key={o.value} value={o.value}>
            {o.label}
          </option>
        ))}
      </select>
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
    </fieldset>
  );
}

export { ObjectType, Operator };

/** Every pipeline of the tenant with its stages (one call; the board, forms and names share it). */
export const pipelinesInput = { pageSize: 500 };

export function usePipelines() {
  const q = useQuery(PipelineService.method.listPipelines, pipelinesInput, { staleTime: 30_000 });
  const pipelines = q.data?.pipelines ?? [];
  const stages = new Map(pipelines.flatMap((p) => p.stages.map((s) => [s.id, { stage: s, pipeline: p }] as const)));
  return { q, pipelines, stages };
}

/** A linked company or person in a record page's list, with its note (a role) and a Remove button when the record may change. */
export function LinkedItem({ kind, id, note, onRemove, busy }: { kind: "company" | "person"; id: string; note?: string; onRemove: (() => void) | undefined; busy: boolean }) {
  const { w } = useWords();
  const company = useCompanyName(kind === "company" ? id : "");
  const person = usePersonName(kind === "person" ? id : "");
  const name = kind === "company" ? company : person;
  return (
    <li>
      <Link href={`/${kind === "company" ? "companies" : "people"}/${id}`}>{name}</Link>
      {note ? ` — ${note}` : ""}{" "}
      {onRemove && (
        <button type="button" className="secondary small" disabled={busy} onClick={onRemove} aria-label={w("removeOf", { name })}>
          {w("remove")}
        </button>
      )}
    </li>
  );
}

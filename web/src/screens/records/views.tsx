/**
 * Saved views (ViewService) on the companies and people lists, and the lists' column chooser.
 * A list's state is its address (filters, sort, `cols`); saving a view stores the List request
 * that state makes (filter tree, order_by, show_deleted) and the visible columns; picking a view
 * turns its filter back into the address's parameters, so it shows, edits and reloads like any
 * other list. Shared views are everyone's (made and changed by owners and admins); personal ones
 * their owner's alone. The server checks every view against the object's fields.
 */
import { useId, useState, type FormEvent, type ReactNode } from "react";
import { useQuery } from "@connectrpc/connect-query";
import { createClient } from "@connectrpc/connect";
import { ViewService, type View } from "@crm/gen/crm/records/v1/view_pb";
import { Operator, type Filter, type ObjectType } from "@crm/gen/crm/records/v1/common_pb";
import { isAdmin, transport, type Session } from "../../session";
import { Notice, SortHeader, recordError, useInvalidate, type useSort } from "./common";
import { useWords } from "./words";

const views = createClient(ViewService, transport);

/** A list's column: its field (the view's column name), header, sort field, and cell. */
export interface Column<R> {
  key: string;
  label: string;
  sort?: string | undefined;
  num?: boolean;
  cell(r: R): ReactNode;
}

/** The visible columns: the address's `cols` (in the list's order), or all. */
export function visibleColumns<R>(params: URLSearchParams, all: Column<R>[]): Column<R>[] {
  const cols = params.get("cols");
  if (cols === null) return all;
  const want = new Set(cols.split(","));
  return all.filter((c) => want.has(c.key));
}

/** "Columns": a checkbox per column, in a disclosure. */
export function ColumnChooser<R>({ all, visible, onChange }: { all: Column<R>[]; visible: Column<R>[]; onChange(keys: string[] | undefined): void }) {
  const { w } = useWords();
  const shown = new Set(visible.map((c) => c.key));
  const toggle = (key: string) => {
    const next = all.filter((c) => (c.key === key ? !shown.has(key) : shown.has(c.key))).map((c) => c.key);
    onChange(next.length === all.length ? undefined : next);
  };
  return (
    <details className="columns">
      <summary>{w("columns")}</summary>
      <fieldset>
        <legend className="visually-hidden">{w("columns")}</legend>
        {all.map((c) => (
          <label key={c.key} className="inline-label">
            <input type="checkbox" checked={shown.has(c.key)} onChange={() => toggle(c.key)} aria-label={w("columnNamed", { name: c.label })} />
            {c.label}
          </label>
        ))}
      </fieldset>
    </details>
  );
}

/** How a screen's filter parameter maps to a condition: `fields` (several: an or of "contains"), the operator. */
export interface ParamMap {
  param: string;
  fields: string[];
  op: Operator;
}

type Node = Filter["node"];

/**
 * A view's filter → the address's parameters of the list (`maps`; custom fields as cf/cop/cv;
 * delete_time → show=trash), and how many conditions had no parameter (left out, said so).
 */
export function paramsFromFilter(filter: Filter | undefined, maps: ParamMap[]): { params: Record<string, string>; unknown: number } {
  const params: Record<string, string> = {};
  let unknown = 0;
  const nodes: Node[] = !filter ? [] : filter.node.case === "and" ? filter.node.value.filters.map((f) => f.node) : [filter.node];
  for (const n of nodes) {
    if (n.case === "condition") {
      const c = n.value;
      const m = maps.find((x) => x.fields.length === 1 && x.fields[0] === c.field && x.op === c.operator);
      if (m && c.values[0] !== undefined) params[m.param] = c.values[0];
      else if (c.field.startsWith("custom.") && c.values[0] !== undefined && !params.cf) Object.assign(params, { cf: c.field.slice(7), cop: String(c.operator), cv: c.values[0] });
      else if (c.field === "delete_time" && c.operator === Operator.IS_NOT_EMPTY) params.show = "trash";
      else unknown++;
    } else if (n.case === "or") {
      const conds = n.value.filters.map((f) => (f.node.case === "condition" ? f.node.value : undefined));
      const value = conds[0]?.values[0];
      const fields = conds.map((c) => c?.field ?? "").sort();
      const m = maps.find((x) => x.fields.length === fields.length && [...x.fields].sort().every((f, i) => f === fields[i]));
      if (m && value !== undefined && conds.every((c) => c && c.operator === m.op && c.values[0] === value)) params[m.param] = value;
      else unknown++;
    } else if (n.case !== undefined) unknown++;
  }
  return { params, unknown };
}

/** "name desc, id" → sort=name, desc=1. */
export function sortFromOrderBy(orderBy: string): { sort?: string; desc?: string } {
  const [field, dir] = (orderBy.split(",")[0] ?? "").trim().split(/\s+/);
  if (!field) return {};
  return { sort: field, desc: dir?.toLowerCase() === "desc" ? "1" : undefined };
}

/**
 * The list's views: pick one (its filter, sort and columns become the list's), save the list as a
 * new view (shared, for owners and admins), update or delete the view picked.
 */
export function ViewBar(props: {
  objectType: ObjectType;
  session: Session;
  params: URLSearchParams;
  set(c: Record<string, string | undefined>): void;
  /** Every parameter the list's state has (cleared when a view is picked). */
  stateParams: string[];
  maps: ParamMap[];
  request: { filter: Filter | undefined; orderBy: string; showDeleted: boolean };
  columns: string[];
}) {
  const words = useWords();
  const { w } = words;
  const id = useId();
  const invalidate = useInvalidate();
  const list = useQuery(ViewService.method.listViews, { objectType: props.objectType, pageSize: 100 }, { staleTime: 10_000 });
  const all = list.data?.views ?? [];
  const current = all.find((v) => v.id === props.params.get("view"));
  const [name, setName] = useState("");
  const [shared, setShared] = useState(false);
  const [busy, setBusy] = useState(false);
  const [notice, setNotice] = useState<{ text: string; error?: boolean }>();
  const admin = isAdmin(props.session);
  const mayChange = (v: View) => (v.shared ? admin : v.ownerId === props.session.userId);

  const pick = (viewId: string) => {
    setNotice(undefined);
    const cleared = Object.fromEntries(props.stateParams.map((p) => [p, undefined]));
    const v = all.find((x) => x.id === viewId);
    if (!v) {
      props.set({ ...cleared, view: undefined });
      return;
    }
    const { params, unknown } = paramsFromFilter(v.filter, props.maps);
    props.set({ ...cleared, ...params, ...sortFromOrderBy(v.orderBy), show: v.showDeleted ? "trash" : params.show, cols: v.columns.length ? v.columns.join(",") : undefined, view: v.id });
    if (unknown) setNotice({ text: w("viewPartly", { count: unknown }) });
  };
  const body = () => ({ filter: props.request.filter, orderBy: props.request.orderBy, showDeleted: props.request.showDeleted, columns: props.columns });
  const run = async (f: () => Promise<void>) => {
    setBusy(true);
    try {
      await f();
    } catch (e) {
      setNotice({ text: recordError(e, words, ""), error: true });
    } finally {
      setBusy(false);
      await invalidate(ViewService.method.listViews);
    }
  };
  const save = (e: FormEvent) => {
    e.preventDefault();
    if (!name.trim()) return;
    void run(async () => {
      const r = await views.createView({ view: { name: name.trim(), objectType: props.objectType, shared: admin && shared, ...body() } });
      setName("");
      setNotice({ text: w("viewSaved", { name: r.view!.name }) });
      props.set({ view: r.view!.id });
    });
  };
  const update = () =>
    current &&
    run(async () => {
      await views.updateView({ view: { id: current.id, etag: current.etag, ...body() }, updateMask: { paths: ["filter", "order_by", "show_deleted", "columns"] } });
      setNotice({ text: w("viewUpdated", { name: current.name }) });
    });
  const remove = () =>
    current &&
    run(async () => {
      await views.deleteView({ id: current.id, etag: current.etag });
      props.set({ view: undefined });
      setNotice({ text: w("viewDeleted", { name: current.name }) });
    });

  return (
    <div className="view-bar">
      <div className="field">
        <label htmlFor={`${id}-pick`}>{w("view")}</label>
        <select id={`${id}-pick`} value={current?.id ?? ""} onChange={(e) => pick(e.target.value)}>
          <option value="">{w("allRecords")}</option>
          {all.map((v) => (
            <option key={v.id} value={v.id}>
              {v.shared ? w("sharedView", { name: v.name }) : v.name}
            </option>
          ))}
        </select>
      </div>
      {current && mayChange(current) && (
        <>
          <button type="button" className="secondary small" disabled={busy} onClick={() => void update()}>
            {w("updateView", { name: current.name })}
          </button>
          <button type="button" className="secondary small danger" disabled={busy} onClick={() => void remove()} aria-label={w("deleteViewOf", { name: current.name })}>
            {w("deleteView")}
          </button>
        </>
      )}
      <form className="save-view" onSubmit={save} aria-label={w("saveView")}>
        <div className="field">
          <label htmlFor={`${id}-name`}>{w("viewName")}</label>
          <input id={`${id}-name`} value={name} maxLength={100} onChange={(e) => setName(e.target.value)} />
        </div>
        {admin && (
          <label className="inline-label">
            <input type="checkbox" checked={shared} onChange={(e) => setShared(e.target.checked)} />
            {w("shareView")}
          </label>
        )}
        <button type="submit" className="secondary" disabled={busy || !name.trim()}>
          {w("saveView")}
        </button>
      </form>
      <Notice notice={notice} />
    </div>
  );
}

/** The header cells of the visible columns (sortable ones sort). */
export function ColumnHeaders<R>({ cols, sort }: { cols: Column<R>[]; sort: ReturnType<typeof useSort> }) {
  return (
    <>
      {cols.map((c) =>
        c.sort ? (
          <SortHeader key={c.key} label={c.label} field={c.sort} sort={sort} />
        ) : (
          <th key={c.key} scope="col">
            {c.label}
          </th>
        ),
      )}
    </>
  );
}

/** A row's cells of the visible columns. */
export function ColumnCells<R>({ cols, row }: { cols: Column<R>[]; row: R }) {
  return (
    <>
      {cols.map((c) => (
        <td key={c.key} className={c.num ? "num" : undefined} data-col={c.key}>
          {c.cell(row)}
        </td>
      ))}
    </>
  );
}

/**
 * Every deal as one list (`/deals/list`, beside the board): sortable columns, simple filters
 * (name, status, owner, a custom field) in the address, custom fields as columns, columns shown or
 * hidden and saved views as on the companies and people lists, keyset pages loaded as the end
 * comes near, virtualized (RecordTable), live over WatchRecords; import and export.
 */
import { Link } from "wouter";
import { createInfiniteQueryOptions, useInfiniteQuery } from "@connectrpc/connect-query";
import { DealService, type Deal } from "@crm/gen/crm/records/v1/deal_pb";
import { ObjectType, Operator } from "@crm/gen/crm/records/v1/common_pb";
import { transport, type Session } from "../../session";
import { queryClient as pageQueryClient } from "../../query";
import { allOf, anyContains, formatDate, formatMoney, orderBy } from "./format";
import { FilterSelect, FilterText, OwnerFilter, SortHeader, date, statusWord, useDirectory, usePipelines, useSearchState, useSort } from "./common";
import { useLiveList } from "./live";
import { flatRows } from "./live-pages";
import { RecordTable } from "./RecordTable";
import { ExportButton } from "./ExportButton";
import { CustomFilter, customColumns, customCondition, useFields } from "./custom";
import { ColumnCells, ColumnChooser, ColumnHeaders, ViewBar, visibleColumns, type Column, type ParamMap } from "./views";
import { useWords } from "./words";

const defaultSort = { field: "create_time", desc: true };
const paging = { pageParamKey: "pageToken", getNextPageParam: (last: { nextPageToken: string }) => last.nextPageToken || undefined } as const;

/** The list's request from the address bar's parameters (the screen and the early prefetch ask the same). */
export function dealsInput(p: URLSearchParams) {
  const sort = p.get("sort") ?? defaultSort.field;
  const desc = p.has("sort") ? p.get("desc") === "1" : defaultSort.desc;
  const status = p.get("status");
  const filter = allOf(
    anyContains(["name"], p.get("name") ?? ""),
    status === "open" || status === "won" || status === "lost" ? { field: "status", op: Operator.EQUALS, values: [status] } : undefined,
    p.get("owner") ? { field: "owner_id", op: Operator.EQUALS, values: [p.get("owner")!] } : undefined,
    customCondition(p),
  );
  return { filter, orderBy: orderBy(sort, desc), pageSize: 50, pageToken: "", showDeleted: false };
}

/** The list's parameters (cleared when a view is picked) and how a view's conditions map back to them. */
const dealParams = ["name", "status", "owner", "cf", "cop", "cv", "sort", "desc", "cols"];
const dealMaps: ParamMap[] = [
  { param: "name", fields: ["name"], op: Operator.CONTAINS },
  { param: "status", fields: ["status"], op: Operator.EQUALS },
  { param: "owner", fields: ["owner_id"], op: Operator.EQUALS },
];

export function prefetch(path: string, search: URLSearchParams): void {
  if (path === "/deals/list") void pageQueryClient.prefetchInfiniteQuery(createInfiniteQueryOptions(DealService.method.listDeals, dealsInput(search), { transport, ...paging }));
}

export function DealList({ session }: { session: Session }) {
  const words = useWords();
  const { w } = words;
  const [params, set] = useSearchState();
  const sort = useSort(params, set, defaultSort);
  const dir = useDirectory(session);
  const { stages } = usePipelines();
  const input = dealsInput(params);
  const fields = useFields(ObjectType.DEAL);
  const columns: Column<Deal>[] = [
    {
      key: "stage_id",
      label: w("stage"),
      cell: (d) => {
        const here = stages.get(d.stageId);
        return here ? `${here.pipeline.name}: ${here.stage.name}` : "";
      },
    },
    { key: "amount_minor", label: w("amount"), sort: "amount_minor", num: true, cell: (d) => (d.amountMinor !== undefined && d.currencyCode ? formatMoney(d.amountMinor, d.currencyCode, words.locale) : "") },
    { key: "status", label: w("status"), cell: (d) => (statusWord[d.status] ? w(statusWord[d.status]!) : "") },
    { key: "owner_id", label: w("owner"), sort: "owner_id", cell: (d) => dir.name(d.ownerId) },
    { key: "expected_close_date", label: w("closeDate"), sort: "expected_close_date", cell: (d) => (d.expectedCloseDate ? formatDate(d.expectedCloseDate, words.locale) : "") },
    ...customColumns<Deal>(fields, dir),
    { key: "create_time", label: w("created"), sort: "create_time", cell: (d) => date(d.createTime) && words.dateTime(date(d.createTime)!) },
  ];
  const cols = visibleColumns(params, columns);
  const list = useInfiniteQuery(DealService.method.listDeals, input, { ...paging, placeholderData: (prev) => prev, staleTime: 2_000, refetchOnWindowFocus: false });
  useLiveList({ objectType: ObjectType.DEAL, filter: input.filter, showDeleted: false }, DealService.method.listDeals, input, "deals", list.dataUpdatedAt);
  const rows = flatRows(list.data?.pages, "deals");
  const colSpan = 1 + cols.length;
  return (
    <section aria-labelledby="deal-list-title">
      <div className="list-head">
        <h1 id="deal-list-title">{w("allDeals")}</h1>
        <Link href="/deals">{w("board")}</Link>
        <Link href="/deals/new" className="button">
          {w("newDeal")}
        </Link>
        <Link href="/deals/import" className="button secondary">
          {w("importCsv")}
        </Link>
        <ExportButton fileName="deals" request={{ objectType: ObjectType.DEAL, filter: input.filter, orderBy: input.orderBy, showDeleted: false, columns: ["name", ...cols.map((c) => c.key)] }} />
      </div>
      <form role="search" aria-label={w("filters")} className="filters" onSubmit={(e) => e.preventDefault()}>
        <FilterText label={w("nameContains")} value={params.get("name") ?? ""} onChange={(v) => set({ name: v })} />
        <FilterSelect
          label={w("status")}
          value={params.get("status") ?? ""}
          onChange={(v) => set({ status: v })}
          options={[
            { value: "", label: w("anyStatus") },
            { value: "open", label: w("status.open") },
            { value: "won", label: w("status.won") },
            { value: "lost", label: w("status.lost") },
          ]}
        />
        <OwnerFilter dir={dir} value={params.get("owner") ?? ""} onChange={(v) => set({ owner: v })} />
        <CustomFilter fields={fields} params={params} set={set} dir={dir} />
        <ColumnChooser all={columns} visible={cols} onChange={(keys) => set({ cols: keys?.join(",") })} />
      </form>
      <ViewBar objectType={ObjectType.DEAL} session={session} params={params} set={set} stateParams={dealParams} maps={dealMaps} request={input} columns={cols.map((c) => c.key)} />
      <RecordTable
        labelledBy="deal-list-title"
        list={list}
        rows={rows}
        rowKey={(d) => d.id}
        colSpan={colSpan}
        head={
          <>
            <SortHeader label={w("name")} field="name" sort={sort} />
            <ColumnHeaders cols={cols} sort={sort} />
          </>
        }
        empty={w("noDeals")}
      >
        {(d) => (
          <>
            <th scope="row">
              <Link href={`/deals/${d.id}`}>{d.name}</Link>
            </th>
            <ColumnCells cols={cols} row={d} />
          </>
        )}
      </RecordTable>
    </section>
  );
}

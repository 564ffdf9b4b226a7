/**
 * Every deal as one list (`/deals/list`, beside the board): sortable columns, simple filters
 * (name, status, owner) in the address, keyset pages loaded as the end comes near, virtualized
 * like the companies and people lists (virtual.tsx), live over WatchRecords.
 */
import { Link } from "wouter";
import { createInfiniteQueryOptions, useInfiniteQuery } from "@connectrpc/connect-query";
import { DealService } from "@crm/gen/crm/records/v1/deal_pb";
import { ObjectType, Operator } from "@crm/gen/crm/records/v1/common_pb";
import { transport, type Session } from "../../session";
import { queryClient as pageQueryClient } from "../../query";
import { allOf, anyContains, formatDate, formatMoney, orderBy } from "./format";
import { FilterSelect, FilterText, OwnerFilter, SortHeader, date, statusWord, useDirectory, usePipelines, useSearchState, useSort } from "./common";
import { useLiveList } from "./live";
import { flatRows } from "./live-pages";
import { RecordTable } from "./RecordTable";
import { ExportButton } from "./ExportButton";
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
  );
  return { filter, orderBy: orderBy(sort, desc), pageSize: 50, pageToken: "", showDeleted: false };
}

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
  const list = useInfiniteQuery(DealService.method.listDeals, input, { ...paging, placeholderData: (prev) => prev, staleTime: 2_000, refetchOnWindowFocus: false });
  useLiveList({ objectType: ObjectType.DEAL, filter: input.filter, showDeleted: false }, DealService.method.listDeals, input, "deals", list.dataUpdatedAt);
  const rows = flatRows(list.data?.pages, "deals");
  const colSpan = 7;
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
        <ExportButton fileName="deals" request={{ objectType: ObjectType.DEAL, filter: input.filter, orderBy: input.orderBy, showDeleted: false }} />
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
      </form>
      <RecordTable
        labelledBy="deal-list-title"
        list={list}
        rows={rows}
        rowKey={(d) => d.id}
        colSpan={colSpan}
        head={
          <>
            <SortHeader label={w("name")} field="name" sort={sort} />
            <th scope="col">{w("stage")}</th>
            <SortHeader label={w("amount")} field="amount_minor" sort={sort} />
            <th scope="col">{w("status")}</th>
            <SortHeader label={w("owner")} field="owner_id" sort={sort} />
            <SortHeader label={w("closeDate")} field="expected_close_date" sort={sort} />
            <SortHeader label={w("created")} field="create_time" sort={sort} />
          </>
        }
        empty={w("noDeals")}
      >
        {(d) => {
          const here = stages.get(d.stageId);
          const created = date(d.createTime);
          return (
            <>
              <th scope="row">
                <Link href={`/deals/${d.id}`}>{d.name}</Link>
              </th>
              <td>{here ? `${here.pipeline.name}: ${here.stage.name}` : ""}</td>
              <td className="num">{d.amountMinor !== undefined && d.currencyCode ? formatMoney(d.amountMinor, d.currencyCode, words.locale) : ""}</td>
              <td>{statusWord[d.status] ? w(statusWord[d.status]!) : ""}</td>
              <td>{dir.name(d.ownerId)}</td>
              <td>{d.expectedCloseDate ? formatDate(d.expectedCloseDate, words.locale) : ""}</td>
              <td>{created ? words.dateTime(created) : ""}</td>
            </>
          );
        }}
      </RecordTable>
    </section>
  );
}

/**
 * The shell every long records list shares (companies, people, all deals): the list's error line,
 * "Loading…" until the first page, the table with its total for screen readers (aria-rowcount)
 * and busy state, the header row, the empty line or the virtualized rows with their keyboard
 * navigation (virtual.tsx), then "50 of about 1,200" and "Load more". A screen gives its infinite
 * query, its rows, its header cells and each row's cells.
 */
import type { ReactNode } from "react";
import { Count, LoadMore, recordError } from "./common";
import { VirtualRows, rowCount } from "./virtual";
import { useWords } from "./words";

/** What the shell reads of a TanStack infinite query of a List RPC. */
export interface InfiniteList {
  error: unknown;
  isPending: boolean;
  isFetching: boolean;
  hasNextPage: boolean;
  isFetchingNextPage: boolean;
  fetchNextPage(): unknown;
  data?: { pages: { totalSize: bigint; totalIsExact: boolean }[] } | undefined;
}

export function RecordTable<T>({
  labelledBy,
  list,
  rows,
  rowKey,
  colSpan,
  head,
  empty,
  children,
}: {
  /** The id of the screen's heading, the table's name. */
  labelledBy: string;
  list: InfiniteList;
  rows: T[];
  rowKey(row: T): string;
  colSpan: number;
  /** The header row's cells. */
  head: ReactNode;
  /** Said in the table when the list is empty. */
  empty: ReactNode;
  /** A row's cells (its <th> and <td>s). */
  children(row: T): ReactNode;
}) {
  const words = useWords();
  const { w, t } = words;
  const first = list.data?.pages[0];
  const hasNext = Boolean(list.hasNextPage);
  const more = () => void list.fetchNextPage();
  return (
    <>
      {Boolean(list.error) && (
        <p role="alert" className="error">
          {recordError(list.error, words, "")}
        </p>
      )}
      {list.isPending ? (
        <p aria-busy="true">{t("app.loading")}</p>
      ) : (
        <div className="table-wrap">
          <table className="records" aria-labelledby={labelledBy} aria-busy={list.isFetching || undefined} aria-rowcount={rowCount(rows.length, first?.totalSize, first?.totalIsExact ?? false, hasNext)}>
            <thead>
              <tr aria-rowindex={1}>{head}</tr>
            </thead>
            {rows.length === 0 ? (
              <tbody>
                <tr>
                  <td colSpan={colSpan}>{empty}</td>
                </tr>
              </tbody>
            ) : (
              <VirtualRows rows={rows} rowKey={rowKey} colSpan={colSpan} hasNext={hasNext} loading={list.isFetchingNextPage} onMore={more}>
                {children}
              </VirtualRows>
            )}
          </table>
        </div>
      )}
      {first && <Count shown={rows.length} total={hasNext ? first.totalSize : BigInt(rows.length)} exact={!hasNext || first.totalIsExact} />}
      <LoadMore hasNext={hasNext} busy={list.isFetchingNextPage} onMore={more} label={w("loadMore")} />
    </>
  );
}

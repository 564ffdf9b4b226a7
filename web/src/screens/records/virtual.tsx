/**
 * The body of a long records list, virtualized: only the rows in and near the window are in the
 * DOM (@tanstack/react-virtual's window virtualizer, so the page scrolls as before and the table
 * keeps its semantics; two spacer rows stand for the rest), and the next keyset page is asked for
 * when the rows in view come near the end of what is loaded. Screen readers get the row's place
 * (aria-rowindex) and the total (aria-rowcount on the table, from `total`). From the keyboard, ↑ ↓
 * on a row's link or button move to the same control of the row above or below, scrolling rows
 * that are not in the DOM into it (PageUp/PageDown: ten rows); Tab goes through the rows present,
 * then to "Load more".
 */
import { useEffect, useLayoutEffect, useRef, useState, type KeyboardEvent, type ReactNode } from "react";
import { useWindowVirtualizer } from "@tanstack/react-virtual";

/** The rows a list keeps in the DOM beyond those in view, above and below. */
const overscan = 12;
/**
 * How near the end of the loaded rows the rendered ones (the view and the overscan) may come
 * before the next page is asked for: close enough that scrolling rarely waits, not so close that
 * opening a list of 50 on a tall screen fetches the second page at once.
 */
const ahead = 10;

const focusable = "a[href], button:not([disabled]), input, select, textarea";

export function VirtualRows<T>({
  rows,
  rowKey,
  colSpan,
  hasNext,
  loading,
  onMore,
  children,
  estimate = 42,
}: {
  rows: T[];
  rowKey(row: T): string;
  colSpan: number;
  hasNext: boolean;
  loading: boolean;
  onMore(): void;
  /** The row's cells (its <th> and <td>s). */
  children(row: T): ReactNode;
  /** A row's height before it is measured, in pixels. */
  estimate?: number;
}) {
  const body = useRef<HTMLTableSectionElement>(null);
  const [margin, setMargin] = useState(0);
  // The body's distance from the top of the page: what is above it (filters, a notice) can change.
  useLayoutEffect(() => {
    const el = body.current;
    if (!el) return;
    const top = Math.round(el.getBoundingClientRect().top + window.scrollY);
    if (top !== margin) setMargin(top);
  });
  const virtualizer = useWindowVirtualizer({
    count: rows.length,
    estimateSize: () => estimate,
    overscan,
    scrollMargin: margin,
    getItemKey: (i) => rowKey(rows[i]!),
  });
  const items = virtualizer.getVirtualItems();
  const last = items.length ? items[items.length - 1]!.index : -1;
  const more = useRef(onMore);
  more.current = onMore;
  useEffect(() => {
    if (hasNext && !loading && rows.length > 0 && last >= rows.length - ahead) more.current();
  }, [last, rows.length, hasNext, loading]);

  // ↑ ↓ PageUp PageDown: the same control one (or ten) rows away, brought into the DOM first.
  const [pending, setPending] = useState<{ index: number; slot: number }>();
  useEffect(() => {
    if (!pending) return;
    const row = body.current?.querySelector<HTMLElement>(`tr[data-index="${pending.index}"]`);
    if (!row) return;
    const controls = row.querySelectorAll<HTMLElement>(focusable);
    (controls[Math.min(pending.slot, controls.length - 1)] ?? row).focus();
    setPending(undefined);
  }, [pending, items]);
  const onKeyDown = (e: KeyboardEvent<HTMLTableSectionElement>) => {
    const step = { ArrowDown: 1, ArrowUp: -1, PageDown: 10, PageUp: -10 }[e.key];
    if (!step || e.altKey || e.ctrlKey || e.metaKey || e.shiftKey) return;
    const target = e.target as HTMLElement;
    if (target.matches("input, select, textarea")) return;
    const row = target.closest<HTMLElement>("tr[data-index]");
    if (!row) return;
    const index = Number(row.dataset.index);
    const next = Math.max(0, Math.min(rows.length - 1, index + step));
    e.preventDefault();
    if (next === index) {
      if (step > 0 && hasNext && !loading) more.current();
      return;
    }
    const slot = Array.from(row.querySelectorAll<HTMLElement>(focusable)).indexOf(target);
    virtualizer.scrollToIndex(next, { align: "auto" });
    setPending({ index: next, slot: Math.max(0, slot) });
  };

  const before = items.length ? items[0]!.start - virtualizer.options.scrollMargin : 0;
  const after = items.length ? virtualizer.getTotalSize() - (items[items.length - 1]!.end - virtualizer.options.scrollMargin) : 0;
  return (
    <tbody ref={body} onKeyDown={onKeyDown}>
      {before > 0 && <Spacer height={before} colSpan={colSpan} />}
      {items.map((item) => {
        const row = rows[item.index]!;
        return (
          <tr key={item.key} data-id={rowKey(row)} data-index={item.index} aria-rowindex={item.index + 2} ref={virtualizer.measureElement}>
            {children(row)}
          </tr>
        );
      })}
      {after > 0 && <Spacer height={after} colSpan={colSpan} />}
    </tbody>
  );
}

/** The height of the rows not in the DOM (hidden from assistive technology). */
function Spacer({ height, colSpan }: { height: number; colSpan: number }) {
  return (
    <tr aria-hidden="true" className="spacer">
      <td colSpan={colSpan} style={{ height }} />
    </tr>
  );
}

/**
 * aria-rowcount for a virtualized table: the header row plus every row of the list when the
 * server's count is exact, or -1 (unknown) while more pages are to come under an estimate.
 */
export function rowCount(loaded: number, total: bigint | undefined, exact: boolean, hasNext: boolean): number {
  if (!hasNext) return loaded + 1;
  return exact && total !== undefined ? Number(total) + 1 : -1;
}

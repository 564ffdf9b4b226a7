/**
 * Live lists: RecordStreamService.WatchRecords for what a screen shows (an object type and its
 * filter). One server stream per watching screen; it resumes after the last version it saw when it
 * breaks (backoff 0.5 s doubling to 10 s, a refresh first when the access token expired), so no
 * change is missed or applied twice. `onLive` runs when the stream has gone live: a list read
 * before the stream started may have missed a change made in between, so the screen rereads it.
 */
import { useEffect, useRef } from "react";
import { toJsonString, type DescMethodUnary } from "@bufbuild/protobuf";
import { callUnaryMethod, createConnectQueryKey } from "@connectrpc/connect-query";
import { useQueryClient } from "@tanstack/react-query";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { ChangeAction, RecordStreamService, type WatchedChange } from "@crm/gen/crm/records/v1/stream_pb";
import { FilterSchema, type Filter, type ObjectType } from "@crm/gen/crm/records/v1/common_pb";
import { refresh, transport } from "../../session";
import { applyChanges, mergeFirstPage, type Change, type ListPage, type Pages, type Row } from "./live-pages";

const stream = createClient(RecordStreamService, transport);

function wait(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => (clearTimeout(t), resolve()), { once: true });
  });
}

export interface Watch {
  objectType: ObjectType;
  filter?: Filter | undefined;
  showDeleted?: boolean;
}

/**
 * Watches `watch` while the screen is up (a new `key` starts a new stream): `onChange` for each
 * change, `onLive(startedAt)` each time the stream (re)connects and goes live.
 */
export function useWatch(watch: Watch | undefined, key: string, onChange: (c: WatchedChange) => void, onLive: (startedAt: number, resumed: boolean) => void): void {
  const handlers = useRef({ onChange, onLive });
  handlers.current = { onChange, onLive };
  const input = useRef(watch);
  input.current = watch;
  useEffect(() => {
    if (!input.current) return;
    const ac = new AbortController();
    const { signal } = ac;
    void (async () => {
      let after: bigint | undefined;
      for (let backoff = 500; !signal.aborted; backoff = Math.min(backoff * 2, 10_000)) {
        const startedAt = Date.now();
        const resumed = after !== undefined;
        let live = false;
        try {
          const w = input.current!;
          for await (const ev of stream.watchRecords({ objectType: w.objectType, filter: w.filter, showDeleted: w.showDeleted ?? false, afterVersion: after }, { signal })) {
            backoff = 500;
            if (ev.event.case === "heartbeat") {
              after = ev.event.value.lastVersion;
              if (!live) {
                live = true;
                handlers.current.onLive(startedAt, resumed);
              }
            } else if (ev.event.case === "change") {
              const v = ev.event.value.change?.version;
              if (v !== undefined && (after === undefined || v > after)) after = v;
              handlers.current.onChange(ev.event.value);
            }
          }
        } catch (e) {
          if (signal.aborted) return;
          const err = ConnectError.from(e);
          if (err.code === Code.Unauthenticated && !(await refresh())) return;
          if (err.code === Code.PermissionDenied || err.code === Code.InvalidArgument || err.code === Code.Unimplemented) return;
          if (err.code === Code.FailedPrecondition) after = undefined; // the version is unknown here: start afresh
        }
        if (signal.aborted) return;
        await wait(backoff, signal);
      }
    })();
    return () => ac.abort();
  }, [key]);
}

/** A stream's identity: a new filter (or trash view) is a new stream. */
export function watchKey(w: Watch): string {
  return `${w.objectType}:${w.showDeleted ? "all" : "live"}:${w.filter ? toJsonString(FilterSchema, w.filter) : ""}`;
}

/**
 * A list kept live: `useWatch` on its filter, each change applied to the pages loaded so far
 * (live-pages.ts: a row updated in place, removed, or put where the sort says, the total kept),
 * a tenth of a second after the first change of a burst. Where only the server can say (a text
 * sort, a custom field, a total), the first page alone is read again and merged. When the stream
 * goes live from scratch (not resuming after a version it had seen) and the list was read before
 * it started, a change may have fallen in between: the list goes back to its first page, read
 * again (one call, not one per page).
 */
export function useLiveList(
  watch: Watch,
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  method: DescMethodUnary<any, any>,
  input: object,
  rowsKey: string,
  readAt: number,
): void {
  type P = ListPage & Record<string, Row[]>;
  const queryClient = useQueryClient();
  const key = createConnectQueryKey({ schema: method, input, transport, cardinality: "infinite", pageParamKey: "pageToken" });
  const state = useRef({ key, input, orderBy: "", queue: [] as Change<Row>[], timer: undefined as ReturnType<typeof setTimeout> | undefined, fetching: false, again: false });
  const st = state.current;
  st.key = key;
  st.input = input;
  st.orderBy = (input as { orderBy?: string }).orderBy ?? "";
  useEffect(() => () => clearTimeout(state.current.timer), []);

  const refetchFirst = async () => {
    if (st.fetching) {
      st.again = true;
      return;
    }
    st.fetching = true;
    try {
      do {
        st.again = false;
        const k = st.key;
        const fresh = (await callUnaryMethod(transport, method, { ...st.input, pageToken: "" })) as unknown as P;
        queryClient.setQueryData<Pages<P>>(k, (d) => (d ? mergeFirstPage<P, Row>(d, rowsKey, fresh) : d));
      } while (st.again);
    } catch {
      // The list stays as it is; the next change or reconnect tries again.
    } finally {
      st.fetching = false;
    }
  };
  const flush = () => {
    st.timer = undefined;
    const changes = st.queue.splice(0);
    let again = false;
    queryClient.setQueryData<Pages<P>>(st.key, (d) => {
      if (!d) return d;
      const r = applyChanges<P, Row>(d, rowsKey, st.orderBy, changes);
      again = r.refetchFirst;
      return r.data;
    });
    if (again) void refetchFirst();
  };
  const onChange = (w: WatchedChange) => {
    const c = w.change;
    if (!c) return;
    const record = c.record?.record.value as Row | undefined;
    st.queue.push({ id: c.recordId, record, inView: w.inView, entered: c.action === ChangeAction.CREATED || c.action === ChangeAction.RESTORED });
    st.timer ??= setTimeout(flush, 100);
  };
  useWatch(watch, watchKey(watch), onChange, (startedAt, resumed) => {
    if (resumed || readAt >= startedAt) return;
    // Back to the first page, read again: one call however far the list was scrolled.
    queryClient.setQueryData<Pages<P>>(st.key, (d) => (d && d.pages.length > 1 ? { pages: d.pages.slice(0, 1), pageParams: d.pageParams.slice(0, 1) } : d));
    void queryClient.invalidateQueries({ queryKey: st.key, exact: true });
  });
}

/**
 * Live lists: RecordStreamService.WatchRecords for what a screen shows (an object type and its
 * filter). One server stream per watching screen; it resumes after the last version it saw when it
 * breaks (backoff 0.5 s doubling to 10 s, a refresh first when the access token expired), so no
 * change is missed or applied twice. `onLive` runs when the stream has gone live: a list read
 * before the stream started may have missed a change made in between, so the screen rereads it.
 */
import { useEffect, useRef } from "react";
import { toJsonString, type DescMethodUnary } from "@bufbuild/protobuf";
import { createConnectQueryKey } from "@connectrpc/connect-query";
import { useQueryClient } from "@tanstack/react-query";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { RecordStreamService, type WatchedChange } from "@crm/gen/crm/records/v1/stream_pb";
import { FilterSchema, type Filter, type ObjectType } from "@crm/gen/crm/records/v1/common_pb";
import { refresh, transport } from "../../session";

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
export function useWatch(watch: Watch | undefined, key: string, onChange: (c: WatchedChange) => void, onLive: (startedAt: number) => void): void {
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
        let live = false;
        try {
          const w = input.current!;
          for await (const ev of stream.watchRecords({ objectType: w.objectType, filter: w.filter, showDeleted: w.showDeleted ?? false, afterVersion: after }, { signal })) {
            backoff = 500;
            if (ev.event.case === "heartbeat") {
              after = ev.event.value.lastVersion;
              if (!live) {
                live = true;
                handlers.current.onLive(startedAt);
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
 * A list kept live: `useWatch` on its filter, each change (and going live after a list read
 * before) rereads the list's pages, a quarter second after the last change of a burst.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function useLiveList(watch: Watch, method: DescMethodUnary<any, any>, readAt: number): void {
  const queryClient = useQueryClient();
  const timer = useRef<ReturnType<typeof setTimeout>>(undefined);
  useEffect(() => () => clearTimeout(timer.current), []);
  const reread = () => {
    clearTimeout(timer.current);
    timer.current = setTimeout(() => void queryClient.invalidateQueries({ queryKey: createConnectQueryKey({ schema: method, cardinality: undefined }) }), 250);
  };
  useWatch(watch, watchKey(watch), reread, (startedAt) => {
    if (readAt < startedAt) reread();
  });
}

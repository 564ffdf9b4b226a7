/**
 * The deal board of a pipeline: its stages as columns, each the deals of that stage in their
 * position order (ListDeals filtered by stage_id, ordered by position, a page at a time), moved by
 * drag and drop (HTML5) or, from the keyboard, by each card's left/right/up/down buttons. A move is
 * one MoveDeal with the card's etag, shown at once and confirmed by the answer; when someone else
 * moved or changed the deal meanwhile (aborted) the screen says so and reloads the columns.
 */
import { useEffect, useRef, useState, type DragEvent } from "react";
import { Link, useLocation } from "wouter";
import { createConnectQueryKey, createInfiniteQueryOptions, createQueryOptions, useInfiniteQuery } from "@connectrpc/connect-query";
import { useQueryClient, type InfiniteData, type QueryClient } from "@tanstack/react-query";
import { Code, ConnectError } from "@connectrpc/connect";
import { DealService, type Deal, type ListDealsResponse, type MoveDealRequest } from "@crm/gen/crm/records/v1/deal_pb";
import { PipelineService, StageKind, type Pipeline, type Stage } from "@crm/gen/crm/records/v1/pipeline_pb";
import { ObjectType, Operator } from "@crm/gen/crm/records/v1/common_pb";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { MoveDealRequestSchema } from "@crm/gen/crm/records/v1/deal_pb";
import { isAdmin, transport, type Session } from "../../session";
import { queryClient as pageQueryClient } from "../../query";
import { allOf, formatDate, formatMoney } from "./format";
import { ListReadOnlyHint, LoadMore, ReadOnlyMark, api, pipelinesInput, recordError, timelineOf, useCompanyName, useInvalidate, useMayEdit, usePipelines, useSearchState } from "./common";
import { useWords, type Words } from "./words";
import { useWatch } from "./live";

const paging = { pageParamKey: "pageToken", getNextPageParam: (last: { nextPageToken: string }) => last.nextPageToken || undefined } as const;
export const columnInput = (stageId: string) => ({ filter: allOf({ field: "stage_id", op: Operator.EQUALS, values: [stageId] }), orderBy: "position", pageSize: 50, pageToken: "" });
const columnKey = (stageId: string) => createConnectQueryKey({ schema: DealService.method.listDeals, input: columnInput(stageId), transport, cardinality: "infinite", pageParamKey: "pageToken" });

/** The pipelines, then the shown one's columns (two round trips, the first in parallel with Check). */
export function prefetch(_path: string, search: URLSearchParams): void {
  void pageQueryClient.fetchQuery(createQueryOptions(PipelineService.method.listPipelines, pipelinesInput, { transport })).then(
    (r) => {
      const p = r.pipelines.find((x) => x.id === search.get("pipeline")) ?? r.pipelines[0];
      for (const s of p?.stages ?? []) void pageQueryClient.prefetchInfiniteQuery(createInfiniteQueryOptions(DealService.method.listDeals, columnInput(s.id), { transport, ...paging }));
    },
    () => {}, // the screen asks again and shows the error
  );
}

type Pages = InfiniteData<ListDealsResponse>;
type MoveInit = Omit<Exclude<MessageInitShape<typeof MoveDealRequestSchema>, MoveDealRequest>, "$typeName">;

function cards(qc: QueryClient, stageId: string): Deal[] {
  return qc.getQueryData<Pages>(columnKey(stageId))?.pages.flatMap((p) => p.deals) ?? [];
}

/** The column's cached pages with `deal` taken out (and the count lowered). */
function without(data: Pages | undefined, dealId: string): Pages | undefined {
  if (!data) return data;
  let found = false;
  const pages = data.pages.map((p) => {
    if (!p.deals.some((d) => d.id === dealId)) return p;
    found = true;
    return { ...p, deals: p.deals.filter((d) => d.id !== dealId) };
  });
  if (found && pages[0]) pages[0] = { ...pages[0], totalSize: pages[0].totalSize > 0n ? pages[0].totalSize - 1n : 0n };
  return { ...data, pages };
}

/** The column's cached pages with `deal` put at `index` of its loaded cards (and the count raised). */
function withDeal(data: Pages | undefined, deal: Deal, index: number): Pages | undefined {
  if (!data || data.pages.length === 0) return data;
  let at = index;
  const pages = data.pages.slice();
  let placed = false;
  for (let i = 0; i < pages.length; i++) {
    const p = pages[i]!;
    const last = i === pages.length - 1;
    if (at <= p.deals.length && (at < p.deals.length || last)) {
      const deals = p.deals.slice();
      deals.splice(at, 0, deal);
      pages[i] = { ...p, deals };
      placed = true;
      break;
    }
    at -= p.deals.length;
  }
  if (placed && pages[0]) pages[0] = { ...pages[0], totalSize: pages[0].totalSize + 1n };
  return { ...data, pages };
}

function replaceDeal(data: Pages | undefined, deal: Deal): Pages | undefined {
  if (!data || !data.pages.some((p) => p.deals.some((d) => d.id === deal.id))) return data;
  return { ...data, pages: data.pages.map((p) => (p.deals.some((d) => d.id === deal.id) ? { ...p, deals: p.deals.map((d) => (d.id === deal.id ? deal : d)) } : p)) };
}

/** The column with `deal` at its place by position ("C" order: the keys are ASCII); left out when it falls after the loaded pages. */
function placed(data: Pages | undefined, deal: Deal): Pages | undefined {
  if (!data) return data;
  const list = data.pages.flatMap((p) => p.deals);
  let index = list.findIndex((x) => x.position > deal.position);
  if (index < 0) {
    if (data.pages.at(-1)?.nextPageToken) return data; // it comes with a later page
    index = list.length;
  }
  return withDeal(data, deal, index);
}

interface Target {
  stageId: string;
  /** Where among the column's loaded cards (the moving one left out) it goes. */
  index: number;
}

export function Board({ session }: { session: Session }) {
  const words = useWords();
  const { w, t } = words;
  const { q, pipelines } = usePipelines();
  const [params, set] = useSearchState();
  const pipeline = pipelines.find((p) => p.id === params.get("pipeline")) ?? pipelines[0];
  const qc = useQueryClient();
  const invalidate = useInvalidate();
  // A deal the reader may not change (the record pages' rule) is not draggable and has no move buttons.
  const may = useMayEdit(session, ObjectType.DEAL);
  const [notice, setNotice] = useState<{ text: string; error?: boolean }>();
  const [dragging, setDragging] = useState<{ deal: Deal; from: string }>();
  const [target, setTarget] = useState<Target>();
  const focusAfter = useRef<{ dealId: string; control: string } | undefined>(undefined);
  // Moves reach the server one after another, in the order they were made on the screen: a quick
  // second move (two presses of "up") is sent after the first's answer, with the etag it brought.
  const queue = useRef<Promise<void>>(Promise.resolve());
  /** Deals with a move of this page under way: their echoes on the stream are left to the move's answer. */
  const pending = useRef(new Map<string, number>());

  // Live: every change of a deal of this pipeline, made anywhere, moves its card (by its position key).
  useWatch(
    pipeline && { objectType: ObjectType.DEAL, filter: allOf({ field: "pipeline_id", op: Operator.EQUALS, values: [pipeline.id] }) },
    pipeline?.id ?? "",
    (c) => {
      const id = c.change?.recordId;
      if (!id || !pipeline || pending.current.get(id)) return;
      const rec = c.change?.record?.record;
      const deal = rec?.case === "deal" ? rec.value : undefined;
      for (const s of pipeline.stages) qc.setQueryData<Pages>(columnKey(s.id), (d) => without(d, id));
      if (c.inView && deal && !deal.deleteTime) qc.setQueryData<Pages>(columnKey(deal.stageId), (d) => placed(d, deal));
    },
    (startedAt) => {
      // Columns read before the stream went live may have missed a change made in between.
      for (const s of pipeline?.stages ?? []) if ((qc.getQueryState(columnKey(s.id))?.dataUpdatedAt ?? 0) < startedAt) void qc.invalidateQueries({ queryKey: columnKey(s.id) });
    },
  );

  if (q.isPending) return <p aria-busy="true">{t("app.loading")}</p>;
  if (q.error)
    return (
      <p role="alert" className="error">
        {recordError(q.error, words, "")}
      </p>
    );

  /** The etag this page last saw for a deal (a move's answer brings a new one). */
  const latestEtag = (id: string, fallback: string) => {
    for (const s of pipeline?.stages ?? []) {
      const d = cards(qc, s.id).find((x) => x.id === id);
      if (d) return d.etag;
    }
    return fallback;
  };

  /** One MoveDeal: shown at once in the cached columns, then sent (after any earlier move) and confirmed, or undone by reloading them. */
  const move = async (deal: Deal, from: string, to: Target, control?: string) => {
    const stage = pipeline?.stages.find((s) => s.id === to.stageId);
    const rest = cards(qc, to.stageId).filter((d) => d.id !== deal.id);
    const req: MoveInit = { id: deal.id, stageId: to.stageId };
    if (to.index > 0) req.afterDealId = rest[to.index - 1]!.id;
    else if (rest.length > 0) req.beforeDealId = rest[0]!.id;
    else req.top = true;
    const same = from === to.stageId;
    if (same && (rest[to.index - 1]?.id ?? "") === (cards(qc, from)[cards(qc, from).findIndex((d) => d.id === deal.id) - 1]?.id ?? "")) return; // dropped where it was
    await Promise.all([qc.cancelQueries({ queryKey: columnKey(from) }), qc.cancelQueries({ queryKey: columnKey(to.stageId) })]);
    qc.setQueryData<Pages>(columnKey(from), (d) => without(d, deal.id));
    qc.setQueryData<Pages>(columnKey(to.stageId), (d) => withDeal(d, deal, to.index));
    if (control) focusAfter.current = { dealId: deal.id, control };
    pending.current.set(deal.id, (pending.current.get(deal.id) ?? 0) + 1);
    const turn = queue.current.then(() => send(deal, req, same, stage?.name ?? "")).finally(() => {
      const n = (pending.current.get(deal.id) ?? 1) - 1;
      if (n > 0) pending.current.set(deal.id, n);
      else pending.current.delete(deal.id);
    });
    queue.current = turn;
    await turn;
  };

  const send = async (deal: Deal, req: MoveInit, same: boolean, stageName: string) => {
    try {
      const r = await api.deals.moveDeal({ ...req, etag: latestEtag(deal.id, deal.etag) });
      // The answer's etag wherever the card is now (a later move may already have taken it elsewhere).
      if (r.deal) for (const s of pipeline?.stages ?? []) qc.setQueryData<Pages>(columnKey(s.id), (d) => replaceDeal(d, r.deal!));
      setNotice({ text: w(same ? "movedWithin" : "moved", { deal: deal.name, stage: stageName }) });
      void invalidate(DealService.method.getDeal, timelineOf);
    } catch (e) {
      const stale = ConnectError.from(e).code === Code.Aborted || ConnectError.from(e).code === Code.FailedPrecondition;
      setNotice({ text: stale ? w("staleMove", { deal: deal.name }) : recordError(e, words, deal.name), error: true });
      // Reload every column of the board: the deal may now be anywhere.
      await Promise.all((pipeline?.stages ?? []).map((s) => qc.invalidateQueries({ queryKey: columnKey(s.id) })));
      void invalidate(DealService.method.getDeal);
    }
  };

  if (!pipeline)
    return (
      <section aria-labelledby="board-title">
        <h1 id="board-title">{w("deals")}</h1>
        {isAdmin(session) ? (
          <p>
            {w("noPipeline")}{" "}
            <Link href="/pipelines" className="button">
              {w("createPipelineFirst")}
            </Link>
          </p>
        ) : (
          <p>{w("noPipelineMember")}</p>
        )}
      </section>
    );

  const dropOn = (stageId: string) => (e: DragEvent<HTMLElement>) => {
    e.preventDefault();
    const d = dragging;
    const to = target && target.stageId === stageId ? target : { stageId, index: cards(qc, stageId).filter((x) => x.id !== d?.deal.id).length };
    setDragging(undefined);
    setTarget(undefined);
    if (d) void move(d.deal, d.from, to);
  };
  const overColumn = (stageId: string) => (e: DragEvent<HTMLElement>) => {
    if (!dragging) return;
    e.preventDefault();
    e.dataTransfer.dropEffect = "move";
    const list = cards(qc, stageId).filter((x) => x.id !== dragging.deal.id);
    const card = (e.target as Element).closest<HTMLElement>("[data-deal-id]");
    let index = list.length;
    if (card && card.dataset.dealId !== dragging.deal.id) {
      const i = list.findIndex((x) => x.id === card.dataset.dealId);
      const r = card.getBoundingClientRect();
      if (i >= 0) index = e.clientY < r.top + r.height / 2 ? i : i + 1;
    } else if (card) {
      const i = cards(qc, stageId).findIndex((x) => x.id === dragging.deal.id);
      if (i >= 0) index = i;
    }
    if (target?.stageId !== stageId || target.index !== index) setTarget({ stageId, index });
  };

  return (
    <section aria-labelledby="board-title" className="board-page">
      <div className="list-head">
        <h1 id="board-title">{w("boardOf", { pipeline: pipeline.name })}</h1>
        {pipelines.length > 1 && (
          <label className="inline-label">
            <span>{w("pipeline")}</span>
            <select value={pipeline.id} onChange={(e) => set({ pipeline: e.target.value })}>
              {pipelines.map((p) => (
                <option key={p.id} value={p.id}>
                  {p.name}
                </option>
              ))}
            </select>
          </label>
        )}
        <Link href={`/deals/new?pipeline=${pipeline.id}`} className="button">
          {w("newDeal")}
        </Link>
        <Link href="/deals/list">{w("allDeals")}</Link>
        {isAdmin(session) && <Link href={`/pipelines?pipeline=${pipeline.id}`}>{w("pipelines")}</Link>}
      </div>
      <p role="status" className={notice?.error ? "visually-hidden" : "notice"}>
        {notice && !notice.error ? notice.text : ""}
      </p>
      {notice?.error && (
        <p role="alert" className="error">
          {notice.text}
        </p>
      )}
      <ListReadOnlyHint board show={!may.all} />
      <div className="board">
        {pipeline.stages.map((s, i) => (
          <Column
            key={s.id}
            stage={s}
            prev={pipeline.stages[i - 1]}
            next={pipeline.stages[i + 1]}
            words={words}
            dragging={dragging?.deal.id}
            target={target?.stageId === s.id ? target.index : undefined}
            onDragOver={overColumn(s.id)}
            onDrop={dropOn(s.id)}
            onStart={(deal) => setDragging({ deal, from: s.id })}
            onEnd={() => {
              setDragging(undefined);
              setTarget(undefined);
            }}
            onMove={(deal, to, control) => void move(deal, s.id, to, control)}
            focusAfter={focusAfter}
            pipeline={pipeline}
            canMove={may.change}
          />
        ))}
      </div>
    </section>
  );
}

function Column(props: {
  stage: Stage;
  prev: Stage | undefined;
  next: Stage | undefined;
  pipeline: Pipeline;
  words: Words;
  dragging: string | undefined;
  target: number | undefined;
  onDragOver(e: DragEvent<HTMLElement>): void;
  onDrop(e: DragEvent<HTMLElement>): void;
  onStart(d: Deal): void;
  onEnd(): void;
  onMove(d: Deal, to: Target, control: string): void;
  focusAfter: { current: { dealId: string; control: string } | undefined };
  canMove(d: Deal): boolean;
}) {
  const { stage: s, words } = props;
  const { w } = words;
  const list = useInfiniteQuery(DealService.method.listDeals, columnInput(s.id), { ...paging, staleTime: 2_000 });
  const deals = list.data?.pages.flatMap((p) => p.deals) ?? [];
  const first = list.data?.pages[0];
  const headingId = `stage-${s.id}`;
  const kind = s.kind === StageKind.WON ? "won" : s.kind === StageKind.LOST ? "lost" : "open";
  let rest = 0;
  const count = first ? w(first.totalIsExact ? "column" : "columnAbout", { stage: s.name, count: words.number(first.totalSize) }) : s.name;
  return (
    <section className={`column ${kind}`} aria-labelledby={headingId} data-stage-id={s.id} data-stage={s.name} onDragOver={props.onDragOver} onDrop={props.onDrop}>
      <h2 id={headingId} className="column-head">
        <span className="visually-hidden">{count}</span>
        <span aria-hidden="true">
          {s.name} <span className="count">{first ? (first.totalIsExact ? "" : "≈") + words.number(first.totalSize) : ""}</span>
        </span>
      </h2>
      {list.isPending ? (
        <p aria-busy="true">…</p>
      ) : (
        <ol className="cards">
          {deals.map((d) => {
            // The drop indicator's place counts the cards without the one being dragged.
            const mine = d.id === props.dragging;
            const indicator = !mine && props.target === rest;
            if (!mine) rest++;
            return <Card key={d.id} deal={d} column={deals} {...props} indicator={indicator} />;
          })}
          {props.target !== undefined && props.target >= rest && <li className="drop-indicator" aria-hidden="true" />}
          {deals.length === 0 && props.target === undefined && <li className="empty">{w("noDeals")}</li>}
        </ol>
      )}
      <LoadMore hasNext={Boolean(list.hasNextPage)} busy={list.isFetchingNextPage} onMore={() => void list.fetchNextPage()} label={w("loadMore")} />
    </section>
  );
}

function Card(props: Parameters<typeof Column>[0] & { deal: Deal; column: Deal[]; indicator: boolean }) {
  const { deal: d, words, stage } = props;
  const { w } = words;
  const company = useCompanyName(d.companyId);
  const [, navigate] = useLocation();
  const buttons = useRef<Record<string, HTMLButtonElement | null>>({});
  const canMove = props.canMove(d);
  const at = props.column.findIndex((x) => x.id === d.id);
  const above = props.column[at - 1];
  const below = props.column[at + 1];
  useEffect(() => {
    const f = props.focusAfter.current;
    if (f?.dealId === d.id) {
      props.focusAfter.current = undefined;
      (buttons.current[f.control] ?? buttons.current.open)?.focus();
    }
  });
  const moveButton = (control: string, label: string, arrow: string, to: Target | undefined) => (
    <button
      type="button"
      className="secondary tiny"
      ref={(el) => {
        buttons.current[control] = el;
      }}
      aria-label={label}
      title={label}
      disabled={!to}
      onClick={() => to && props.onMove(d, to, control)}
    >
      <span aria-hidden="true">{arrow}</span>
    </button>
  );
  return (
    <>
      {props.indicator && <li className="drop-indicator" aria-hidden="true" />}
      <li
        className={props.dragging === d.id ? "card dragging" : canMove ? "card" : "card locked"}
        draggable={canMove}
        data-deal-id={d.id}
        onDragStart={(e) => {
          if (!canMove) return e.preventDefault();
          e.dataTransfer.effectAllowed = "move";
          e.dataTransfer.setData("text/plain", d.id);
          props.onStart(d);
        }}
        onDragEnd={props.onEnd}
      >
        <a
          href={`/deals/${d.id}`}
          ref={(el) => {
            buttons.current.open = el as unknown as HTMLButtonElement;
          }}
          className="card-title"
          draggable={false}
          onClick={(e) => {
            if (e.ctrlKey || e.metaKey || e.shiftKey) return;
            e.preventDefault();
            navigate(`/deals/${d.id}`);
          }}
        >
          {d.name}
        </a>
        {d.amountMinor !== undefined && d.currencyCode && <p className="card-amount">{formatMoney(d.amountMinor, d.currencyCode, words.locale)}</p>}
        {(d.companyId || d.expectedCloseDate) && (
          <p className="card-meta">
            {d.companyId && company}
            {d.companyId && d.expectedCloseDate && " · "}
            {d.expectedCloseDate && formatDate(d.expectedCloseDate, words.locale)}
          </p>
        )}
        {canMove ? (
          <div className="card-moves" role="group" aria-label={d.name}>
            {props.prev && moveButton("left", w("moveLeft", { deal: d.name, stage: props.prev.name }), "←", { stageId: props.prev.id, index: 0 })}
            {moveButton("up", w("moveUp", { deal: d.name }), "↑", above && { stageId: stage.id, index: at - 1 })}
            {moveButton("down", w("moveDown", { deal: d.name }), "↓", below && { stageId: stage.id, index: at + 1 })}
            {props.next && moveButton("right", w("moveRight", { deal: d.name, stage: props.next.name }), "→", { stageId: props.next.id, index: 0 })}
          </div>
        ) : (
          <p className="card-moves">
            <ReadOnlyMark />
          </p>
        )}
      </li>
    </>
  );
}

/**
 * A record's timeline (TimelineService.ListTimeline): newest first, older pages on demand, each
 * entry with its actor, time and the fields it changed, before → after, in the reader's words:
 * stage and owner ids as names, amounts as money, dates per locale.
 */
import type { ReactNode } from "react";
import { createInfiniteQueryOptions, useInfiniteQuery, useQuery } from "@connectrpc/connect-query";
import { toJson, type JsonValue } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { ActorType, ObjectType } from "@crm/gen/crm/records/v1/common_pb";
import { TimelineAction, TimelineService, type FieldChange, type TimelineEntry } from "@crm/gen/crm/records/v1/timeline_pb";
import { PipelineService } from "@crm/gen/crm/records/v1/pipeline_pb";
import { queryClient } from "../../query";
import { transport } from "../../session";
import { CompanyLink, LoadMore, PersonLink, date, recordError, type Directory } from "./common";
import { formatDate, formatMoney } from "./format";
import { useWords, type RecordWord, type Words } from "./words";

export const timelineInput = (objectType: ObjectType, recordId: string) => ({ objectType, recordId, pageSize: 20, pageToken: "" });
export const timelinePaging = { pageParamKey: "pageToken", getNextPageParam: (last: { nextPageToken: string }) => last.nextPageToken || undefined } as const;

/** A record page's timeline, asked for with the record when the page opens at its address. */
export function prefetchTimeline(objectType: ObjectType, recordId: string): void {
  void queryClient.prefetchInfiniteQuery(createInfiniteQueryOptions(TimelineService.method.listTimeline, timelineInput(objectType, recordId), { transport, ...timelinePaging }));
}

const labels: Record<string, RecordWord> = {
  name: "name",
  domain: "domain",
  address: "address",
  industry: "industry",
  size: "size",
  tags: "tags",
  first_name: "firstName",
  last_name: "lastName",
  emails: "emails",
  phones: "phones",
  job_title: "jobTitle",
  companies: "f.companies",
  owner_id: "f.owner_id",
  pipeline_id: "f.pipeline_id",
  stage_id: "f.stage_id",
  position: "f.position",
  amount_minor: "f.amount_minor",
  currency_code: "f.currency_code",
  expected_close_date: "f.expected_close_date",
  status: "status",
  lost_reason: "f.lost_reason",
  company_id: "f.company_id",
  person_ids: "f.person_ids",
};

const actions: Record<number, RecordWord> = {
  [TimelineAction.CREATED]: "action.created",
  [TimelineAction.UPDATED]: "action.updated",
  [TimelineAction.DELETED]: "action.deleted",
  [TimelineAction.RESTORED]: "action.restored",
  [TimelineAction.STAGE_CHANGED]: "action.stage",
};

const json = (v: FieldChange["before"]): JsonValue => (v ? toJson(ValueSchema, v) : null);
const isEmpty = (v: JsonValue) => v === null || v === "" || (Array.isArray(v) && v.length === 0);

export function Timeline({ objectType, recordId, dir, currency }: { objectType: ObjectType; recordId: string; dir: Directory; currency?: string }) {
  const words = useWords();
  const { w } = words;
  const list = useInfiniteQuery(TimelineService.method.listTimeline, timelineInput(objectType, recordId), timelinePaging);
  // Stage and pipeline ids read as names (every pipeline, as the board reads them: usually cached).
  const pipelines = useQuery(PipelineService.method.listPipelines, { pageSize: 500 }, { enabled: objectType === ObjectType.DEAL, staleTime: 30_000 });
  const names = new Map<string, string>();
  for (const p of pipelines.data?.pipelines ?? []) {
    names.set(p.id, p.name);
    for (const s of p.stages) names.set(s.id, s.name);
  }
  const entries = list.data?.pages.flatMap((p) => p.entries) ?? [];
  return (
    <section className="timeline" aria-labelledby={`timeline-${recordId}`}>
      <h2 id={`timeline-${recordId}`}>{w("timeline")}</h2>
      {list.isPending ? (
        <p aria-busy="true">{words.t("app.loading")}</p>
      ) : list.error ? (
        <p role="alert" className="error">
          {recordError(list.error, words, "")}
        </p>
      ) : entries.length === 0 ? (
        <p>{w("noTimeline")}</p>
      ) : (
        <ol className="timeline-list">
          {entries.map((e) => (
            <Entry key={e.id} e={e} words={words} dir={dir} names={names} currency={currency} />
          ))}
        </ol>
      )}
      <LoadMore hasNext={Boolean(list.hasNextPage)} busy={list.isFetchingNextPage} onMore={() => void list.fetchNextPage()} label={w("older")} />
    </section>
  );
}

function actorName(e: TimelineEntry, words: Words, dir: Directory): string {
  switch (e.actor?.type) {
    case ActorType.API_KEY:
      return words.w("actor.apiKey");
    case ActorType.IMPORT:
      return words.w("actor.import");
    case ActorType.SYSTEM:
      return words.w("actor.system");
    default:
      return dir.name(e.actor?.id ?? "");
  }
}

function Entry({ e, words, dir, names, currency }: { e: TimelineEntry; words: Words; dir: Directory; names: Map<string, string>; currency: string | undefined }) {
  const { w } = words;
  const when = date(e.createTime);
  // An amount is money in the currency changed beside it, else the record's.
  const cur = e.changes.find((c) => c.field === "currency_code");
  const currencyOf = (side: "before" | "after") => {
    const v = cur ? json(cur[side]) : null;
    return typeof v === "string" && v ? v : (currency ?? "");
  };
  const value = (field: string, v: JsonValue, side: "before" | "after"): ReactNode => {
    if (isEmpty(v)) return w("empty");
    switch (field) {
      case "owner_id":
        return dir.name(String(v));
      case "stage_id":
      case "pipeline_id":
        return names.get(String(v)) ?? String(v).slice(0, 8);
      case "company_id":
        return <CompanyLink id={String(v)} />;
      case "person_ids":
        return Array.isArray(v) ? <List items={v.map((id) => <PersonLink key={String(id)} id={String(id)} />)} /> : String(v);
      case "companies":
        return Array.isArray(v) ? (
          <List
            items={v.map((l) => {
              // As the record's JSON has it (companyId), or as the store wrote it (company_id).
              const link = l as { companyId?: string; company_id?: string; role?: string };
              const id = link.companyId ?? link.company_id ?? "";
              return (
                <span key={id}>
                  <CompanyLink id={id} />
                  {link.role ? ` (${link.role})` : ""}
                </span>
              );
            })}
          />
        ) : (
          String(v)
        );
      case "amount_minor": {
        const c = currencyOf(side);
        try {
          return c ? formatMoney(BigInt(String(v)), c, words.locale) : words.number(BigInt(String(v)));
        } catch {
          return String(v);
        }
      }
      case "status": {
        const k = ({ open: "status.open", won: "status.won", lost: "status.lost" } as Record<string, RecordWord>)[String(v).toLowerCase().replace("deal_status_", "")];
        return k ? w(k) : String(v);
      }
      case "expected_close_date":
        return formatDate(String(v), words.locale);
      case "size":
        return typeof v === "number" ? words.number(v) : String(v);
      default:
        if (Array.isArray(v)) return v.map(String).join(", ");
        if (typeof v === "string" && /^\d{4}-\d\d-\d\dT/.test(v)) return words.dateTime(new Date(v));
        return typeof v === "object" ? JSON.stringify(v) : String(v);
    }
  };
  const key = actions[e.action];
  const changes = e.changes.filter((c) => !(e.action === TimelineAction.CREATED && c.field === "position"));
  return (
    <li className="timeline-entry" data-action={TimelineAction[e.action]?.toLowerCase()}>
      <p className="timeline-head">
        <strong>{key ? w(key, { actor: actorName(e, words, dir) }) : actorName(e, words, dir)}</strong>
        {when && (
          <>
            {" · "}
            <time dateTime={when.toISOString()}>{words.dateTime(when)}</time>
          </>
        )}
      </p>
      {changes.length > 0 && (
        <ul className="changes">
          {changes.map((c) => {
            const label = labels[c.field] ? w(labels[c.field]!) : c.field;
            if (c.field === "position") return <li key={c.field}>{label}</li>;
            const before = json(c.before);
            const after = json(c.after);
            return (
              <li key={c.field} data-field={c.field}>
                <span className="change-field">{label}:</span>{" "}
                {e.action !== TimelineAction.CREATED && (
                  <>
                    <del className="before">{value(c.field, before, "before")}</del>
                    {" → "}
                  </>
                )}
                <ins className="after">{value(c.field, after, "after")}</ins>
              </li>
            );
          })}
        </ul>
      )}
    </li>
  );
}

function List({ items }: { items: ReactNode[] }) {
  return (
    <>
      {items.map((it, i) => (
        <span key={i}>
          {i > 0 && ", "}
          {it}
        </span>
      ))}
    </>
  );
}

/**
 * The pipeline report (ReportService): per stage the deals, their value and the value weighted by
 * the stage's probability, in the company's base currency (amounts in currencies without an
 * exchange rate listed apart, never dropped); the win rate and the time deals spend in each stage
 * over a period. Owners and admins set the base currency and the exchange rates here.
 */
import { useId, useState, type FormEvent } from "react";
import { Link } from "wouter";
import { createQueryOptions, useQuery } from "@connectrpc/connect-query";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { ReportService, type UnconvertedAmount } from "@crm/gen/crm/records/v1/report_pb";
import { PipelineService, StageKind } from "@crm/gen/crm/records/v1/pipeline_pb";
import { isAdmin, transport, type Session } from "../../session";
import { queryClient as pageQueryClient } from "../../query";
import { Notice, pipelinesInput, recordError, useInvalidate, usePipelines, useSearchState } from "./common";
import { currencies, formatMoney } from "./format";
import { useWords, type Words } from "./words";

const reports = createClient(ReportService, transport);

const periods = [30, 90, 365] as const;

/** [start, end) of the last `days` days, to the minute (so the query key stays put while the page is open). */
function period(days: number) {
  const end = new Date(Math.ceil(Date.now() / 60_000) * 60_000);
  return { startTime: timestampFromDate(new Date(end.getTime() - days * 86_400_000)), endTime: timestampFromDate(end) };
}

/**
 * The report's calls, started when the page opens here (with Check): the pipelines, then the three
 * reports of the shown one; beside them the currency settings, which the screen shows when no base
 * currency is set yet (everyone may read them). Two round trips, not four.
 */
export function prefetch(_path: string, search: URLSearchParams): void {
  void pageQueryClient.prefetchQuery(createQueryOptions(ReportService.method.getCurrencySettings, {}, { transport }));
  void pageQueryClient.fetchQuery({ ...createQueryOptions(PipelineService.method.listPipelines, pipelinesInput, { transport }), staleTime: 30_000 }).then(
    (r) => {
      const pipelineId = search.get("pipeline") ?? r.pipelines[0]?.id;
      if (!pipelineId) return;
      const span = period(Number(search.get("days")) || 90);
      const opts = { transport };
      void pageQueryClient.prefetchQuery({ ...createQueryOptions(ReportService.method.getPipelineValue, { pipelineId }, opts), retry: false });
      void pageQueryClient.prefetchQuery({ ...createQueryOptions(ReportService.method.getWinRate, { pipelineId, ...span }, opts), retry: false });
      void pageQueryClient.prefetchQuery({ ...createQueryOptions(ReportService.method.getTimeInStage, { pipelineId, ...span }, opts), retry: false });
    },
    () => {}, // the screen asks again and shows the error
  );
}

function duration(seconds: number, words: Words): string {
  if (!seconds) return "—";
  const days = seconds / 86_400;
  if (days >= 1) return words.w("days", { n: words.number(Math.round(days * 10) / 10) });
  return words.w("hours", { n: words.number(Math.round((seconds / 3600) * 10) / 10) });
}

function Unconverted({ list, words }: { list: UnconvertedAmount[]; words: Words }) {
  if (list.length === 0) return null;
  return <span className="hint"> {words.w("unconverted", { amounts: list.map((u) => `${formatMoney(u.amountMinor, u.currencyCode, words.locale)} (${words.number(u.dealCount)})`).join(", ") })}</span>;
}

export function PipelineReport({ session }: { session: Session }) {
  const words = useWords();
  const { w, t } = words;
  const id = useId();
  const [params, set] = useSearchState();
  const { pipelines, q: pq } = usePipelines();
  const pipelineId = params.get("pipeline") ?? pipelines[0]?.id ?? "";
  const days = Number(params.get("days")) || 90;
  const [range] = useState(() => new Map<number, ReturnType<typeof period>>());
  if (!range.has(days)) range.set(days, period(days));
  const span = range.get(days)!;
  const enabled = Boolean(pipelineId);
  // Not asked again on mount when the early call (prefetch) failed: "no base currency" shows at once.
  const value = useQuery(ReportService.method.getPipelineValue, { pipelineId }, { enabled, retry: false, retryOnMount: false });
  const wins = useQuery(ReportService.method.getWinRate, { pipelineId, ...span }, { enabled, retry: false, retryOnMount: false });
  const times = useQuery(ReportService.method.getTimeInStage, { pipelineId, ...span }, { enabled, retry: false, retryOnMount: false });
  const noBase = value.error && ConnectError.from(value.error).code === Code.FailedPrecondition;
  const v = value.data;
  const max = Math.max(1, ...(v?.stages ?? []).map((s) => Number(s.amountMinor)));
  const money = (minor: bigint) => (v ? formatMoney(minor, v.baseCurrencyCode, words.locale) : "");

  if (pq.isPending) return <p aria-busy="true">{t("app.loading")}</p>;
  if (pipelines.length === 0)
    return (
      <section aria-labelledby="report-title">
        <h1 id="report-title">{w("report")}</h1>
        <p>
          {w("noPipeline")} <Link href="/pipelines">{w("pipelines")}</Link>
        </p>
      </section>
    );
  return (
    <section aria-labelledby="report-title" className="report">
      <div className="list-head">
        <h1 id="report-title">{w("report")}</h1>
        <Link href={`/deals?pipeline=${pipelineId}`}>{w("openBoard")}</Link>
      </div>
      <form className="filters" aria-label={w("filters")} onSubmit={(e) => e.preventDefault()}>
        <div className="field">
          <label htmlFor={`${id}-p`}>{w("pipeline")}</label>
          <select id={`${id}-p`} value={pipelineId} onChange={(e) => set({ pipeline: e.target.value })}>
            {pipelines.map((p) => (
              <option key={p.id} value={p.id}>
                {p.name}
              </option>
            ))}
          </select>
        </div>
        <div className="field">
          <label htmlFor={`${id}-d`}>{w("period")}</label>
          <select id={`${id}-d`} value={days} onChange={(e) => set({ days: e.target.value })}>
            {periods.map((d) => (
              <option key={d} value={d}>
                {w("lastDays", { n: d })}
              </option>
            ))}
          </select>
        </div>
      </form>
      {noBase ? (
        <>
          <p role="status" className="notice">
            {w("needBase")}
          </p>
          {isAdmin(session) ? <CurrencySettings /> : <p>{w("askAdmin")}</p>}
        </>
      ) : value.error ? (
        <p role="alert" className="error">
          {recordError(value.error, words, "")}
        </p>
      ) : !v ? (
        <p aria-busy="true">{t("app.loading")}</p>
      ) : (
        <>
          <section aria-labelledby="value-title" className="report-box">
            <h2 id="value-title">{w("pipelineValue", { currency: v.baseCurrencyCode })}</h2>
            <table className="records compact">
              <thead>
                <tr>
                  <th scope="col">{w("stage")}</th>
                  <th scope="col">{w("dealsCount")}</th>
                  <th scope="col">{w("amount")}</th>
                  <th scope="col">{w("weighted")}</th>
                  <th scope="col">
                    <span className="visually-hidden">{w("share")}</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {v.stages.map((s) => (
                  <tr key={s.stageId} data-stage={s.name}>
                    <th scope="row">
                      {s.name}
                      {s.kind === StageKind.OPEN ? <span className="hint"> {words.number(s.probability)} %</span> : null}
                    </th>
                    <td className="num">{words.number(s.dealCount)}</td>
                    <td className="num">
                      {money(s.amountMinor)}
                      <Unconverted list={s.unconverted} words={words} />
                    </td>
                    <td className="num">{money(s.weightedAmountMinor)}</td>
                    <td>
                      <meter min={0} max={max} value={Number(s.amountMinor)} aria-label={w("shareOf", { stage: s.name })} />
                    </td>
                  </tr>
                ))}
              </tbody>
              <tfoot>
                <tr>
                  <th scope="row">{w("openTotal")}</th>
                  <td className="num">{words.number(v.openDealCount)}</td>
                  <td className="num">
                    {money(v.openAmountMinor)}
                    <Unconverted list={v.openUnconverted} words={words} />
                  </td>
                  <td className="num">{money(v.openWeightedAmountMinor)}</td>
                  <td />
                </tr>
              </tfoot>
            </table>
          </section>
          <div className="report-grid">
            <section aria-labelledby="wins-title" className="report-box">
              <h2 id="wins-title">{w("winRate")}</h2>
              {wins.data ? (
                <dl className="facts">
                  <dt>{w("winRateByCount")}</dt>
                  <dd>{new Intl.NumberFormat(words.locale, { style: "percent", maximumFractionDigits: 1 }).format(wins.data.winRate)}</dd>
                  <dt>{w("winRateByValue")}</dt>
                  <dd>{new Intl.NumberFormat(words.locale, { style: "percent", maximumFractionDigits: 1 }).format(wins.data.winRateByValue)}</dd>
                  <dt>{w("wonDeals")}</dt>
                  <dd>
                    {words.number(wins.data.wonCount)} · {money(wins.data.wonAmountMinor)}
                    <Unconverted list={wins.data.wonUnconverted} words={words} />
                  </dd>
                  <dt>{w("lostDeals")}</dt>
                  <dd>
                    {words.number(wins.data.lostCount)} · {money(wins.data.lostAmountMinor)}
                    <Unconverted list={wins.data.lostUnconverted} words={words} />
                  </dd>
                </dl>
              ) : (
                <p>{wins.error ? recordError(wins.error, words, "") : "…"}</p>
              )}
            </section>
            <section aria-labelledby="times-title" className="report-box">
              <h2 id="times-title">{w("timeInStage")}</h2>
              {times.data ? (
                <table className="records compact">
                  <thead>
                    <tr>
                      <th scope="col">{w("stage")}</th>
                      <th scope="col">{w("staysEnded")}</th>
                      <th scope="col">{w("average")}</th>
                      <th scope="col">{w("median")}</th>
                      <th scope="col">{w("there now")}</th>
                    </tr>
                  </thead>
                  <tbody>
                    {times.data.stages.map((s) => (
                      <tr key={s.stageId}>
                        <th scope="row">{s.name}</th>
                        <td className="num">{words.number(s.completedCount)}</td>
                        <td className="num">{duration(s.averageSeconds, words)}</td>
                        <td className="num">{duration(s.medianSeconds, words)}</td>
                        <td className="num">
                          {words.number(s.currentCount)}
                          {s.currentCount > 0n ? ` · ${duration(s.currentAverageSeconds, words)}` : ""}
                        </td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              ) : (
                <p>{times.error ? recordError(times.error, words, "") : "…"}</p>
              )}
            </section>
          </div>
          {isAdmin(session) && (
            <details className="report-box">
              <summary>{w("currencySettings")}</summary>
              <CurrencySettings />
            </details>
          )}
        </>
      )}
    </section>
  );
}

/** The base currency and the exchange rates (owners and admins). */
function CurrencySettings() {
  const words = useWords();
  const { w } = words;
  const id = useId();
  const invalidate = useInvalidate();
  const settings = useQuery(ReportService.method.getCurrencySettings, {});
  const [base, setBase] = useState("");
  const [code, setCode] = useState("");
  const [rate, setRate] = useState("");
  const [notice, setNotice] = useState<{ text: string; error?: boolean }>();
  const all = currencies();
  const after = () => invalidate(ReportService.method.getCurrencySettings, ReportService.method.getPipelineValue, ReportService.method.getWinRate);
  const run = async (f: () => Promise<string>) => {
    try {
      setNotice({ text: await f() });
    } catch (e) {
      setNotice({ text: recordError(e, words, ""), error: true });
    }
    await after();
  };
  const current = settings.data?.baseCurrencyCode ?? "";
  const saveBase = (e: FormEvent) => {
    e.preventDefault();
    void run(async () => {
      const r = await reports.setBaseCurrency({ baseCurrencyCode: base || current || "EUR" });
      return w("baseSaved", { currency: r.baseCurrencyCode });
    });
  };
  const saveRate = (e: FormEvent) => {
    e.preventDefault();
    void run(async () => {
      await reports.setExchangeRate({ currencyCode: code, rate: rate.trim().replace(",", ".") });
      setRate("");
      return w("rateSaved", { currency: code });
    });
  };
  return (
    <div className="currency-settings">
      <Notice notice={notice} />
      <form onSubmit={saveBase} className="inline-form">
        <div className="field">
          <label htmlFor={`${id}-base`}>{w("baseCurrency")}</label>
          <select id={`${id}-base`} value={base || current || "EUR"} onChange={(e) => setBase(e.target.value)}>
            {all.map((c) => (
              <option key={c} value={c}>
                {c}
              </option>
            ))}
          </select>
        </div>
        <button type="submit">{w("saveBase")}</button>
      </form>
      {current && (
        <>
          <ul className="rates">
            {(settings.data?.rates ?? []).map((r) => (
              <li key={r.currencyCode}>{w("rateIs", { currency: r.currencyCode, rate: r.rate, base: current })}</li>
            ))}
          </ul>
          <form onSubmit={saveRate} className="inline-form">
            <div className="field">
              <label htmlFor={`${id}-code`}>{w("rateCurrency")}</label>
              <select id={`${id}-code`} value={code} onChange={(e) => setCode(e.target.value)}>
                <option value="">{w("none")}</option>
                {all
                  .filter((c) => c !== current)
                  .map((c) => (
                    <option key={c} value={c}>
                      {c}
                    </option>
                  ))}
              </select>
            </div>
            <div className="field">
              <label htmlFor={`${id}-rate`}>{w("rateValue", { base: current })}</label>
              <input id={`${id}-rate`} inputMode="decimal" value={rate} onChange={(e) => setRate(e.target.value)} />
            </div>
            <button type="submit" disabled={!code || !rate.trim()}>
              {w("saveRate")}
            </button>
          </form>
        </>
      )}
    </div>
  );
}

/** Start/stop (or switch) the timer, and this week's entries (Monday to Monday, local time). */
import { useId, useMemo, useState, type FormEvent } from "react";
import { useMutation, useQuery } from "@connectrpc/connect-query";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { TimerService } from "@crm/gen/crm/timer/v1/timer_pb";
import { useI18n } from "../i18n";
import { describeError } from "../errors";
import { useNow, useTimersChanged } from "./RunningClock";
import { weekInputs, weekStart } from "../prefetch";

export { weekStart };

export function Timers() {
  const i18n = useI18n();
  const { t } = i18n;
  const inputId = useId();
  const [description, setDescription] = useState("");
  const changed = useTimersChanged();
  // Opening the screen always reads the timers afresh (they may have changed on another device).
  const working = useQuery(TimerService.method.getWorkingTimer, {}, { staleTime: 2_000 });
  const running = working.data?.timer;
  const start = useMutation(TimerService.method.startTimer, {
    onSuccess: () => {
      setDescription("");
      return changed();
    },
  });
  const stop = useMutation(TimerService.method.endTimer, { onSuccess: changed });

  // The week is fixed for the life of the page; a page left open over Sunday night shows last week.
  const range = useMemo(() => weekInputs(weekStart(new Date())).list, []);
  // Fresh on every visit (another device may have changed them), but not twice on the page's first.
  const list = useQuery(TimerService.method.listTimers, range, { staleTime: 2_000 });
  const now = useNow(Boolean(running));
  const rows = (list.data?.timers ?? []).map((e) => {
    const startAt = e.startTime ? timestampDate(e.startTime) : undefined;
    const endAt = e.endTime ? timestampDate(e.endTime) : undefined;
    const ms = startAt ? (endAt ?? new Date(now)).getTime() - startAt.getTime() : 0;
    return { e, startAt, endAt, ms };
  });
  const total = rows.reduce((sum, r) => sum + r.ms, 0);

  const onStart = (e: FormEvent) => {
    e.preventDefault();
    start.mutate({ description: description.trim() });
  };
  const error = start.error ?? stop.error ?? list.error;

  return (
    <section aria-labelledby="timers-title">
      <h1 id="timers-title">{t("timers.title")}</h1>
      <form className="timer-form" onSubmit={onStart}>
        <div className="field">
          <label htmlFor={inputId}>{t("timers.what")}</label>
          <input id={inputId} name="description" maxLength={1000} value={description} onChange={(e) => setDescription(e.target.value)} />
        </div>
        <button type="submit" disabled={start.isPending}>
          {running ? t("timer.switch") : t("timer.start")}
        </button>
        {running && (
          <button type="button" className="secondary" onClick={() => stop.mutate({})} disabled={stop.isPending}>
            {t("timer.stop")}
          </button>
        )}
      </form>
      {error && (
        <p role="alert" className="error">
          {describeError(error, i18n)}
        </p>
      )}
      <h2>{t("timers.week")}</h2>
      {list.isPending ? (
        <p aria-busy="true">{t("app.loading")}</p>
      ) : rows.length === 0 ? (
        <p>{t("timers.empty")}</p>
      ) : (
        <table className="entries">
          <caption>{t("timers.weekTotal", { total: i18n.hours(total) })}</caption>
          <thead>
            <tr>
              <th scope="col">{t("timers.day")}</th>
              <th scope="col">{t("timers.description")}</th>
              <th scope="col">{t("timers.start")}</th>
              <th scope="col">{t("timers.end")}</th>
              <th scope="col">{t("timers.duration")}</th>
            </tr>
          </thead>
          <tbody>
            {rows.map(({ e, startAt, endAt, ms }) => (
              <tr key={e.timerId} className={endAt ? undefined : "running"}>
                <td>{startAt && i18n.day(startAt)}</td>
                <td>{e.description || t("timers.noDescription")}</td>
                <td>{startAt && i18n.time(startAt)}</td>
                <td>{endAt ? i18n.time(endAt) : t("timers.now")}</td>
                <td className="num">{i18n.clock(ms)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

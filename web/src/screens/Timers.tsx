/**
 * Timers: start, switch and stop the timer; a weekly timesheet (`/timers?week=YYYY-MM-DD`, Monday
 * to Monday in local time, earlier weeks a click away) with the time per day as a chart and a
 * table (GetReport in the browser's time zone, so a day across a DST change is as long as it
 * was), and the week's entries, each editable in place (ChangeTimer: description, start, end;
 * setting the end of the running one stops it), plus entries added after the fact (AddTimer).
 * The server's reasons (overlaps, more than 24 hours, a time in the future) appear beside the
 * fields they concern. A chunk of its own, with its own words.
 */
import { useId, useMemo, useState, type FormEvent } from "react";
import { useLocation, useSearch } from "wouter";
import { useMutation, useQuery } from "@connectrpc/connect-query";
import { timestampDate, timestampFromDate, type Duration } from "@bufbuild/protobuf/wkt";
import { TimerService, type Timer } from "@crm/gen/crm/timer/v1/timer_pb";
import { useI18n } from "../i18n";
import { describeError, formErrors } from "../errors";
import { Field, FormError } from "../forms";
import { addDays, weekInputs, weekOf, weekStart } from "../prefetch";
import { useNow, useTimersChanged } from "./RunningClock";
import { WeekChart } from "./WeekChart";

const enWords = {
  weeks: "Weeks",
  previous: "Previous week",
  next: "Next week",
  current: "This week",
  weekOf: "Week of {range}",
  perDay: "Time per day",
  chart: "Hours worked per day, {range}",
  dayTotal: "Total",
  entries: "Entries",
  actions: "Actions",
  edit: "Edit",
  editOne: "Edit the entry {what}, {when}",
  save: "Save",
  cancel: "Cancel",
  add: "Add an entry",
  addTitle: "Add a finished entry",
  addSubmit: "Add the entry",
  startAt: "Start",
  endAt: "End",
  endRunning: "End (empty: keeps running)",
  saved: "The entry is saved.",
  added: "The entry is added.",
  noChange: "Nothing changed.",
  endBeforeStart: "The end must come after the start.",
};
type Word = keyof typeof enWords;
const ruWords: Record<Word, string> = {
  weeks: "Недели",
  previous: "Предыдущая неделя",
  next: "Следующая неделя",
  current: "Эта неделя",
  weekOf: "Неделя {range}",
  perDay: "Время по дням",
  chart: "Часы работы по дням, {range}",
  dayTotal: "Итого",
  entries: "Записи",
  actions: "Действия",
  edit: "Изменить",
  editOne: "Изменить запись {what}, {when}",
  save: "Сохранить",
  cancel: "Отмена",
  add: "Добавить запись",
  addTitle: "Добавить завершённую запись",
  addSubmit: "Добавить запись",
  startAt: "Начало",
  endAt: "Конец",
  endRunning: "Конец (пусто: таймер идёт)",
  saved: "Запись сохранена.",
  added: "Запись добавлена.",
  noChange: "Ничего не изменилось.",
  endBeforeStart: "Конец должен быть позже начала.",
};

/** This chunk's words and formats, beside the console's own. */
function useWords() {
  const i18n = useI18n();
  return useMemo(() => {
    const dict = i18n.locale === "ru" ? ruWords : enWords;
    const range = new Intl.DateTimeFormat(i18n.locale, { day: "numeric", month: "long", year: "numeric" });
    const hoursPart = new Intl.NumberFormat(i18n.locale, { style: "unit", unit: "hour", unitDisplay: "narrow" });
    const minutesPart = new Intl.NumberFormat(i18n.locale, { style: "unit", unit: "minute", unitDisplay: "short" });
    return {
      i18n,
      t: i18n.t,
      w: (key: Word, params?: Record<string, string | number>) => i18n.format(dict[key], params),
      /** 30 November – 6 December 2026 / 30 ноября – 6 декабря 2026 г. */
      range: (from: Date, to: Date) => range.formatRange(from, to),
      /** 2h 5 min / 2 ч 5 мин; under an hour: 45 min */
      duration(ms: number) {
        const minutes = Math.max(0, Math.round(ms / 60_000));
        const h = Math.floor(minutes / 60);
        const m = minutes % 60;
        return h ? `${hoursPart.format(h)} ${minutesPart.format(m)}` : minutesPart.format(m);
      },
    };
  }, [i18n]);
}
type Words = ReturnType<typeof useWords>;

/** YYYY-MM-DD of a local date (the week's address and GetReport's period labels). */
export function isoDay(d: Date): string {
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`;
}

/** The value of an <input type="datetime-local"> for `d`, to the minute, local time. */
export function localInput(d: Date | undefined): string {
  if (!d) return "";
  return `${isoDay(d)}T${String(d.getHours()).padStart(2, "0")}:${String(d.getMinutes()).padStart(2, "0")}`;
}

/** A datetime-local value as a Date (local time); undefined when empty or not a date. */
export function fromLocalInput(v: string): Date | undefined {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2}))?$/.exec(v);
  if (!m) return undefined;
  const d = new Date(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6] ?? 0));
  return Number.isNaN(d.getTime()) ? undefined : d;
}

const durationMs = (d: Duration | undefined) => (d ? Number(d.seconds) * 1000 + Math.floor(d.nanos / 1e6) : 0);

export function Timers() {
  const words = useWords();
  const { i18n, t, w } = words;
  const [, navigate] = useLocation();
  const search = useSearch();
  const monday = weekOf(new URLSearchParams(search).get("week"));
  const thisMonday = weekStart(new Date());
  const isCurrent = monday.getTime() === thisMonday.getTime();
  const sunday = addDays(monday, 6);
  const inputs = useMemo(() => weekInputs(new Date(monday)), [monday.getTime()]); // eslint-disable-line react-hooks/exhaustive-deps

  const changed = useTimersChanged();
  // Fresh on every visit (another device may have changed them), but not twice on the page's first.
  const working = useQuery(TimerService.method.getWorkingTimer, {}, { staleTime: 2_000 });
  const running = working.data?.timer;
  const list = useQuery(TimerService.method.listTimers, inputs.list, { staleTime: 2_000 });
  const report = useQuery(TimerService.method.getReport, inputs.report, { staleTime: 2_000, refetchInterval: running ? 60_000 : false });
  const now = useNow(Boolean(running));

  const rows = (list.data?.timers ?? []).map((e) => {
    const startAt = e.startTime ? timestampDate(e.startTime) : undefined;
    const endAt = e.endTime ? timestampDate(e.endTime) : undefined;
    const ms = startAt ? (endAt ?? new Date(now)).getTime() - startAt.getTime() : 0;
    return { e, startAt, endAt, ms };
  });

  // Per day from the server's report; the running timer's day grows with the clock between reports.
  const today = isoDay(new Date(now));
  const sinceReport = running && report.dataUpdatedAt ? Math.max(0, now - report.dataUpdatedAt) : 0;
  const days = (report.data?.periods ?? []).map((p) => {
    const start = p.start ? timestampDate(p.start) : new Date();
    return { label: p.label, date: start, ms: durationMs(p.total) + (p.label === today ? sinceReport : 0), today: p.label === today };
  });
  const total = days.length ? days.reduce((s, d) => s + d.ms, 0) : rows.reduce((s, r) => s + r.ms, 0);

  const goWeek = (d: Date) => navigate(d.getTime() === thisMonday.getTime() ? "/timers" : `/timers?week=${isoDay(d)}`);
  const error = list.error ?? report.error;
  const [notice, setNotice] = useState<string>();
  const [editing, setEditing] = useState<string>();
  const [adding, setAdding] = useState(false);
  const ready = !list.isPending && !report.isPending;

  return (
    <section aria-labelledby="timers-title" className="timers" aria-busy={!ready}>
      <h1 id="timers-title">{t("timers.title")}</h1>
      <StartForm running={running} onChanged={changed} />

      <div className="week-head">
        <h2 id="week-title">{w("weekOf", { range: words.range(monday, sunday) })}</h2>
        <nav aria-label={w("weeks")} className="week-nav">
          <button type="button" className="secondary" onClick={() => goWeek(addDays(monday, -7))}>
            ← {w("previous")}
          </button>
          <button type="button" className="secondary" onClick={() => goWeek(thisMonday)} disabled={isCurrent}>
            {w("current")}
          </button>
          <button type="button" className="secondary" onClick={() => goWeek(addDays(monday, 7))} disabled={isCurrent}>
            {w("next")} →
          </button>
        </nav>
      </div>
      {error && (
        <p role="alert" className="error">
          {describeError(error, i18n)}
        </p>
      )}
      {notice && (
        <p role="status" className="notice">
          {notice}
        </p>
      )}

      <h3 id="per-day-title">{w("perDay")}</h3>
      {report.isPending ? (
        <p aria-busy="true">{t("app.loading")}</p>
      ) : (
        <div className="per-day">
          <WeekChart days={days} title={w("chart", { range: words.range(monday, sunday) })} i18n={i18n} />
          <table className="day-totals" aria-labelledby="per-day-title">
            <thead>
              <tr>
                <th scope="col">{t("timers.day")}</th>
                <th scope="col">{t("timers.duration")}</th>
              </tr>
            </thead>
            <tbody>
              {days.map((d) => (
                <tr key={d.label} className={d.today ? "today" : undefined}>
                  <th scope="row">{i18n.day(d.date)}</th>
                  <td className="num">{words.duration(d.ms)}</td>
                </tr>
              ))}
            </tbody>
            <tfoot>
              <tr>
                <th scope="row">{w("dayTotal")}</th>
                <td className="num">{words.duration(total)}</td>
              </tr>
            </tfoot>
          </table>
        </div>
      )}

      <div className="entries-head">
        <h3 id="entries-title">{w("entries")}</h3>
        {!adding && (
          <button type="button" className="secondary" onClick={() => (setAdding(true), setNotice(undefined))}>
            {w("add")}
          </button>
        )}
      </div>
      {adding && (
        <AddForm
          words={words}
          monday={monday}
          isCurrent={isCurrent}
          onDone={(added) => {
            setAdding(false);
            if (added) {
              setNotice(w("added"));
              void changed();
            }
          }}
        />
      )}
      {list.isPending ? (
        <p aria-busy="true">{t("app.loading")}</p>
      ) : rows.length === 0 ? (
        <p className="timers-empty">{t("timers.empty")}</p>
      ) : (
        <table className="entries" aria-describedby="entries-title">
          <caption>{t("timers.weekTotal", { total: i18n.hours(total) })}</caption>
          <thead>
            <tr>
              <th scope="col">{t("timers.day")}</th>
              <th scope="col">{t("timers.description")}</th>
              <th scope="col">{t("timers.start")}</th>
              <th scope="col">{t("timers.end")}</th>
              <th scope="col">{t("timers.duration")}</th>
              <th scope="col">
                <span className="visually-hidden">{w("actions")}</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {rows.map(({ e, startAt, endAt, ms }) =>
              editing === e.timerId ? (
                <tr key={e.timerId} className="editing">
                  <td colSpan={6}>
                    <EditForm
                      entry={e}
                      words={words}
                      onDone={(saved) => {
                        setEditing(undefined);
                        if (saved) {
                          setNotice(w(saved === "same" ? "noChange" : "saved"));
                          if (saved !== "same") void changed();
                        }
                      }}
                    />
                  </td>
                </tr>
              ) : (
                <tr key={e.timerId} className={endAt ? undefined : "running"} data-timer={e.timerId}>
                  <td>{startAt && i18n.day(startAt)}</td>
                  <td>{e.description || t("timers.noDescription")}</td>
                  <td>{startAt && i18n.time(startAt)}</td>
                  <td>{endAt ? i18n.time(endAt) : t("timers.now")}</td>
                  <td className="num">{i18n.clock(ms)}</td>
                  <td>
                    <button
                      type="button"
                      className="secondary small"
                      aria-label={w("editOne", { what: e.description || t("timers.noDescription"), when: startAt ? i18n.dateTime(startAt) : "" })}
                      onClick={() => (setEditing(e.timerId), setAdding(false), setNotice(undefined))}
                    >
                      {w("edit")}
                    </button>
                  </td>
                </tr>
              ),
            )}
          </tbody>
        </table>
      )}
    </section>
  );
}

function StartForm({ running, onChanged }: { running: Timer | undefined; onChanged: () => Promise<unknown> }) {
  const i18n = useI18n();
  const { t } = i18n;
  const inputId = useId();
  const [description, setDescription] = useState("");
  const start = useMutation(TimerService.method.startTimer, {
    onSuccess: () => {
      setDescription("");
      return onChanged();
    },
  });
  const stop = useMutation(TimerService.method.endTimer, { onSuccess: onChanged });
  const onStart = (e: FormEvent) => {
    e.preventDefault();
    start.mutate({ description: description.trim() });
  };
  const error = start.error ?? stop.error;
  return (
    <>
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
    </>
  );
}

/** The server's field names → this form's. */
const entryFields = { description: "description", startTime: "start", endTime: "end" };

function useEntryForm(words: Words) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();
  const [fieldError, setFieldError] = useState<Record<string, string>>({});
  const run = async (form: HTMLFormElement, action: () => Promise<void>) => {
    setBusy(true);
    setError(undefined);
    setFieldError({});
    try {
      await action();
    } catch (e) {
      const r = e instanceof EndBeforeStart ? { form: words.w("endBeforeStart"), fields: { end: words.w("endBeforeStart") } } : formErrors(e, words.i18n, entryFields);
      setFieldError(r.fields);
      setError(r.form);
      setTimeout(() => form.querySelector<HTMLElement>('[aria-invalid="true"]')?.focus(), 0);
    } finally {
      setBusy(false);
    }
  };
  return { busy, error, fieldError, run };
}

class EndBeforeStart extends Error {}

function EditForm({ entry, words, onDone }: { entry: Timer; words: Words; onDone(saved?: "saved" | "same"): void }) {
  const { w, t } = words;
  const startAt = entry.startTime ? timestampDate(entry.startTime) : undefined;
  const endAt = entry.endTime ? timestampDate(entry.endTime) : undefined;
  const initial = { description: entry.description, start: localInput(startAt), end: localInput(endAt) };
  const [f, setF] = useState(initial);
  const change = useMutation(TimerService.method.changeTimer);
  const { busy, error, fieldError, run } = useEntryForm(words);
  const onSubmit = (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    void run(e.currentTarget, async () => {
      // Only what changed is sent: an untouched time keeps its seconds.
      const start = f.start !== initial.start ? fromLocalInput(f.start) : undefined;
      const end = f.end !== initial.end && f.end ? fromLocalInput(f.end) : undefined;
      const description = f.description !== initial.description ? f.description.trim() : undefined;
      if (!start && !end && description === undefined) return onDone("same");
      const s = start ?? startAt;
      const en = end ?? endAt;
      if (s && en && en <= s) throw new EndBeforeStart();
      await change.mutateAsync({
        timerId: entry.timerId,
        ...(description !== undefined ? { description } : {}),
        ...(start ? { startTime: timestampFromDate(start) } : {}),
        ...(end ? { endTime: timestampFromDate(end) } : {}),
      });
      onDone("saved");
    });
  };
  return (
    <form className="entry-form" onSubmit={onSubmit} aria-busy={busy} aria-label={w("editOne", { what: entry.description || t("timers.noDescription"), when: startAt ? words.i18n.dateTime(startAt) : "" })}>
      <Field label={t("timers.description")} name="description" autoComplete="off" required={false} value={f.description} onChange={(v) => setF({ ...f, description: v })} error={fieldError.description} />
      <Field label={w("startAt")} name="start" type="datetime-local" autoComplete="off" value={f.start} onChange={(v) => setF({ ...f, start: v })} error={fieldError.start} />
      <Field label={endAt ? w("endAt") : w("endRunning")} name="end" type="datetime-local" autoComplete="off" required={Boolean(endAt)} value={f.end} onChange={(v) => setF({ ...f, end: v })} error={fieldError.end} />
      <FormError text={error} />
      <div className="buttons">
        <button type="submit" disabled={busy}>
          {w("save")}
        </button>
        <button type="button" className="secondary" onClick={() => onDone()}>
          {w("cancel")}
        </button>
      </div>
    </form>
  );
}

function AddForm({ words, monday, isCurrent, onDone }: { words: Words; monday: Date; isCurrent: boolean; onDone(added: boolean): void }) {
  const { w, t } = words;
  // This week: the hour up to now; an earlier week: its Monday, 9 to 10.
  const [f, setF] = useState(() => {
    const end = isCurrent ? new Date() : new Date(monday.getFullYear(), monday.getMonth(), monday.getDate(), 10);
    end.setSeconds(0, 0);
    return { description: "", start: localInput(new Date(end.getTime() - 3_600_000)), end: localInput(end) };
  });
  const add = useMutation(TimerService.method.addTimer);
  const { busy, error, fieldError, run } = useEntryForm(words);
  const titleId = useId();
  const onSubmit = (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    void run(e.currentTarget, async () => {
      const start = fromLocalInput(f.start);
      const end = fromLocalInput(f.end);
      if (start && end && end <= start) throw new EndBeforeStart();
      await add.mutateAsync({ description: f.description.trim(), ...(start ? { startTime: timestampFromDate(start) } : {}), ...(end ? { endTime: timestampFromDate(end) } : {}) });
      onDone(true);
    });
  };
  return (
    <form className="entry-form add" onSubmit={onSubmit} aria-busy={busy} aria-labelledby={titleId}>
      <h4 id={titleId}>{w("addTitle")}</h4>
      <Field label={t("timers.description")} name="description" autoComplete="off" required={false} value={f.description} onChange={(v) => setF({ ...f, description: v })} error={fieldError.description} />
      <Field label={w("startAt")} name="start" type="datetime-local" autoComplete="off" value={f.start} onChange={(v) => setF({ ...f, start: v })} error={fieldError.start} />
      <Field label={w("endAt")} name="end" type="datetime-local" autoComplete="off" value={f.end} onChange={(v) => setF({ ...f, end: v })} error={fieldError.end} />
      <FormError text={error} />
      <div className="buttons">
        <button type="submit" disabled={busy}>
          {w("addSubmit")}
        </button>
        <button type="button" className="secondary" onClick={() => onDone(false)}>
          {w("cancel")}
        </button>
      </div>
    </form>
  );
}

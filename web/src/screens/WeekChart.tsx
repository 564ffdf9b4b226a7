/**
 * The timesheet's chart: one bar per day of the week, hours on the left axis, today marked. Plain
 * SVG drawn here (a chart library would outweigh the rest of the timers chunk several times for
 * seven bars). Its numbers are also in the table beside it, which is what a screen reader reads;
 * the picture itself is one labelled image.
 */
import { useId, useMemo } from "react";
import type { I18n } from "../i18n";

export interface ChartDay {
  label: string;
  date: Date;
  ms: number;
  today: boolean;
}

const W = 560;
const H = 220;
const pad = { left: 48, right: 8, top: 22, bottom: 42 };

/** Hours per grid line, so that 3–6 lines cover the longest day. */
export function niceStep(maxHours: number): number {
  for (const s of [1, 2, 3, 4, 6, 8, 12]) if (maxHours / s <= 5) return s;
  return 24;
}

export function WeekChart({ days, title, i18n }: { days: ChartDay[]; title: string; i18n: I18n }) {
  const titleId = useId();
  const fmt = useMemo(
    () => ({
      weekday: new Intl.DateTimeFormat(i18n.locale, { weekday: "short" }),
      date: new Intl.DateTimeFormat(i18n.locale, { day: "numeric", month: "numeric" }),
      value: new Intl.NumberFormat(i18n.locale, { maximumFractionDigits: 1, minimumFractionDigits: 1 }),
    }),
    [i18n.locale],
  );
  const maxHours = Math.max(0, ...days.map((d) => d.ms / 3_600_000));
  const step = niceStep(maxHours);
  const top = Math.max(step, Math.ceil(maxHours / step) * step);
  const plotW = W - pad.left - pad.right;
  const plotH = H - pad.top - pad.bottom;
  const y = (hours: number) => pad.top + plotH * (1 - hours / top);
  const slot = plotW / Math.max(1, days.length);
  const barW = Math.min(48, slot * 0.6);
  const ticks: number[] = [];
  for (let h = 0; h <= top; h += step) ticks.push(h);

  return (
    <svg className="week-chart" viewBox={`0 0 ${W} ${H}`} role="img" aria-labelledby={titleId} preserveAspectRatio="xMidYMid meet">
      <title id={titleId}>{title}</title>
      {ticks.map((h) => (
        <g key={h} className="tick">
          <line x1={pad.left} x2={W - pad.right} y1={y(h)} y2={y(h)} />
          <text x={pad.left - 6} y={y(h)} dy="0.35em" textAnchor="end">
            {i18n.hours(h * 3_600_000)}
          </text>
        </g>
      ))}
      {days.map((d, i) => {
        const hours = d.ms / 3_600_000;
        const cx = pad.left + slot * i + slot / 2;
        const barH = (plotH * hours) / top;
        return (
          <g key={d.label} className={d.today ? "day today" : "day"}>
            {hours > 0 && <rect className="bar" x={cx - barW / 2} y={y(hours)} width={barW} height={Math.max(1, barH)} rx={3} />}
            {hours >= 0.05 && (
              <text className="value" x={cx} y={y(hours) - 5} textAnchor="middle">
                {fmt.value.format(hours)}
              </text>
            )}
            <text className="label" x={cx} y={H - pad.bottom + 16} textAnchor="middle">
              {fmt.weekday.format(d.date)}
            </text>
            <text className="label date" x={cx} y={H - pad.bottom + 32} textAnchor="middle">
              {fmt.date.format(d.date)}
            </text>
          </g>
        );
      })}
    </svg>
  );
}

/** crm timers report: worked time per day (or week) over a week or a range, in a time zone. */
import { toJson } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { Command } from "commander";
import { GetReportResponseSchema, GroupBy, TimerService } from "@crm/gen/crm/timer/v1/timer_pb";
import type { Context, Wrap } from "../context.js";
import { checkZone, formatDay, localZone, reportRange } from "../dates.js";
import { Exit, usageError } from "../errors.js";
import { hoursMinutes, table } from "../format.js";

export function registerTimers(program: Command, act: Wrap) {
  const timers = program.command("timers").description("working time");
  timers
    .command("report")
    .description("worked time per day or week (default: this week, Monday to Sunday)")
    .option("--week", "this week")
    .option("--last-week", "last week")
    .option("--from <date>", "first day, YYYY-MM-DD")
    .option("--to <date>", "last day, YYYY-MM-DD, inclusive (default: today)")
    .option("--by <period>", "day or week", "day")
    .option("--tz <zone>", "the time zone days begin in (default: this machine's)")
    .option("--user <id>", "another user's time (owners and admins)")
    .action(act(report));
}

async function report(ctx: Context, opts: { week?: boolean; lastWeek?: boolean; from?: string; to?: string; by: string; tz?: string; user?: string }): Promise<number> {
  const tz = checkZone(opts.tz ?? localZone());
  const by = opts.by.toLowerCase();
  if (by !== "day" && by !== "week") throw usageError(`--by ${JSON.stringify(opts.by)}: use day or week`);
  const range = reportRange(opts, ctx.io.now(), tz);
  const timers = (await ctx.connect()).client(TimerService);
  const r = await timers.getReport({
    from: timestampFromMs(range.from.getTime()),
    to: timestampFromMs(range.to.getTime()),
    timeZone: tz,
    groupBy: by === "week" ? GroupBy.WEEK : GroupBy.DAY,
    userId: opts.user ?? "",
  });
  if (ctx.json) {
    ctx.out(`${JSON.stringify({ from: formatDay(range.first), to: formatDay(range.last), timeZone: tz, ...(toJson(GetReportResponseSchema, r) as object) })}\n`);
    return Exit.ok;
  }
  const rows = r.periods.map((p) => [p.label, hoursMinutes(p.total), hoursMinutes(p.billable)]);
  rows.push(["total", hoursMinutes(r.total), hoursMinutes(r.billableTotal)]);
  ctx.note(`${formatDay(range.first)} … ${formatDay(range.last)} (${tz})`);
  ctx.out(table([by === "week" ? "WEEK OF" : "DAY", "WORKED", "BILLABLE"], rows));
  return Exit.ok;
}

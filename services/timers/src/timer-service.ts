/**
 * crm.timer.v1.TimerService handlers. They check the request (pure validation), call dbservice's
 * DbTimerService through the peer client (which forwards the caller's token: the tenant and the
 * acting user come from it), keep the running-timer cache honest, and shape the answer.
 * Permission to act on another user is decided by dbservice from the database's current role.
 */
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import { timestampFromMs, timestampMs } from "@bufbuild/protobuf/wkt";
import { invalid, principalOf, type Violation } from "@crm/kit";
import type { DbTimerService } from "@crm/gen/crm/db/v1/db_timer_pb";
import { GroupBy, TimerService } from "@crm/gen/crm/timer/v1/timer_pb";
import type { Client } from "@connectrpc/connect";
import { present } from "./present.js";
import { durationFromMs, instant, limits, manualRangeViolations, timerRecordOf } from "./rules.js";
import { ObjectType } from "@crm/gen/crm/records/v1/common_pb";
import { buildReport } from "./report.js";
import type { RunningCache } from "./running-cache.js";
import {
  MAX_REPORT_MS, descriptionViolations, idViolations, pageSizeViolations, pageTokenViolations, pastInstant, zoneOf,
} from "./validation.js";

export interface TimerServiceDeps {
  db: Client<typeof DbTimerService>;
  cache: RunningCache;
  maxRunningMs: number;
  skewMs: number;
  now?: () => number;
}

const check = (v: Violation[]) => {
  if (v.length) throw invalid(v);
};

/** Errors after which the write surely did not happen. Anything else (unavailable, a timeout) may have committed. */
const definite = new Set<Code>([Code.InvalidArgument, Code.NotFound, Code.FailedPrecondition, Code.PermissionDenied, Code.Unauthenticated, Code.AlreadyExists, Code.ResourceExhausted]);
const isDefinite = (err: unknown) => definite.has(ConnectError.from(err).code);

export function timerService(d: TimerServiceDeps): Partial<ServiceImpl<typeof TimerService>> {
  const now = d.now ?? Date.now;

  return {
    async startTimer(req, ctx) {
      const p = principalOf(ctx);
      const v = descriptionViolations(req.description);
      timerRecordOf(req.record, "record", v);
      check(v);
      try {
        const res = await d.db.startTimerDB({ description: req.description, record: req.record, billable: req.billable });
        const t = now();
        return { timer: res.timer && present(res.timer, t), stopped: res.stopped && present(res.stopped, t) };
      } finally {
        await d.cache.invalidate(p.userId);
      }
    },

    async endTimer(req, ctx) {
      const p = principalOf(ctx);
      const v = descriptionViolations(req.description);
      timerRecordOf(req.record, "record", v);
      check(v);
      try {
        const res = await d.db.endTimerDB({ description: req.description, record: req.record, billable: req.billable });
        return { timer: res.timer && present(res.timer, now()) };
      } finally {
        await d.cache.invalidate(p.userId);
      }
    },

    async getWorkingTimer(req, ctx) {
      const p = principalOf(ctx);
      check(idViolations(req.userId, "userId", "user", true));
      if (req.userId && req.userId !== p.userId) {
        // Another user's timer (owners/admins): rare, and the role must be read from the database.
        const res = await d.db.getWorkingTimerDB({ userId: req.userId });
        return { timer: res.timer && present(res.timer, now()) };
      }
      const cached = await d.cache.lookup(p.userId);
      if (cached.hit) return { timer: cached.timer && present(cached.timer, now()) };
      const res = await d.db.getWorkingTimerDB({});
      cached.fill(res.timer);
      return { timer: res.timer && present(res.timer, now()) };
    },

    async changeTimer(req, ctx) {
      const p = principalOf(ctx);
      const v: Violation[] = [...idViolations(req.timerId, "timerId", "timer", false), ...descriptionViolations(req.description)];
      const t = now();
      const start = pastInstant(req.startTime, "startTime", t, d.skewMs, v);
      const end = pastInstant(req.endTime, "endTime", t, d.skewMs, v);
      if (start !== undefined && end !== undefined) v.push(...manualRangeViolations(start, end));
      timerRecordOf(req.record, "record", v);
      if (req.description === undefined && !req.startTime && !req.endTime && !req.record && req.billable === undefined) {
        v.push({ field: "description", description: "nothing to change: set description, startTime, endTime, record or billable" });
      }
      check(v);
      try {
        const res = await d.db.changeTimerDB({
          timerId: req.timerId, description: req.description, startTime: req.startTime, endTime: req.endTime, record: req.record, billable: req.billable,
        });
        if (res.timer && res.timer.userId !== p.userId) await d.cache.invalidate(res.timer.userId);
        return { timer: res.timer && present(res.timer, now()) };
      } catch (err) {
        // An owner/admin may have changed another user's timer, and we cannot tell whose.
        if (!isDefinite(err) && p.role !== "member") await d.cache.invalidateAll();
        throw err;
      } finally {
        await d.cache.invalidate(p.userId);
      }
    },

    async addTimer(req, ctx) {
      const p = principalOf(ctx);
      const v: Violation[] = [...descriptionViolations(req.description)];
      const t = now();
      const start = pastInstant(req.startTime, "startTime", t, d.skewMs, v);
      const end = pastInstant(req.endTime, "endTime", t, d.skewMs, v);
      if (!req.startTime) v.push({ field: "startTime", description: "is required" });
      if (!req.endTime) v.push({ field: "endTime", description: "is required" });
      if (start !== undefined && end !== undefined) v.push(...manualRangeViolations(start, end));
      timerRecordOf(req.record, "record", v);
      check(v);
      try {
        const res = await d.db.addTimerDB({ startTime: req.startTime, endTime: req.endTime, description: req.description, record: req.record, billable: req.billable });
        return { timer: res.timer && present(res.timer, now()) };
      } finally {
        await d.cache.invalidate(p.userId);
      }
    },

    async listTimers(req) {
      const v: Violation[] = [...idViolations(req.userId, "userId", "user", true), ...pageSizeViolations(req.pageSize), ...pageTokenViolations(req.pageToken)];
      const from = instant(req.from, "from", v);
      const to = instant(req.to, "to", v);
      if (from !== undefined && to !== undefined && to <= from) v.push({ field: "to", description: "must be after from" });
      timerRecordOf(req.record, "record", v);
      if (req.allUsers && req.userId) v.push({ field: "userId", description: "must be empty with allUsers (every user's entries)" });
      check(v);
      const res = await d.db.listTimersDB({
        from: req.from, to: req.to, userId: req.userId, pageSize: req.pageSize || limits.defaultPageSize, pageToken: req.pageToken,
        record: req.record, allUsers: req.allUsers, billable: req.billable,
      });
      const t = now();
      return { timers: res.timers.map((x) => present(x, t)), nextPageToken: res.nextPageToken };
    },

    async getReport(req) {
      const v: Violation[] = [...idViolations(req.userId, "userId", "user", true)];
      const from = instant(req.from, "from", v);
      const to = instant(req.to, "to", v);
      if (!req.from) v.push({ field: "from", description: "is required: the start of the range (inclusive)" });
      if (!req.to) v.push({ field: "to", description: "is required: the end of the range (exclusive)" });
      if (from !== undefined && to !== undefined) {
        if (to <= from) v.push({ field: "to", description: "must be after from" });
        else if (to - from > MAX_REPORT_MS) v.push({ field: "to", description: "the range may span at most 366 days; ask for several reports" });
      }
      const zone = zoneOf(req.timeZone, v);
      const groupBy = req.groupBy === GroupBy.WEEK ? "week" : req.groupBy === GroupBy.DAY || req.groupBy === GroupBy.UNSPECIFIED ? "day" : undefined;
      if (!groupBy) v.push({ field: "groupBy", description: "must be GROUP_BY_DAY or GROUP_BY_WEEK" });
      timerRecordOf(req.record, "record", v);
      check(v);
      const res = await d.db.reportEntriesDB({ from: req.from, to: req.to, userId: req.userId, record: req.record });
      const report = buildReport({
        entries: res.entries.map((e) => ({
          start: timestampMs(e.startTime!),
          end: e.endTime ? timestampMs(e.endTime) : undefined,
          billable: e.billable,
          record: e.record?.id ? `${e.record.objectType}:${e.record.id}` : undefined,
        })),
        from: from!,
        to: to!,
        zone,
        groupBy: groupBy!,
        now: res.now ? timestampMs(res.now) : now(),
        maxRunningMs: d.maxRunningMs,
      });
      return {
        periods: report.periods.map((p) => ({
          start: timestampFromMs(p.start), end: timestampFromMs(p.end), label: p.label, total: durationFromMs(p.totalMs), billable: durationFromMs(p.billableMs),
        })),
        total: durationFromMs(report.totalMs),
        billableTotal: durationFromMs(report.billableMs),
        records: report.records.map((r) => {
          const [type, id] = r.record.split(":") as [string, string];
          return { record: { objectType: Number(type) as ObjectType, id }, total: durationFromMs(r.totalMs), billable: durationFromMs(r.billableMs) };
        }),
      };
    },
  };
}

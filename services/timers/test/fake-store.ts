/**
 * An in-memory DbTimerService for fast handler tests, following the store's documented semantics
 * (proto/crm/db/v1/db_timer.proto, ../store/timer-store.ts): the company and the acting user come
 * from the forwarded token; another company's users and entries are not_found; another user of the
 * company needs the acting user's role, read from the stored users (not the token), to be owner or
 * admin; one running timer per user; entries of a user never overlap ([start, end), a running timer
 * up to infinity); a manual entry lasts at most 24 hours; times a few seconds ahead count as now.
 * Test code only.
 */
import { randomUUID } from "node:crypto";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromMs, timestampMs, type Timestamp } from "@bufbuild/protobuf/wkt";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { AppError, invalid, isUuid, principalOf, requirePeer, type Principal, type Role } from "@crm/kit";
import type { DbTimerService } from "@crm/gen/crm/db/v1/db_timer_pb";
import type { TimerSchema } from "@crm/gen/crm/timer/v1/timer_pb";
import { ObjectType } from "@crm/gen/crm/records/v1/common_pb";
import { HOUR, durationFromMs, manualRangeViolations, timerRecordOf, type TimerRecord } from "../src/rules.js";

export interface StoredUser {
  companyId: string;
  role: Role;
  status: "active" | "invited" | "deactivated";
}

export interface StoredTimer {
  id: string;
  companyId: string;
  userId: string;
  description: string;
  start: number;
  /** null while running */
  end: number | null;
  autoStopped: boolean;
  /** The deal or company booked on (the store's rec_deal_id / rec_company_id). */
  dealId?: string | null;
  recCompanyId?: string | null;
  billable?: boolean;
}

/** A deal or customer company of the records domain, as the foreign keys see it. */
export interface StoredRecord {
  companyId: string;
  type: "deal" | "company";
}

export interface FakeTimerStore {
  impl: ServiceImpl<typeof DbTimerService>;
  users: Map<string, StoredUser>;
  timers: Map<string, StoredTimer>;
  /** Deals and customer companies the entries may reference, by id. */
  records: Map<string, StoredRecord>;
  /** Stores the users of these principals (active, with the token's role unless `role` is given). */
  addUsers(...people: (Principal | (Pick<Principal, "userId" | "companyId"> & { role?: Role; status?: StoredUser["status"] }))[]): void;
  /** Puts an entry straight into the store (as earlier calls or the forgotten-timer job would have). */
  put(t: Omit<StoredTimer, "id" | "autoStopped" | "description"> & Partial<Pick<StoredTimer, "id" | "autoStopped" | "description">>): StoredTimer;
  /** The user's entries, in start order. */
  of(userId: string): StoredTimer[];
}

type TimerInit = MessageInitShape<typeof TimerSchema>;

const iso = (ms: number | null) => (ms === null ? "now (running)" : new Date(ms).toISOString());

function millis(ts: Timestamp | undefined, field: string): number {
  if (!ts) throw invalid([{ field, description: "is required" }]);
  const ms = timestampMs(ts);
  if (!Number.isFinite(ms) || ms < 0 || ms > 253402300799999) throw invalid([{ field, description: "must be between 1970-01-01 and 9999-12-31" }]);
  return ms;
}

/** `now`: the database's clock. */
export function fakeTimerStore(now: () => number): FakeTimerStore {
  const users = new Map<string, StoredUser>();
  const timers = new Map<string, StoredTimer>();
  const records = new Map<string, StoredRecord>();

  /** The request's record, checked as the store's foreign keys do (another company's id: not_found). */
  function recordArg(p: Principal, ref: { objectType: number; id: string } | undefined): TimerRecord | undefined {
    const v: Parameters<typeof invalid>[0] = [];
    const r = timerRecordOf(ref, "record", v);
    if (v.length) throw invalid(v);
    for (const [id, type] of [[r?.deal, "deal"], [r?.company, "company"]] as const) {
      const stored = id ? records.get(id) : undefined;
      if (id && (!stored || stored.companyId !== p.companyId || stored.type !== type)) {
        throw new AppError("not_found", `no ${type} with this id in your company`, [{ field: "record.id", description: `no such ${type} in your company` }]);
      }
    }
    return r;
  }
  const withRecord = (t: StoredTimer, r: TimerRecord | undefined): StoredTimer => (r ? { ...t, dealId: r.deal, recCompanyId: r.company } : t);

  const toTimer = (t: StoredTimer, at: number): TimerInit => ({
    timerId: t.id,
    userId: t.userId,
    description: t.description,
    startTime: timestampFromMs(t.start),
    endTime: t.end === null ? undefined : timestampFromMs(t.end),
    duration: durationFromMs(Math.max(0, (t.end ?? at) - t.start)),
    record: t.dealId ? { objectType: ObjectType.DEAL, id: t.dealId } : t.recCompanyId ? { objectType: ObjectType.COMPANY, id: t.recCompanyId } : undefined,
    billable: t.billable ?? false,
  });

  const of = (userId: string) => [...timers.values()].filter((t) => t.userId === userId).sort((a, b) => a.start - b.start || (a.id < b.id ? -1 : 1));
  /** Visible under the tenant's row-level security. */
  const userIn = (p: Principal, userId: string) => {
    const u = users.get(userId);
    return u && u.companyId === p.companyId ? u : undefined;
  };
  const isAdmin = (p: Principal) => {
    const u = userIn(p, p.userId);
    return u?.status === "active" && (u.role === "owner" || u.role === "admin");
  };

  function subject(p: Principal, userId: string): string {
    if (!userId || userId === p.userId) return p.userId;
    if (!isUuid(userId)) throw invalid([{ field: "userId", description: "must be a user id (UUID), or empty for yourself" }]);
    if (!isAdmin(p)) throw new AppError("permission_denied", "only a company owner or admin may see another user's timers; leave userId empty for your own");
    if (!userIn(p, userId)) throw new AppError("not_found", `no user ${userId} in your company`);
    return userId;
  }

  function lockUser(p: Principal, userId: string): number {
    if (!userIn(p, userId)) throw new AppError("not_found", `no user ${userId} in your company`);
    return now();
  }

  const overlaps = (t: StoredTimer, start: number, end: number | null) => t.start < (end ?? Infinity) && start < (t.end ?? Infinity);
  function overlapping(userId: string, start: number, end: number | null, exceptId?: string): StoredTimer | undefined {
    return of(userId).find((t) => t.id !== exceptId && overlaps(t, start, end));
  }

  function overlapError(t: StoredTimer, field: string): AppError {
    const what = `entry ${t.id} (${iso(t.start)} – ${iso(t.end)}${t.description ? `, "${t.description.slice(0, 60)}"` : ""})`;
    return new AppError("failed_precondition", `the times overlap ${what}; entries may touch (one ends when the next starts) but not overlap: change that entry first, or pick other times`, [
      { field, description: `overlaps ${what}` },
    ]);
  }

  /** The schema's constraints, as the store maps their refusals (schemaError). */
  function write(t: StoredTimer): StoredTimer {
    if ([...t.description].length > 1000) throw invalid([{ field: "description", description: "must be at most 1000 characters" }]);
    if (t.description.includes("\u0000")) throw invalid([{ field: "description", description: "must be valid text without NUL characters" }]);
    if (t.end !== null && t.end <= t.start) throw invalid([{ field: "endTime", description: "must be after startTime" }]);
    if (t.end === null && of(t.userId).some((o) => o.id !== t.id && o.end === null)) throw new AppError("failed_precondition", "this user already has a running timer; stop it first");
    if (overlapping(t.userId, t.start, t.end, t.id)) throw new AppError("failed_precondition", "the times overlap another entry of this user; entries may touch but not overlap: pick other times");
    timers.set(t.id, t);
    return t;
  }

  const tx = <T>(ctx: HandlerContext, fn: (p: Principal) => T): T => fn(principalOf(ctx));

  const impl: ServiceImpl<typeof DbTimerService> = {
    async startTimerDB(req, ctx) {
      return tx(ctx, (p) => {
        const at = lockUser(p, p.userId);
        const running = of(p.userId).find((t) => t.end === null);
        let start = at;
        let stopped: StoredTimer | undefined;
        if (running) {
          start = Math.max(at, running.start + 1);
          stopped = write({ ...running, end: start });
        }
        const r = recordArg(p, req.record);
        const timer = write(withRecord({ id: randomUUID(), companyId: p.companyId, userId: p.userId, description: req.description, start, end: null, autoStopped: false, billable: req.billable }, r));
        return { timer: toTimer(timer, at), stopped: stopped && toTimer(stopped, at) };
      });
    },

    async endTimerDB(req, ctx) {
      return tx(ctx, (p) => {
        const r = recordArg(p, req.record);
        const at = lockUser(p, p.userId);
        const running = of(p.userId).find((t) => t.end === null);
        if (!running) {
          const last = of(p.userId).at(-1);
          throw new AppError(
            "failed_precondition",
            last?.autoStopped
              ? `no timer is running: timer ${last.id} was stopped automatically at ${iso(last.end)}, the longest a timer may run; correct its end with ChangeTimer if you stopped earlier`
              : "no timer is running: start one with StartTimer (POST /timer/start-timer)",
          );
        }
        const t = write(withRecord({ ...running, end: Math.max(at, running.start + 1), description: req.description ?? running.description, billable: req.billable ?? running.billable }, r));
        return { timer: toTimer(t, at) };
      });
    },

    async getWorkingTimerDB(req, ctx) {
      return tx(ctx, (p) => {
        const userId = subject(p, req.userId);
        const running = of(userId).find((t) => t.end === null);
        return { timer: running && toTimer(running, now()) };
      });
    },

    async changeTimerDB(req, ctx) {
      if (!isUuid(req.timerId)) throw invalid([{ field: "timerId", description: "must be a timer id (UUID) from StartTimer, AddTimer or ListTimers" }]);
      const reqStart = req.startTime ? millis(req.startTime, "startTime") : undefined;
      const reqEnd = req.endTime ? millis(req.endTime, "endTime") : undefined;
      return tx(ctx, (p) => {
        const notFound = new AppError("not_found", `no timer ${req.timerId} of yours: check the id (ListTimers shows your entries)`);
        const r = recordArg(p, req.record);
        const t = timers.get(req.timerId);
        if (!t || t.companyId !== p.companyId) throw notFound;
        if (t.userId !== p.userId && !isAdmin(p)) throw notFound;
        const at = lockUser(p, t.userId);
        const start = reqStart === undefined ? t.start : Math.min(reqStart, at);
        const end = reqEnd === undefined ? t.end : Math.min(reqEnd, at);
        if (reqStart !== undefined || reqEnd !== undefined) {
          const blame = reqEnd !== undefined ? "endTime" : "startTime";
          const v = manualRangeViolations(start, end, { now: at, field: blame });
          if (v.length) throw invalid(v);
          const other = overlapping(t.userId, start, end, t.id);
          if (other) throw overlapError(other, blame);
        }
        const changed = write(withRecord({ ...t, description: req.description ?? t.description, start, end, autoStopped: t.autoStopped && reqEnd === undefined, billable: req.billable ?? t.billable }, r));
        return { timer: toTimer(changed, at) };
      });
    },

    async addTimerDB(req, ctx) {
      const reqStart = millis(req.startTime, "startTime");
      const reqEnd = millis(req.endTime, "endTime");
      return tx(ctx, (p) => {
        const r = recordArg(p, req.record);
        const at = lockUser(p, p.userId);
        const start = Math.min(reqStart, at);
        const end = Math.min(reqEnd, at);
        const v = manualRangeViolations(start, end, { now: at });
        if (v.length) throw invalid(v);
        const other = overlapping(p.userId, start, end);
        if (other) throw overlapError(other, "startTime");
        const t = write(withRecord({ id: randomUUID(), companyId: p.companyId, userId: p.userId, description: req.description, start, end, autoStopped: false, billable: req.billable }, r));
        return { timer: toTimer(t, at) };
      });
    },

    async listTimersDB(req, ctx) {
      const from = req.from ? millis(req.from, "from") : null;
      const to = req.to ? millis(req.to, "to") : null;
      const pageSize = Math.min(Math.max(req.pageSize || 100, 1), 500);
      const cursor = decodeToken(req.pageToken);
      return tx(ctx, (p) => {
        const r = recordArg(p, req.record);
        if (req.allUsers && req.userId) throw invalid([{ field: "userId", description: "must be empty with allUsers" }]);
        if (req.allUsers && !r?.deal && !r?.company && !isAdmin(p)) throw new AppError("permission_denied", "only a company owner or admin may list every user's timers");
        const userId = req.allUsers ? null : subject(p, req.userId);
        const newestFirst = [...timers.values()]
          .filter((t) => t.companyId === p.companyId && (userId === null || t.userId === userId))
          .filter((t) => (!r?.deal || t.dealId === r.deal) && (!r?.company || t.recCompanyId === r.company) && (req.billable === undefined || (t.billable ?? false) === req.billable))
          .filter((t) => (from === null || t.end === null || t.end > from) && (to === null || t.start < to))
          .sort((a, b) => b.start - a.start || (a.id < b.id ? 1 : -1))
          .filter((t) => !cursor || t.start < cursor.start || (t.start === cursor.start && t.id < cursor.id));
        const page = newestFirst.slice(0, pageSize);
        const last = page.at(-1);
        const at = now();
        return { timers: page.map((t) => toTimer(t, at)), nextPageToken: newestFirst.length > pageSize && last ? encodeToken(last) : "" };
      });
    },

    async reportEntriesDB(req, ctx) {
      const from = millis(req.from, "from");
      const to = millis(req.to, "to");
      return tx(ctx, (p) => {
        const r = recordArg(p, req.record);
        const userId = subject(p, req.userId);
        const at = now();
        const entries = of(userId).filter((t) => (t.end === null || t.end > from) && t.start < to && (!r?.deal || t.dealId === r.deal) && (!r?.company || t.recCompanyId === r.company));
        return { entries: entries.map((t) => toTimer(t, at)), now: timestampFromMs(at) };
      });
    },

    async stopForgottenTimersDB(req, ctx) {
      requirePeer(ctx, "timers");
      const maxMs = req.maxRunning ? Number(req.maxRunning.seconds) * 1000 + Math.floor(req.maxRunning.nanos / 1e6) : 0;
      if (!(maxMs >= HOUR)) throw invalid([{ field: "maxRunning", description: "must be at least one hour" }]);
      const limit = req.limit === 0 ? 1000 : req.limit;
      if (limit < 1 || limit > 10_000) throw invalid([{ field: "limit", description: "must be 1..10000 (0 means 1000)" }]);
      const at = now();
      const due = [...timers.values()].filter((t) => t.end === null && at - t.start > maxMs).slice(0, limit);
      const stopped = due.map((t) => write({ ...t, end: t.start + maxMs, autoStopped: true }));
      return { stopped: stopped.length, timerIds: stopped.map((t) => t.id), timers: stopped.map((t) => toTimer(t, at)) };
    },
  };

  return {
    impl,
    users,
    timers,
    records,
    of,
    addUsers(...people) {
      for (const u of people) users.set(u.userId, { companyId: u.companyId, role: u.role ?? "member", status: "status" in u && u.status ? u.status : "active" });
    },
    put(t) {
      const stored: StoredTimer = { id: randomUUID(), description: "", autoStopped: false, ...t };
      timers.set(stored.id, stored);
      return stored;
    },
  };
}

function encodeToken(t: StoredTimer): string {
  return Buffer.from(`${t.start}|${t.id}`).toString("base64url");
}

function decodeToken(token: string): { start: number; id: string } | undefined {
  if (!token) return undefined;
  const m = /^(\d+)\|([0-9a-f-]{36})$/.exec(Buffer.from(token, "base64url").toString("utf8"));
  if (!m || !isUuid(m[2]!)) throw invalid([{ field: "pageToken", description: "is not a token this service returned; start again with an empty pageToken" }]);
  return { start: Number(m[1]), id: m[2]! };
}

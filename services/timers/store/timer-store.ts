/**
 * The timers store, mounted by dbservice as DbTimerService: time entries. Every RPC but
 * StopForgottenTimersDB acts on the caller's forwarded token and runs in ONE tenant transaction.
 * Writes of a user's entries first take a row lock on that user (FOR NO KEY UPDATE), so concurrent
 * StartTimer calls of one user run one after the other: each stops the timer the previous one
 * started and nobody sees an error. The schema backs every rule (one running timer per user, end
 * after start, no overlap); the checks here exist to name the field or the overlapped entry in the
 * error. The rules shared with the service are ../src/rules.ts.
 */
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { AppError, invalid, isUuid, principalOf, requirePeer, type Principal, type Role, type Violation } from "@crm/kit";
import type { DbTimerService } from "@crm/gen/crm/db/v1/db_timer_pb";
import type { TimerSchema } from "@crm/gen/crm/timer/v1/timer_pb";
import type { Db, Sql } from "@crm/dbservice/db";
import { HOUR, badPageToken, durationFromMs, instant, limits, manualRangeViolations, pageSizeOf, timerRecordOf, type TimerRecord } from "../src/rules.js";
import { ObjectType } from "@crm/gen/crm/records/v1/common_pb";

type TimerInit = MessageInitShape<typeof TimerSchema>;

interface Row {
  id: string;
  user_id: string;
  description: string;
  start_time: Date;
  end_time: Date | null;
  rec_deal_id: string | null;
  rec_company_id: string | null;
  billable: boolean;
}

const COLS = "id, user_id, description, start_time, end_time, rec_deal_id, rec_company_id, billable";
/** GetReport reads at most this many entries (a year of one-minute entries is ~500k; real use is far below). */
const MAX_REPORT_ENTRIES = 100_000;

function toTimer(r: Row, nowMs: number): TimerInit {
  const start = r.start_time.getTime();
  const end = r.end_time?.getTime();
  return {
    timerId: r.id,
    userId: r.user_id,
    description: r.description,
    startTime: timestampFromDate(r.start_time),
    endTime: r.end_time ? timestampFromDate(r.end_time) : undefined,
    duration: durationFromMs(Math.max(0, (end ?? nowMs) - start)),
    record: r.rec_deal_id
      ? { objectType: ObjectType.DEAL, id: r.rec_deal_id }
      : r.rec_company_id
        ? { objectType: ObjectType.COMPANY, id: r.rec_company_id }
        : undefined,
    billable: r.billable,
  };
}

/** A request's record reference (undefined: unset), invalid_argument naming the field when it is no deal or company. */
function recordArg(ref: { objectType: number; id: string } | undefined, field = "record"): TimerRecord | undefined {
  const v: Violation[] = [];
  const r = timerRecordOf(ref, field, v);
  if (v.length) throw invalid(v);
  return r;
}

const iso = (ms: number | null | undefined) => (ms == null ? "now (running)" : new Date(ms).toISOString());

/** Milliseconds of a request timestamp; invalid_argument naming the field when unset or out of range. */
function millis(ts: Timestamp | undefined, field: string): number {
  const v: Violation[] = ts ? [] : [{ field, description: "is required" }];
  const ms = instant(ts, field, v);
  if (ms === undefined) throw invalid(v);
  return ms;
}

async function roleOf(sql: Sql, userId: string): Promise<Role | undefined> {
  const { rows } = await sql.query<{ role: Role }>("SELECT role FROM users WHERE id = $1 AND status = 'active'", [userId]);
  return rows[0]?.role;
}

const isAdmin = (role: Role | undefined) => role === "owner" || role === "admin";

/**
 * The user a read is about: the acting user when userId is empty, else (for a company owner or
 * admin — the role is read from the database, not the token) another user of the company. A user
 * of another company is invisible under RLS, hence not_found.
 */
async function subject(sql: Sql, p: Principal, userId: string): Promise<string> {
  if (!userId || userId === p.userId) return p.userId;
  if (!isUuid(userId)) throw invalid([{ field: "userId", description: "must be a user id (UUID), or empty for yourself" }]);
  if (!isAdmin(await roleOf(sql, p.userId))) {
    throw new AppError("permission_denied", "only a company owner or admin may see another user's timers; leave userId empty for your own");
  }
  const { rowCount } = await sql.query("SELECT 1 FROM users WHERE id = $1", [userId]);
  if (!rowCount) throw new AppError("not_found", `no user ${userId} in your company`);
  return userId;
}

/** Serializes writes of one user's entries; returns the database clock (ms) read after the lock. */
async function lockUser(sql: Sql, userId: string): Promise<number> {
  const { rowCount } = await sql.query("SELECT 1 FROM users WHERE id = $1 FOR NO KEY UPDATE", [userId]);
  if (!rowCount) throw new AppError("not_found", `no user ${userId} in your company`);
  const { rows } = await sql.query<{ now: Date }>("SELECT date_trunc('milliseconds', clock_timestamp()) AS now");
  return rows[0]!.now.getTime();
}

/** The first entry of the user (other than exceptId) that overlaps [start, end) (end null: open). */
async function overlapping(sql: Sql, userId: string, start: number, end: number | null, exceptId?: string): Promise<Row | undefined> {
  const { rows } = await sql.query<Row>(
    `SELECT ${COLS} FROM timers
     WHERE user_id = $1 AND ($4::uuid IS NULL OR id <> $4)
       AND tstzrange(start_time, end_time, '[)') && tstzrange($2, $3, '[)')
     ORDER BY start_time LIMIT 1`,
    [userId, new Date(start), end === null ? null : new Date(end), exceptId ?? null],
  );
  return rows[0];
}

function overlapError(r: Row, field: string): AppError {
  const what = `entry ${r.id} (${iso(r.start_time.getTime())} – ${iso(r.end_time?.getTime())}${r.description ? `, "${r.description.slice(0, 60)}"` : ""})`;
  return new AppError(
    "failed_precondition",
    `the times overlap ${what}; entries may touch (one ends when the next starts) but not overlap: change that entry first, or pick other times`,
    [{ field, description: `overlaps ${what}` }],
  );
}

/** Turns the schema's refusals into the errors a user can act on (the checks above normally come first). */
function schemaError(err: unknown): unknown {
  const e = err as { code?: string; constraint?: string };
  if (e.code === "23P01") return new AppError("failed_precondition", "the times overlap another entry of this user; entries may touch but not overlap: pick other times");
  if (e.code === "23505" && e.constraint === "timers_one_running") return new AppError("failed_precondition", "this user already has a running timer; stop it first");
  if (e.code === "23514") return invalid([{ field: e.constraint === "timers_end_after_start" ? "endTime" : "description", description: e.constraint === "timers_end_after_start" ? "must be after startTime" : `must be at most ${limits.description} characters` }]);
  if (e.code === "23503" && (e.constraint === "timers_rec_deal_fkey" || e.constraint === "timers_rec_company_fkey")) {
    const what = e.constraint === "timers_rec_deal_fkey" ? "deal" : "company";
    return new AppError("not_found", `no ${what} with this id in your company: book time on a ${what} that exists (records' List${what === "deal" ? "Deals" : "Companies"})`, [{ field: "record.id", description: `no such ${what} in your company` }]);
  }
  if (e.code === "22021" || e.code === "22P05") return invalid([{ field: "description", description: "must be valid text without NUL characters" }]);
  return err;
}

/**
 * A record named as a filter exists in the caller's company (read under the records' row-level
 * security: the transaction runs as the acting user), else not_found — as the foreign keys answer
 * for a write. The trash counts: its entries are still there.
 */
async function recordExists(sql: Sql, r: TimerRecord | undefined): Promise<void> {
  const id = r?.deal ?? r?.company;
  if (!id) return;
  const what = r?.deal ? "deal" : "company";
  const { rowCount } = await sql.query(`SELECT 1 FROM ${r?.deal ? "rec_deals" : "rec_companies"} WHERE id = $1`, [id]);
  if (!rowCount) throw new AppError("not_found", `no ${what} with this id in your company`, [{ field: "record.id", description: `no such ${what} in your company` }]);
}

function encodeToken(startIso: string, id: string): string {
  return Buffer.from(`${startIso}|${id}`).toString("base64url");
}

function decodeToken(token: string): { start: string; id: string } | undefined {
  if (!token) return undefined;
  const bad = invalid([badPageToken]);
  if (token.length > limits.pageToken) throw bad;
  const m = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z)\|([0-9a-f-]{36})$/.exec(Buffer.from(token, "base64url").toString("utf8"));
  if (!m || !isUuid(m[2]!)) throw bad;
  return { start: m[1]!, id: m[2]! };
}

export function timerStore(db: Db): ServiceImpl<typeof DbTimerService> {
  /**
   * Runs fn in the caller's tenant transaction, mapping the schema's refusals. `asUser` also sets
   * the acting user and role, which the records' row-level security needs to read a record.
   */
  async function tx<T>(ctx: HandlerContext, fn: (sql: Sql, p: Principal) => Promise<T>, asUser = false): Promise<T> {
    const p = principalOf(ctx);
    try {
      return await db.tenant(p.companyId, (sql) => fn(sql, p), asUser ? { actingUser: p.userId } : undefined);
    } catch (err) {
      throw schemaError(err);
    }
  }

  return {
    async startTimerDB(req, ctx) {
      const record = recordArg(req.record);
      return tx(ctx, async (sql, p) => {
        const now = await lockUser(sql, p.userId);
        const { rows: running } = await sql.query<Row>(`SELECT ${COLS} FROM timers WHERE user_id = $1 AND end_time IS NULL FOR UPDATE`, [p.userId]);
        let start = now;
        let stopped: Row | undefined;
        if (running[0]) {
          // A clock that stepped back must not make an empty entry: at least 1 ms.
          start = Math.max(now, running[0].start_time.getTime() + 1);
          ({ rows: [stopped] } = await sql.query<Row>(`UPDATE timers SET end_time = $2, updated_at = now() WHERE id = $1 RETURNING ${COLS}`, [running[0].id, new Date(start)]));
        }
        const { rows } = await sql.query<Row>(
          `INSERT INTO timers (company_id, user_id, description, start_time, rec_deal_id, rec_company_id, billable)
           VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING ${COLS}`,
          [p.companyId, p.userId, req.description, new Date(start), record?.deal ?? null, record?.company ?? null, req.billable],
        );
        return { timer: toTimer(rows[0]!, now), stopped: stopped && toTimer(stopped, now) };
      });
    },

    async endTimerDB(req, ctx) {
      const record = recordArg(req.record);
      return tx(ctx, async (sql, p) => {
        const now = await lockUser(sql, p.userId);
        const { rows } = await sql.query<Row>(
          `UPDATE timers SET end_time = greatest($2, start_time + interval '1 millisecond'), description = coalesce($3, description), updated_at = now(),
                  rec_deal_id = CASE WHEN $4 THEN $5::uuid ELSE rec_deal_id END, rec_company_id = CASE WHEN $4 THEN $6::uuid ELSE rec_company_id END,
                  billable = coalesce($7, billable)
           WHERE user_id = $1 AND end_time IS NULL RETURNING ${COLS}`,
          [p.userId, new Date(now), req.description ?? null, record !== undefined, record?.deal ?? null, record?.company ?? null, req.billable ?? null],
        );
        if (!rows[0]) {
          // Say so when the forgotten-timer job got there first: the user's next step differs.
          const { rows: last } = await sql.query<Row & { auto_stopped: boolean }>(
            `SELECT ${COLS}, auto_stopped FROM timers WHERE user_id = $1 ORDER BY start_time DESC LIMIT 1`,
            [p.userId],
          );
          const auto = last[0]?.auto_stopped ? last[0] : undefined;
          throw new AppError(
            "failed_precondition",
            auto
              ? `no timer is running: timer ${auto.id} was stopped automatically at ${iso(auto.end_time?.getTime())}, the longest a timer may run; correct its end with ChangeTimer if you stopped earlier`
              : "no timer is running: start one with StartTimer (POST /timer/start-timer)",
          );
        }
        return { timer: toTimer(rows[0], now) };
      });
    },

    async getWorkingTimerDB(req, ctx) {
      return tx(ctx, async (sql, p) => {
        const userId = await subject(sql, p, req.userId);
        const { rows } = await sql.query<Row & { now: Date }>(
          `SELECT ${COLS}, date_trunc('milliseconds', clock_timestamp()) AS now FROM timers WHERE user_id = $1 AND end_time IS NULL`,
          [userId],
        );
        return { timer: rows[0] && toTimer(rows[0], rows[0].now.getTime()) };
      });
    },

    async changeTimerDB(req, ctx) {
      if (!isUuid(req.timerId)) throw invalid([{ field: "timerId", description: "must be a timer id (UUID) from StartTimer, AddTimer or ListTimers" }]);
      const reqStart = req.startTime ? millis(req.startTime, "startTime") : undefined;
      const reqEnd = req.endTime ? millis(req.endTime, "endTime") : undefined;
      const record = recordArg(req.record);
      return tx(ctx, async (sql, p) => {
        const notFound = new AppError("not_found", `no timer ${req.timerId} of yours: check the id (ListTimers shows your entries)`);
        const { rows: owner } = await sql.query<{ user_id: string }>("SELECT user_id FROM timers WHERE id = $1", [req.timerId]);
        if (!owner[0]) throw notFound;
        if (owner[0].user_id !== p.userId && !isAdmin(await roleOf(sql, p.userId))) throw notFound;
        const now = await lockUser(sql, owner[0].user_id);
        const { rows: current } = await sql.query<Row>(`SELECT ${COLS} FROM timers WHERE id = $1 FOR UPDATE`, [req.timerId]);
        const t = current[0];
        if (!t) throw notFound;
        // A few seconds in the future (clock skew, checked by the caller) count as now.
        const start = reqStart === undefined ? t.start_time.getTime() : Math.min(reqStart, now);
        const end = reqEnd === undefined ? (t.end_time?.getTime() ?? null) : Math.min(reqEnd, now);
        if (reqStart !== undefined || reqEnd !== undefined) {
          const blame = reqEnd !== undefined ? "endTime" : "startTime";
          const v = manualRangeViolations(start, end, { now, field: blame });
          if (v.length) throw invalid(v);
          const other = await overlapping(sql, t.user_id, start, end, t.id);
          if (other) throw overlapError(other, blame);
        }
        const { rows } = await sql.query<Row>(
          `UPDATE timers SET description = coalesce($2, description), start_time = $3, end_time = $4, updated_at = now(),
                  auto_stopped = auto_stopped AND NOT $5,
                  rec_deal_id = CASE WHEN $6 THEN $7::uuid ELSE rec_deal_id END, rec_company_id = CASE WHEN $6 THEN $8::uuid ELSE rec_company_id END,
                  billable = coalesce($9, billable)
           WHERE id = $1 RETURNING ${COLS}`,
          [t.id, req.description ?? null, new Date(start), end === null ? null : new Date(end), reqEnd !== undefined,
            record !== undefined, record?.deal ?? null, record?.company ?? null, req.billable ?? null],
        );
        return { timer: toTimer(rows[0]!, now) };
      });
    },

    async addTimerDB(req, ctx) {
      const reqStart = millis(req.startTime, "startTime");
      const reqEnd = millis(req.endTime, "endTime");
      const record = recordArg(req.record);
      return tx(ctx, async (sql, p) => {
        const now = await lockUser(sql, p.userId);
        const start = Math.min(reqStart, now);
        const end = Math.min(reqEnd, now);
        const v = manualRangeViolations(start, end, { now });
        if (v.length) throw invalid(v);
        const other = await overlapping(sql, p.userId, start, end);
        if (other) throw overlapError(other, "startTime");
        const { rows } = await sql.query<Row>(
          `INSERT INTO timers (company_id, user_id, description, start_time, end_time, rec_deal_id, rec_company_id, billable)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING ${COLS}`,
          [p.companyId, p.userId, req.description, new Date(start), new Date(end), record?.deal ?? null, record?.company ?? null, req.billable],
        );
        return { timer: toTimer(rows[0]!, now) };
      });
    },

    async listTimersDB(req, ctx) {
      const from = req.from ? millis(req.from, "from") : null;
      const to = req.to ? millis(req.to, "to") : null;
      const pageSize = pageSizeOf(req.pageSize);
      const cursor = decodeToken(req.pageToken);
      const record = recordArg(req.record);
      if (req.allUsers && req.userId) throw invalid([{ field: "userId", description: "must be empty with allUsers" }]);
      return tx(ctx, async (sql, p) => {
        await recordExists(sql, record);
        // Every user's entries: on one record, for anyone who may read records; else owners and admins only.
        const userId = req.allUsers ? null : await subject(sql, p, req.userId);
        if (req.allUsers && !record?.deal && !record?.company && !isAdmin(await roleOf(sql, p.userId))) {
          throw new AppError("permission_denied", "only a company owner or admin may list every user's timers; name a record, or leave allUsers unset for your own");
        }
        // Only the filters in use, so each shape gets a plan on its own index (user, deal or company).
        const args: unknown[] = [from === null ? null : new Date(from), to === null ? null : new Date(to), cursor?.start ?? null, cursor?.id ?? null, pageSize + 1];
        const where = (clause: string, value: unknown) => `AND ${clause} $${args.push(value)}`;
        const filters = [
          userId === null ? "" : where("user_id =", userId),
          record?.deal ? where("rec_deal_id =", record.deal) : "",
          record?.company ? where("rec_company_id =", record.company) : "",
          req.billable === undefined ? "" : where("billable =", req.billable),
        ].join(" ");
        const { rows } = await sql.query<Row & { cursor_start: string; now: Date }>(
          `SELECT ${COLS}, to_char(start_time AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS cursor_start,
                  date_trunc('milliseconds', clock_timestamp()) AS now
           FROM timers
           WHERE ($1::timestamptz IS NULL OR end_time IS NULL OR end_time > $1)
             AND ($2::timestamptz IS NULL OR start_time < $2)
             AND ($3::timestamptz IS NULL OR (start_time, id) < ($3::timestamptz, $4::uuid))
             ${filters}
           ORDER BY start_time DESC, id DESC
           LIMIT $5`,
          args,
        );
        const page = rows.slice(0, pageSize);
        const last = page[page.length - 1];
        return {
          timers: page.map((r) => toTimer(r, r.now.getTime())),
          nextPageToken: rows.length > pageSize && last ? encodeToken(last.cursor_start, last.id) : "",
        };
      }, record !== undefined);
    },

    async reportEntriesDB(req, ctx) {
      const from = millis(req.from, "from");
      const to = millis(req.to, "to");
      const record = recordArg(req.record);
      return tx(ctx, async (sql, p) => {
        await recordExists(sql, record);
        const userId = await subject(sql, p, req.userId);
        const { rows } = await sql.query<Row>(
          `SELECT ${COLS} FROM timers
           WHERE user_id = $1 AND (end_time IS NULL OR end_time > $2) AND start_time < $3
             AND ($4::uuid IS NULL OR rec_deal_id = $4) AND ($5::uuid IS NULL OR rec_company_id = $5)
           ORDER BY start_time LIMIT ${MAX_REPORT_ENTRIES + 1}`,
          [userId, new Date(from), new Date(to), record?.deal ?? null, record?.company ?? null],
        );
        if (rows.length > MAX_REPORT_ENTRIES) throw new AppError("too_large", `over ${MAX_REPORT_ENTRIES} entries in the range: ask for a shorter range`);
        const { rows: clock } = await sql.query<{ now: Date }>("SELECT date_trunc('milliseconds', clock_timestamp()) AS now");
        const now = clock[0]!.now;
        return { entries: rows.map((r) => toTimer(r, now.getTime())), now: timestampFromDate(now) };
      }, record !== undefined);
    },

    async stopForgottenTimersDB(req, ctx) {
      requirePeer(ctx, "timers");
      const maxMs = req.maxRunning ? Number(req.maxRunning.seconds) * 1000 + Math.floor(req.maxRunning.nanos / 1e6) : 0;
      if (!(maxMs >= HOUR)) throw invalid([{ field: "maxRunning", description: "must be at least one hour" }]);
      const limit = req.limit === 0 ? 1000 : req.limit;
      if (limit < 1 || limit > 10_000) throw invalid([{ field: "limit", description: "must be 1..10000 (0 means 1000)" }]);
      const { rows } = await db.system((sql) =>
        sql.query<Row>("SELECT * FROM crm_stop_forgotten_timers(make_interval(secs => $1::double precision / 1000), $2)", [maxMs, limit]),
      );
      const now = Date.now();
      return { stopped: rows.length, timerIds: rows.map((r) => r.id), timers: rows.map((r) => toTimer(r, now)) };
    },
  };
}

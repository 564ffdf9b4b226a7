/**
 * DbRecordsService's RPCs behind WatchRecords: the tenant's version and its stored changes
 * (rec_changes, written by changes.ts with every change). WatchRecords itself runs in the records
 * service (src/watch.ts), which replays from here and goes live from the event bus. The oldest
 * changes are trimmed by the records service's job (TrimChangesDB, src/changes-trimmer.ts;
 * migration 160): a replay after a trimmed version is refused with failed_precondition.
 */
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { AppError, invalid, requirePeer, type Violation } from "@crm/kit";
import { decodeRecordChange } from "@crm/contracts/events";
import { REQUEST_ID_HOURS } from "./request-ids.js";
import type { DbRecordsService } from "@crm/gen/crm/db/v1/db_records_pb";
import { ObjectType } from "@crm/gen/crm/records/v1/common_pb";
import type { Db, Sql } from "@crm/dbservice/db";
import type { Acting } from "./acting.js";

type Tx = <T>(ctx: HandlerContext, fn: (sql: Sql, a: Acting) => Promise<T>) => Promise<T>;

/** Changes per ListChangesDB call: default and most. */
const CHANGES_PAGE = 500;
const CHANGES_MAX = 1000;
const changeKinds: Partial<Record<ObjectType, string>> = { [ObjectType.COMPANY]: "company", [ObjectType.PERSON]: "person", [ObjectType.DEAL]: "deal" };

/** Changes per tenant and TrimChangesDB call: default and most. */
const TRIM_PAGE = 10_000;
const TRIM_MAX = 100_000;

export function streamStore(db: Db, tx: Tx): Pick<ServiceImpl<typeof DbRecordsService>, "getRecordVersionDB" | "listChangesDB" | "trimChangesDB"> {
  return {
    async getRecordVersionDB(_req, ctx) {
      const version = await tx(ctx, async (sql) => {
        const { rows } = await sql.query<{ version: string }>("SELECT version FROM rec_versions");
        return BigInt(rows[0]?.version ?? 0);
      });
      return { version };
    },

    async listChangesDB(req, ctx) {
      const v: Violation[] = [];
      const kind = req.objectType === ObjectType.UNSPECIFIED ? null : changeKinds[req.objectType];
      if (kind === undefined) v.push({ field: "objectType", description: "must be OBJECT_TYPE_COMPANY, OBJECT_TYPE_PERSON, OBJECT_TYPE_DEAL or unset (every type)" });
      if (req.afterVersion < 0n) v.push({ field: "afterVersion", description: "must be 0 or more" });
      if (req.limit < 0 || req.limit > CHANGES_MAX) v.push({ field: "limit", description: `must be 1..${CHANGES_MAX} (0 means ${CHANGES_PAGE})` });
      if (v.length) throw invalid(v);
      const limit = req.limit || CHANGES_PAGE;
      // One statement, one snapshot: the version read and the changes up to it agree.
      const rows = await tx(ctx, async (sql) => {
        const res = await sql.query<{ current: string; trimmed: string; version: string | null; event: Buffer | null }>(
          `SELECT (SELECT coalesce(max(version), 0) FROM rec_versions)::text AS current,
                  (SELECT coalesce(max(trimmed_through), 0) FROM rec_versions)::text AS trimmed, c.version::text AS version, c.event
           FROM (SELECT 1) one LEFT JOIN LATERAL (
             SELECT version, event FROM rec_changes
             WHERE company_id = crm_company() AND version > $1 AND ($2::text IS NULL OR object_type = $2)
             ORDER BY version LIMIT $3) c ON true
           ORDER BY c.version`,
          [String(req.afterVersion), kind, limit],
        );
        return res.rows;
      });
      const current = BigInt(rows[0]?.current ?? 0);
      const trimmed = BigInt(rows[0]?.trimmed ?? 0);
      if (req.afterVersion < trimmed) {
        throw new AppError(
          "failed_precondition",
          `replay after version ${req.afterVersion} is no longer available: changes up to version ${trimmed} were trimmed from the change log; list the records again and watch from version ${current} (or without afterVersion)`,
          [{ field: "afterVersion", description: `must be ${trimmed} or more (the oldest replayable changes follow version ${trimmed})` }],
        );
      }
      const changes = rows.filter((r) => r.event !== null).map((r) => decodeRecordChange(r.event!));
      const more = changes.length === limit;
      return { changes, more, throughVersion: more ? changes[changes.length - 1]!.version : current > req.afterVersion ? current : req.afterVersion };
    },

    // The change log's trimming: only the records service's own identity; every tenant.
    async trimChangesDB(req, ctx) {
      requirePeer(ctx, "records");
      const v: Violation[] = [];
      const limit = req.limit === 0 ? TRIM_PAGE : req.limit;
      if (limit < 1 || limit > TRIM_MAX) v.push({ field: "limit", description: `must be 1..${TRIM_MAX} (0 means ${TRIM_PAGE})` });
      if (req.retentionDays < 1 || req.retentionDays > 3650) v.push({ field: "retentionDays", description: "must be 1..3650" });
      if (req.keepVersions < 0n || req.keepVersions > 100_000_000n) v.push({ field: "keepVersions", description: "must be 0..100000000" });
      if (v.length) throw invalid(v);
      const { rows, forgotten } = await db.system(async (sql) => {
        const trim = await sql.query<{ trimmed: string; full_batch: boolean }>("SELECT trimmed, full_batch FROM crm_trim_changes(make_interval(days => $1), $2, $3)", [req.retentionDays, String(req.keepVersions), limit]);
        // The same pass forgets create request ids past their window (request-ids.ts).
        const forget = await sql.query<{ n: string }>("SELECT crm_forget_request_ids(make_interval(hours => $1), $2) AS n", [REQUEST_ID_HOURS, limit]);
        return { rows: trim.rows, forgotten: Number(forget.rows[0]?.n ?? 0) };
      });
      return { trimmed: rows.reduce((n, r) => n + Number(r.trimmed), 0), more: rows.some((r) => r.full_batch) || forgotten >= limit };
    },
  };
}

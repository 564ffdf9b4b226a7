/**
 * DbRecordsService's RPCs behind WatchRecords: the tenant's version and its stored changes
 * (rec_changes, written by changes.ts with every change). WatchRecords itself runs in the records
 * service (src/watch.ts), which replays from here and goes live from the event bus.
 */
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { invalid, type Violation } from "@crm/kit";
import { decodeRecordChange } from "@crm/contracts/events";
import type { DbRecordsService } from "@crm/gen/crm/db/v1/db_records_pb";
import { ObjectType } from "@crm/gen/crm/records/v1/common_pb";
import type { Sql } from "@crm/dbservice/db";
import type { Acting } from "./acting.js";

type Tx = <T>(ctx: HandlerContext, fn: (sql: Sql, a: Acting) => Promise<T>) => Promise<T>;

/** Changes per ListChangesDB call: default and most. */
const CHANGES_PAGE = 500;
const CHANGES_MAX = 1000;
const changeKinds: Partial<Record<ObjectType, string>> = { [ObjectType.COMPANY]: "company", [ObjectType.PERSON]: "person", [ObjectType.DEAL]: "deal" };

export function streamStore(tx: Tx): Pick<ServiceImpl<typeof DbRecordsService>, "getRecordVersionDB" | "listChangesDB"> {
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
        const res = await sql.query<{ current: string; version: string | null; event: Buffer | null }>(
          `SELECT (SELECT coalesce(max(version), 0) FROM rec_versions)::text AS current, c.version::text AS version, c.event
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
      const changes = rows.filter((r) => r.event !== null).map((r) => decodeRecordChange(r.event!));
      const more = changes.length === limit;
      return { changes, more, throughVersion: more ? changes[changes.length - 1]!.version : current > req.afterVersion ? current : req.afterVersion };
    },
  };
}

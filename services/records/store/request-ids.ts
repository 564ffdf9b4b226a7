/**
 * Retry-safe creates (the request_id of Google's AIP-155): CreateCompany, CreatePerson, CreateDeal,
 * CreateTask and CreateNote take an optional UUID. The first create with it records which record it
 * made, in the same transaction (the row goes with the COMMIT, migration 290); the same user sending
 * the same id within 24 hours gets that record as it is now, and nothing is created. A create that
 * timed out or lost its connection can so be sent again without making a duplicate.
 *
 * Two creates racing with one id: the second finds nothing at its start, but its COMMIT waits on
 * the first's key and then fails on it; it is run once more and answers with the first's record.
 */
import type { HandlerContext } from "@connectrpc/connect";
import { AppError, invalid } from "@crm/kit";
import type { Db, Sql } from "@crm/dbservice/db";
import { isId, normalId } from "../src/rules.js";
import type { Acting, ConstraintInfo } from "./acting.js";
import { lit } from "./shared.js";

type Tx = <T>(ctx: HandlerContext, fn: (sql: Sql, a: Acting) => Promise<T>) => Promise<T>;

export type CreatedKind = "company" | "person" | "deal" | "task" | "note";

/** How long a request id answers with its record. */
export const REQUEST_ID_HOURS = 24;

const RACED = "a create with this requestId committed at the same time: send it again to get its record";

export const requestIdConstraints: Record<string, ConstraintInfo> = {
  rec_request_ids_pkey: { field: "requestId", reason: "already_exists", message: RACED },
};

/** The request id of a create, checked: undefined when none was sent. */
export function requestIdOf(value: string | undefined): string | undefined {
  const id = normalId(value ?? "");
  if (!id) return undefined;
  if (!isId(id)) throw invalid([{ field: "requestId", description: "must be a UUID (or empty): pick a new one for each create and send the same one when retrying it" }]);
  return id;
}

/** `create` made retry-safe by `requestId` (see above); `get` reads the record an earlier create made. */
export function retrySafeCreate(db: Db, tx: Tx) {
  return async function once<Row extends { id: string }>(
    ctx: HandlerContext,
    kind: CreatedKind,
    requestId: string | undefined,
    create: (sql: Sql, a: Acting) => Promise<Row>,
    get: (sql: Sql, id: string) => Promise<Row>,
  ): Promise<Row> {
    const key = requestIdOf(requestId);
    if (!key) return tx(ctx, create);
    for (let attempt = 0; ; attempt++) {
      try {
        return await tx(ctx, async (sql, a) => {
          // One round trip: forget this id if it is older than the window, and look it up.
          const { rows } = await sql.query<{ object_type: CreatedKind; record_id: string }>(
            `WITH expired AS (
               DELETE FROM rec_request_ids WHERE company_id = $1 AND user_id = $2 AND request_id = $3 AND created_at <= now() - make_interval(hours => $4)
             )
             SELECT object_type, record_id FROM rec_request_ids
             WHERE company_id = $1 AND user_id = $2 AND request_id = $3 AND created_at > now() - make_interval(hours => $4)`,
            [a.companyId, a.userId, key, REQUEST_ID_HOURS],
          );
          const seen = rows[0];
          if (seen) {
            if (seen.object_type !== kind) throw invalid([{ field: "requestId", description: `was sent with a ${seen.object_type} create already: pick a new UUID for each create` }]);
            return get(sql, seen.record_id);
          }
          const row = await create(sql, a);
          db.atCommit(
            sql,
            `INSERT INTO rec_request_ids (company_id, user_id, request_id, object_type, record_id)
             VALUES (${lit(sql, a.companyId)}, ${lit(sql, a.userId)}, ${lit(sql, key)}, ${lit(sql, kind)}, ${lit(sql, row.id)})`,
          );
          return row;
        });
      } catch (err) {
        if (attempt === 0 && err instanceof AppError && err.message === RACED) continue;
        throw err;
      }
    }
  };
}

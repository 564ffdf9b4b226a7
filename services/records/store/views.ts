/**
 * Saved views: rec_views. Who sees and changes which view is the policies' business (migration
 * 122: personal views their user only, shared ones everyone reads and owners and admins change);
 * the store says why a change is refused before the policy would.
 */
import { fromJson, toJson, type JsonValue, type MessageInitShape } from "@bufbuild/protobuf";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { AppError, invalid, type Violation } from "@crm/kit";
import type { DbRecordsService } from "@crm/gen/crm/db/v1/db_records_pb";
import { FilterSchema, ObjectType } from "@crm/gen/crm/records/v1/common_pb";
import type { View, ViewSchema } from "@crm/gen/crm/records/v1/view_pb";
import type { Sql } from "@crm/dbservice/db";
import {
  checkView, decodePageToken, encodePageToken, etagOf, hasCustom, mentionsCustom, pageSizeOf, pageSizeViolation, parseViewMask, queryFingerprint, viewKind, viewPaths,
  type SearchKind, type ViewPath,
} from "../src/rules.js";
import { loadCatalog } from "./custom.js";
import { isAdmin, type Acting, type ConstraintInfo } from "./acting.js";
import { etagArg, idOf, ts } from "./shared.js";

interface ViewRow {
  id: string;
  owner_id: string;
  object_type: SearchKind;
  name: string;
  filter: JsonValue | null;
  order_by: string;
  columns: string[];
  shared: boolean;
  show_deleted: boolean;
  version: string;
  created_at: Date;
  updated_at: Date;
}

/** The stored row, as a change reads it (its columns as saved). */
const RAW_COLS = "id, owner_id, object_type, name, filter, order_by, columns, shared, show_deleted, version, created_at, updated_at";
/**
 * The row as answered: a column naming a custom field is shown while the field of the view's type
 * is active. Archiving a field (custom fields are never deleted) leaves the views that show it
 * usable: the column is left out of every answer but kept as saved, so unarchiving the field shows
 * it again, as a record's values of an archived field are hidden and kept (custom.ts).
 */
const COLS = `id, owner_id, object_type, name, filter, order_by,
  ARRAY(SELECT u.c FROM unnest(rec_views.columns) WITH ORDINALITY AS u (c, n)
        WHERE u.c NOT LIKE 'custom.%'
           OR EXISTS (SELECT 1 FROM rec_fields f WHERE f.object_type = rec_views.object_type AND f.archived_at IS NULL AND 'custom.' || f.key = u.c)
        ORDER BY u.n) AS columns,
  shared, show_deleted, version, created_at, updated_at`;
const kindToProto: Record<SearchKind, ObjectType> = { company: ObjectType.COMPANY, person: ObjectType.PERSON, deal: ObjectType.DEAL };

export const viewConstraints: Record<string, ConstraintInfo> = {
  rec_views_shared_name_key: { field: "view.name", reason: "already_exists", message: "a shared view of this object type has this name already" },
  rec_views_personal_name_key: { field: "view.name", reason: "already_exists", message: "one of your views of this object type has this name already" },
  rec_views_name_check: { field: "view.name", reason: "invalid_argument", message: "must be 1..100 characters" },
  rec_views_columns_check: { field: "view.columns", reason: "invalid_argument", message: "at most 50 distinct fields" },
  rec_views_order_by_check: { field: "view.orderBy", reason: "invalid_argument", message: "must be at most 200 characters" },
};

export function toView(r: ViewRow): MessageInitShape<typeof ViewSchema> {
  return {
    id: r.id,
    name: r.name,
    objectType: kindToProto[r.object_type],
    filter: r.filter === null ? undefined : fromJson(FilterSchema, r.filter),
    orderBy: r.order_by,
    columns: r.columns,
    shared: r.shared,
    showDeleted: r.show_deleted,
    ownerId: r.owner_id,
    etag: etagOf(r.version),
    createTime: ts(r.created_at),
    updateTime: ts(r.updated_at),
  };
}

const notFound = (id: string) => new AppError("not_found", `no view ${id} that you can see (personal views are their user's only)`);
const filterJson = (f: View["filter"]) => (f && f.node.case !== undefined ? JSON.stringify(toJson(FilterSchema, f)) : null);

function may(a: Acting, shared: boolean, ownerId: string): string | undefined {
  if (shared && !isAdmin(a)) return "only owners and admins make or change shared views: keep it personal (shared: false)";
  if (!shared && ownerId !== a.userId) return "a personal view is changed by its own user only";
  return undefined;
}

/**
 * The view, locked for a change: not_found when the caller cannot see it, permission_denied when
 * they see it but may not change it (row-level security hides such a row from FOR UPDATE).
 */
async function lockView(sql: Sql, a: Acting, id: string): Promise<ViewRow> {
  const { rows } = await sql.query<ViewRow>(`SELECT ${RAW_COLS} FROM rec_views WHERE id = $1 FOR UPDATE`, [id]);
  const seen = rows[0] ?? (await sql.query<ViewRow>(`SELECT ${RAW_COLS} FROM rec_views WHERE id = $1`, [id])).rows[0];
  if (!seen) throw notFound(id);
  const refused = may(a, seen.shared, seen.owner_id);
  if (refused || !rows[0]) throw new AppError("permission_denied", refused ?? `you may not change view ${id}`);
  return seen;
}

/**
 * The view's fields in `paths` checked, its filter's, order's and columns' custom fields against
 * the definitions of its type read in this transaction (as List and WatchRecords check them): an
 * unknown or archived one is refused by its path, e.g. view.filter.and.filters[1].condition.field
 * or view.columns[2].
 */
async function checked(sql: Sql, v: Parameters<typeof checkView>[0], kind: SearchKind, paths: readonly ViewPath[], showDeleted: boolean): Promise<ReturnType<typeof checkView>> {
  const out: Violation[] = [];
  const customColumns = paths.includes("columns") && v.columns.some((c) => c.trim().startsWith("custom."));
  const custom = hasCustom(kind) && (customColumns || mentionsCustom(v.filter, v.orderBy)) ? await loadCatalog(sql, kind) : undefined;
  const input = checkView(v, kind, paths, showDeleted, out, "view", custom);
  if (out.length) throw invalid(out);
  return input;
}

export async function createView(sql: Sql, a: Acting, v: View): Promise<ViewRow> {
  const out: Violation[] = [];
  const kind = viewKind(v.objectType, out);
  if (!kind) throw invalid(out);
  const input = await checked(sql, v, kind, viewPaths, v.showDeleted);
  const refused = may(a, input.shared ?? false, a.userId);
  if (refused) throw new AppError("permission_denied", refused, [{ field: "view.shared", description: refused }]);
  const { rows } = await sql.query<ViewRow>(
    `INSERT INTO rec_views (company_id, owner_id, object_type, name, filter, order_by, columns, shared, show_deleted)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING ${COLS}`,
    [a.companyId, a.userId, kind, input.name, filterJson(input.filter), input.order_by, input.columns, input.shared, input.show_deleted],
  );
  return rows[0]!;
}

export async function getView(sql: Sql, id: string): Promise<ViewRow> {
  const { rows } = await sql.query<ViewRow>(`SELECT ${COLS} FROM rec_views WHERE id = $1`, [id]);
  if (!rows[0]) throw notFound(id);
  return rows[0];
}

export async function updateView(sql: Sql, a: Acting, v: View, id: string, paths: ViewPath[], etag: bigint | undefined): Promise<ViewRow> {
  const before = await lockView(sql, a, id);
  const has = (p: ViewPath) => paths.includes(p);
  // The view as it will be, checked whole: e.g. its filter may name delete_time only with
  // show_deleted. Its columns are checked when they change; kept, they stay as saved (a column of
  // a field archived since is hidden from answers, not an error that blocks changing the view).
  const next = {
    name: has("name") ? v.name : before.name,
    filter: has("filter") ? v.filter : before.filter === null ? undefined : fromJson(FilterSchema, before.filter),
    orderBy: has("order_by") ? v.orderBy : before.order_by,
    columns: has("columns") ? v.columns : before.columns,
    shared: has("shared") ? v.shared : before.shared,
    showDeleted: has("show_deleted") ? v.showDeleted : before.show_deleted,
  };
  const input = await checked(sql, next, before.object_type, has("columns") ? viewPaths : viewPaths.filter((p) => p !== "columns"), next.showDeleted);
  const refused = may(a, before.shared, before.owner_id) ?? may(a, next.shared, before.owner_id);
  if (refused) throw new AppError("permission_denied", refused);
  if (etag !== undefined && BigInt(before.version) !== etag) {
    throw new AppError("aborted", `view ${id} changed since you read it (etag ${etagOf(etag)}, now ${before.version}): read it again and retry`);
  }
  const { rows } = await sql.query<ViewRow>(
    `UPDATE rec_views SET name = $2, filter = $3, order_by = $4, columns = $5, shared = $6, show_deleted = $7, version = version + 1, updated_at = now()
     WHERE id = $1 RETURNING ${COLS}`,
    [id, input.name, filterJson(input.filter), input.order_by, input.columns ?? before.columns, input.shared, input.show_deleted],
  );
  return rows[0]!;
}

export async function deleteView(sql: Sql, a: Acting, id: string, etag: bigint | undefined): Promise<void> {
  const before = await lockView(sql, a, id);
  if (etag !== undefined && BigInt(before.version) !== etag) {
    throw new AppError("aborted", `view ${id} changed since you read it (etag ${etagOf(etag)}, now ${before.version}): read it again and retry`);
  }
  await sql.query("DELETE FROM rec_views WHERE id = $1", [id]);
}

/** The views the caller sees, by object type (unset: all) and name, a page at a time. */
export async function listViews(sql: Sql, objectType: ObjectType, pageSize: number, pageToken: string) {
  const out: Violation[] = [];
  const kind = objectType === ObjectType.UNSPECIFIED ? null : viewKind(objectType, out, "objectType");
  const fingerprint = queryFingerprint("view", [kind]);
  const cursor = decodePageToken(pageToken, fingerprint, 2, out);
  if (out.length) throw invalid(out);
  const size = pageSizeOf(pageSize);
  const { rows } = await sql.query<ViewRow & { name_key: string }>(
    `SELECT ${COLS}, lower(name) AS name_key FROM rec_views
     WHERE ($1::text IS NULL OR object_type = $1)
       AND ($2::text IS NULL OR (object_type, lower(name), id) > ($2::text, $3::text, $4::uuid))
     ORDER BY object_type, lower(name), id LIMIT $5`,
    [kind, cursor?.keys[0] ?? null, cursor?.keys[1] ?? null, cursor?.keys[2] ?? null, size + 1],
  );
  const page = rows.slice(0, size);
  const last = page[page.length - 1];
  return {
    views: page.map(toView),
    nextPageToken: rows.length > size && last ? encodePageToken(fingerprint, { keys: [last.object_type, last.name_key, last.id] }) : "",
  };
}

type Tx = <T>(ctx: HandlerContext, fn: (sql: Sql, a: Acting) => Promise<T>) => Promise<T>;

const done = (v: Violation[]) => {
  if (v.length) throw invalid(v);
};

/** DbRecordsService's RPCs of ViewService. */
export function viewStore(tx: Tx): Pick<ServiceImpl<typeof DbRecordsService>, "createViewDB" | "getViewDB" | "listViewsDB" | "updateViewDB" | "deleteViewDB"> {
  return {
    async createViewDB({ request: r }, ctx) {
      const view = r?.view;
      if (!view) throw invalid([{ field: "view", description: "is required" }]);
      return { response: { view: toView(await tx(ctx, (sql, a) => createView(sql, a, view))) } };
    },
    async getViewDB({ request: r }, ctx) {
      const id = idOf(r?.id ?? "");
      return { response: { view: toView(await tx(ctx, (sql) => getView(sql, id))) } };
    },
    async listViewsDB({ request: r }, ctx) {
      const v: Violation[] = [];
      const bad = pageSizeViolation(r?.pageSize ?? 0);
      if (bad) v.push(bad);
      if (r?.objectType) viewKind(r.objectType, v, "objectType");
      done(v);
      return { response: await tx(ctx, (sql) => listViews(sql, r?.objectType ?? ObjectType.UNSPECIFIED, r?.pageSize ?? 0, r?.pageToken ?? "")) };
    },
    async updateViewDB({ request: r }, ctx) {
      const view = r?.view;
      if (!view) throw invalid([{ field: "view", description: "is required" }]);
      const id = idOf(view.id, "view.id");
      const etag = etagArg(view.etag, "view.etag");
      const v: Violation[] = [];
      const paths = parseViewMask(r?.updateMask?.paths ?? [], v);
      done(v);
      return { response: { view: toView(await tx(ctx, (sql, a) => updateView(sql, a, view, id, paths, etag))) } };
    },
    async deleteViewDB({ request: r }, ctx) {
      const id = idOf(r?.id ?? "");
      const etag = etagArg(r?.etag ?? "");
      await tx(ctx, (sql, a) => deleteView(sql, a, id, etag));
      return { response: {} };
    },
  };
}

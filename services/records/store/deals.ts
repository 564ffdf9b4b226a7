/**
 * Deals: rec_deals, their people (rec_deal_people) and stage history. A deal's place in its stage
 * is a fractional-indexing key (../src/rules.ts positionBetween): every placement into a stage
 * (create, move, a removed stage's deals) first takes that stage's advisory lock, reads the
 * neighbours and writes a key between them, so concurrent moves into one stage run one after the
 * other and each gets a key of its own: one total order (the unique (stage_id, position) index
 * backs it), and no move is lost. Lock order: the stage, then the deal.
 *
 * The writes (create, update, move) take few round trips: what depends on nothing goes in one
 * (`batch`: a lock, then the reads it guards, each statement with a fresh snapshot), the row
 * comes back from the statement that writes it (RETURNING: no read after), and the timeline entry
 * and the change's event go with the COMMIT (shared.ts noteChange, changes.ts publishChanges).
 */
import { randomUUID } from "node:crypto";
import type { JsonObject, MessageInitShape } from "@bufbuild/protobuf";
import { AppError, invalid, type Violation } from "@crm/kit";
import { DealStatus, type Deal, type DealSchema, type MoveDealRequest } from "@crm/gen/crm/records/v1/deal_pb";
import type pg from "pg";
import type { Sql } from "@crm/dbservice/db";
import { applyCustom, customScope, customSnapshot } from "../src/rules.js";
import { checkDeal, diff, etagOf, normalId, isId, parseEtag, positionBetween, textViolation, updatable, LIMITS, type DealInput, type Snapshot, type StageKindName } from "../src/rules.js";
import type { Acting, ConstraintInfo } from "./acting.js";
import { snapshotOf } from "./changes.js";
import { customPatch, defsOf, defsSelect, patchParams, visibleCustom, type DefRow } from "./custom.js";
import type { ListSpec } from "./lists.js";
import { stageLockSql } from "./pipelines.js";
import { assigneeFor, batch, checkLocked, iso, lit, lockForChange, lockingSelect, noteChange, notFound, ownerFor, purgeTime, ts } from "./shared.js";

export interface DealRow {
  id: string;
  name: string;
  pipeline_id: string;
  stage_id: string;
  position: string;
  amount_minor: string | null;
  currency_code: string | null;
  expected_close_date: string | null;
  status: StageKindName;
  lost_reason: string;
  rec_company_id: string | null;
  person_ids: string[];
  owner_id: string;
  assignee_id: string | null;
  custom: JsonObject;
  version: string;
  stage_entered_at: Date;
  closed_at: Date | null;
  created_at: Date;
  updated_at: Date;
  deleted_at: Date | null;
}

const PEOPLE = "coalesce((SELECT array_agg(dp.person_id ORDER BY dp.ord) FROM rec_deal_people dp WHERE dp.deal_id = d.id), '{}'::uuid[]) AS person_ids";
const COLS = `d.id, d.name, d.pipeline_id, d.stage_id, d.position, d.amount_minor, d.currency_code, to_char(d.expected_close_date, 'YYYY-MM-DD') AS expected_close_date,
  d.status, d.lost_reason, d.rec_company_id, d.owner_id, d.assignee_id, d.version, d.stage_entered_at, d.closed_at, d.created_at, d.updated_at, d.deleted_at, ${PEOPLE}, ${visibleCustom("d", "deal")}`;
const SELECT = `SELECT ${COLS} FROM rec_deals d`;

export const dealConstraints: Record<string, ConstraintInfo> = {
  rec_deals_name_check: { field: "deal.name", reason: "invalid_argument", message: "must be 1..200 characters" },
  rec_deals_amount_minor_check: { field: "deal.amountMinor", reason: "invalid_argument", message: "must be 0 or more" },
  rec_deals_currency_code_check: { field: "deal.currencyCode", reason: "invalid_argument", message: 'must be an ISO 4217 code such as "EUR"' },
  rec_deals_amount_check: { field: "deal.currencyCode", reason: "invalid_argument", message: "set amountMinor and currencyCode together, or neither" },
  rec_deals_lost_reason_check: { field: "deal.lostReason", reason: "invalid_argument", message: "must be at most 500 characters" },
  rec_deals_company_id_owner_id_fkey: { field: "deal.ownerId", reason: "not_found", message: "names no user of your company" },
  rec_deals_assignee_fkey: { field: "deal.assigneeId", reason: "not_found", message: "names no user of your company" },
  rec_deals_company_id_rec_company_id_fkey: { field: "deal.companyId", reason: "not_found", message: "names no company of yours" },
  rec_deal_people_company_id_person_id_fkey: { field: "deal.personIds", reason: "not_found", message: "names a person who is not in your company's records" },
  rec_deals_position_key: { reason: "failed_precondition", message: "two moves into the stage collided; retry" },
};

const statusToProto: Record<StageKindName, DealStatus> = { open: DealStatus.OPEN, won: DealStatus.WON, lost: DealStatus.LOST };

export function toDeal(r: DealRow): MessageInitShape<typeof DealSchema> {
  return {
    id: r.id,
    name: r.name,
    pipelineId: r.pipeline_id,
    stageId: r.stage_id,
    position: r.position,
    amountMinor: r.amount_minor === null ? undefined : BigInt(r.amount_minor),
    currencyCode: r.currency_code ?? "",
    expectedCloseDate: r.expected_close_date ?? "",
    status: statusToProto[r.status],
    lostReason: r.lost_reason,
    companyId: r.rec_company_id ?? "",
    personIds: r.person_ids,
    ownerId: r.owner_id,
    assigneeId: r.assignee_id ?? "",
    custom: r.custom,
    etag: etagOf(r.version),
    stageEnterTime: ts(r.stage_entered_at),
    closeTime: ts(r.closed_at),
    createTime: ts(r.created_at),
    updateTime: ts(r.updated_at),
    deleteTime: ts(r.deleted_at),
    purgeTime: purgeTime(r.deleted_at),
  };
}

function snapshot(r: DealRow): Snapshot {
  return {
    name: r.name,
    pipeline_id: r.pipeline_id,
    stage_id: r.stage_id,
    position: r.position,
    amount_minor: r.amount_minor,
    currency_code: r.currency_code,
    expected_close_date: r.expected_close_date,
    status: r.status,
    lost_reason: r.lost_reason,
    company_id: r.rec_company_id,
    person_ids: r.person_ids,
    owner_id: r.owner_id,
    assignee_id: r.assignee_id,
    ...customSnapshot(r.custom),
  };
}

export const dealList: ListSpec = {
  kind: "deal",
  from: "rec_deals d",
  alias: "d",
  select: COLS,
  columns: {
    id: { expr: "d.id", notNull: true },
    owner_id: { expr: "d.owner_id" },
    assignee_id: { expr: "d.assignee_id" },
    create_time: { expr: "d.created_at", notNull: true },
    update_time: { expr: "d.updated_at", notNull: true },
    delete_time: { expr: "d.deleted_at" },
    name: { expr: "d.name" },
    pipeline_id: { expr: "d.pipeline_id" },
    stage_id: { expr: "d.stage_id" },
    position: { expr: "d.position", sort: 'd.position COLLATE "C"' },
    amount_minor: { expr: "d.amount_minor" },
    currency_code: { expr: "d.currency_code" },
    expected_close_date: { expr: "d.expected_close_date" },
    status: { expr: "d.status" },
    lost_reason: { expr: "d.lost_reason" },
    company_id: { expr: "d.rec_company_id" },
    person_ids: { links: { from: "rec_deal_people dp", join: "dp.deal_id = d.id", elem: "dp.person_id" } },
    stage_enter_time: { expr: "d.stage_entered_at" },
    close_time: { expr: "d.closed_at" },
  },
};


interface StageRef {
  id: string;
  pipeline_id: string;
  kind: StageKindName;
}

async function stageRef(sql: Sql, id: string, field: string): Promise<StageRef> {
  const { rows } = await sql.query<StageRef>("SELECT id, pipeline_id, kind FROM rec_stages WHERE id = $1", [id]);
  return stageFound(rows[0], id, field);
}

function stageFound(row: StageRef | undefined, id: string, field: string): StageRef {
  if (!row) throw new AppError("not_found", `no stage ${id} in your company`, [{ field, description: "names no stage of yours" }]);
  return row;
}

/** not_found naming each reference that is not a live record of the tenant. */
async function referencesExist(sql: Sql, input: DealInput): Promise<void> {
  const v: Violation[] = [];
  if (input.company_id) {
    const { rowCount } = await sql.query("SELECT 1 FROM rec_companies WHERE id = $1 AND deleted_at IS NULL", [input.company_id]);
    if (!rowCount) v.push({ field: "deal.companyId", description: `names no company of yours (or one in the trash): ${input.company_id}` });
  }
  if (input.person_ids?.length) {
    const { rows } = await sql.query<{ id: string }>("SELECT id FROM rec_people WHERE id = ANY($1::uuid[]) AND deleted_at IS NULL", [input.person_ids]);
    const found = new Set(rows.map((r) => r.id));
    input.person_ids.forEach((id, i) => {
      if (!found.has(id)) v.push({ field: `deal.personIds[${i}]`, description: `names no person of yours (or one in the trash): ${id}` });
    });
  }
  if (v.length) throw new AppError("not_found", v.map((x) => `${x.field} ${x.description}`).join("; "), v);
}

async function writePeople(sql: Sql, a: Acting, id: string, people: string[] | undefined, creating: boolean): Promise<void> {
  if (people === undefined) return;
  if (!creating) await sql.query("DELETE FROM rec_deal_people WHERE deal_id = $1", [id]);
  if (people.length) {
    await sql.query(
      "INSERT INTO rec_deal_people (company_id, deal_id, person_id, ord) SELECT $1, $2, p.id, p.ord - 1 FROM unnest($3::uuid[]) WITH ORDINALITY AS p (id, ord)",
      [a.companyId, id, people],
    );
  }
}

export async function getDeal(sql: Sql, id: string): Promise<DealRow> {
  const { rows } = await sql.query<DealRow>(`${SELECT} WHERE d.id = $1`, [id]);
  if (!rows[0]) throw notFound("deal", id);
  return rows[0];
}

/** The deal's event snapshot (changes.ts), from the row its write returned. */
const dealSnapshot = (row: DealRow) => snapshotOf("deal", toDeal(row));

export async function createDeal(sql: Sql, a: Acting, d: Deal): Promise<DealRow> {
  const v: Violation[] = [];
  const input = checkDeal(d, updatable.deal, v);
  const stageId = normalId(d.stageId);
  const pipelineId = normalId(d.pipelineId);
  if (stageId && !isId(stageId)) v.push({ field: "deal.stageId", description: "must be a stage id (UUID)" });
  if (pipelineId && !isId(pipelineId)) v.push({ field: "deal.pipelineId", description: "must be a pipeline id (UUID)" });
  if (!stageId && !pipelineId) v.push({ field: "deal.stageId", description: "is required: the stage to put the deal in (or pipelineId, for its first stage)" });
  // One round trip: the custom fields' definitions and the stage (named, or the pipeline's first);
  // a named stage's lock and last key too (read after the lock: a fresh snapshot, every placement
  // before it committed). A request refused below took the lock for nothing: it rolls back.
  const lastSql = (stage: string) => `SELECT max(position) AS p FROM rec_deals WHERE stage_id = ${stage}`;
  const named = !v.length && stageId ? lit(sql, stageId) : undefined;
  const stageSql = v.length
    ? []
    : named
      ? [`SELECT id, pipeline_id, kind, true AS pipeline_found FROM rec_stages WHERE id = ${named}`, stageLockSql(named), lastSql(named)]
      : [`SELECT s.id, s.pipeline_id, s.kind, true AS pipeline_found FROM rec_pipelines p
           LEFT JOIN LATERAL (SELECT id, pipeline_id, kind FROM rec_stages WHERE pipeline_id = p.id ORDER BY sort_order LIMIT 1) s ON true
          WHERE p.id = ${lit(sql, pipelineId)}`];
  const [defs, found, , lastNamed] = await batch(sql, [defsSelect("'deal'"), ...stageSql]);
  const patch = await customPatch(sql, "deal", d.custom, "all", v, "deal", defsOf(defs!.rows as DefRow[]));
  const got = found!.rows[0] as (StageRef & { pipeline_found: boolean }) | undefined;
  let stage: StageRef;
  if (stageId) {
    stage = stageFound(got, stageId, "deal.stageId");
    if (pipelineId && stage.pipeline_id !== pipelineId) throw invalid([{ field: "deal.stageId", description: `is a stage of pipeline ${stage.pipeline_id}, not of ${pipelineId}` }]);
  } else {
    if (!got?.pipeline_found) throw new AppError("not_found", `no pipeline ${pipelineId} in your company`, [{ field: "deal.pipelineId", description: "names no pipeline of yours" }]);
    if (!got.id) throw new AppError("failed_precondition", `pipeline ${pipelineId} has no stages yet: add one with CreateStage`);
    stage = got;
  }
  const owner = await ownerFor(sql, a, input.owner_id, "deal.ownerId");
  const assignee = await assigneeFor(sql, a, input.assignee_id ?? null, null, "deal.assigneeId");
  await referencesExist(sql, input);
  // The pipeline's first stage: its lock, then its last key read after it.
  const last = lastNamed ?? (await batch(sql, [stageLockSql(lit(sql, stage.id)), lastSql(lit(sql, stage.id))]))[1];
  const position = positionBetween((last!.rows[0] as { p: string | null } | undefined)?.p ?? null, null);
  // One round trip: the deal (returned as stored), then its people and its stage history, whose
  // policies look the deal up (so they are statements of their own, after it).
  const id = randomUUID();
  const l = (v: string | null | undefined) => lit(sql, v);
  const people = input.person_ids ?? [];
  const [inserted] = await batch(sql, [
    `INSERT INTO rec_deals AS d (id, company_id, name, pipeline_id, stage_id, position, amount_minor, currency_code, expected_close_date, status, lost_reason, rec_company_id, owner_id, closed_at, custom, assignee_id)
     VALUES (${l(id)}, ${l(a.companyId)}, ${l(input.name)}, ${l(stage.pipeline_id)}, ${l(stage.id)}, ${l(position)}, ${l(input.amount_minor)}, ${l(input.currency_code)}, ${l(input.expected_close_date)},
             ${l(stage.kind)}, ${l(input.lost_reason)}, ${l(input.company_id)}, ${l(owner)}, ${stage.kind === "open" ? "NULL" : "now()"}, ${l(JSON.stringify(patch.set))}, ${l(assignee)})
     RETURNING ${COLS}`,
    ...(people.length
      ? [`INSERT INTO rec_deal_people (company_id, deal_id, person_id, ord) SELECT ${l(a.companyId)}, ${l(id)}, x.id, x.ord - 1 FROM unnest(ARRAY[${people.map(l).join(", ")}]::uuid[]) WITH ORDINALITY AS x (id, ord)`]
      : []),
    `INSERT INTO rec_deal_stage_history (company_id, deal_id, stage_id, entered_at, actor_id) VALUES (${l(a.companyId)}, ${l(id)}, ${l(stage.id)}, now(), ${l(a.userId)})`,
  ]);
  const rows = inserted!.rows as DealRow[];
  // The people were written after the deal: its RETURNING could not see them.
  const row: DealRow = { ...rows[0]!, person_ids: input.person_ids ?? [] };
  noteChange(a, "deal", row.id, "created", diff({}, snapshot(row)), dealSnapshot(row));
  return row;
}

export async function updateDeal(sql: Sql, a: Acting, id: string, d: Deal, paths: string[], etag: bigint | undefined): Promise<DealRow> {
  const v: Violation[] = [];
  const input: DealInput = checkDeal(d, paths, v);
  const patch = await customPatch(sql, "deal", d.custom, customScope(paths), v, "deal");
  const before = await lockForChange<DealRow>(sql, a, "deal", SELECT, id, { etag });
  const next: DealRow = { ...before, custom: applyCustom(before.custom, patch) };
  if (input.name !== undefined) next.name = input.name;
  if (input.amount_minor !== undefined) next.amount_minor = input.amount_minor;
  if (input.currency_code !== undefined) next.currency_code = input.currency_code;
  if (input.expected_close_date !== undefined) next.expected_close_date = input.expected_close_date;
  if (input.lost_reason !== undefined) next.lost_reason = input.lost_reason;
  if (input.company_id !== undefined) next.rec_company_id = input.company_id;
  if (input.person_ids !== undefined) next.person_ids = input.person_ids;
  if (paths.includes("owner_id")) next.owner_id = await ownerFor(sql, a, input.owner_id ?? before.owner_id, "deal.ownerId");
  if (paths.includes("assignee_id")) next.assignee_id = await assigneeFor(sql, a, input.assignee_id ?? null, before, "deal.assigneeId");
  const changes = diff(snapshot(before), snapshot(next));
  if (changes.length === 0) return before;
  const touched = new Set(changes.map((c) => c.field));
  await referencesExist(sql, { company_id: touched.has("company_id") ? next.rec_company_id : null, person_ids: touched.has("person_ids") ? next.person_ids : undefined });
  // The people first, so that the deal's RETURNING reads them.
  if (touched.has("person_ids")) await writePeople(sql, a, id, next.person_ids, false);
  const { rows } = await sql.query<DealRow>(
    `UPDATE rec_deals AS d SET name = $2, amount_minor = $3, currency_code = $4, expected_close_date = $5, lost_reason = $6, rec_company_id = $7, owner_id = $8,
            custom = (d.custom - $9::text[]) || $10::jsonb, assignee_id = $11, version = d.version + 1, updated_at = now() WHERE d.id = $1
     RETURNING ${COLS}`,
    [id, next.name, next.amount_minor, next.currency_code, next.expected_close_date, next.lost_reason, next.rec_company_id, next.owner_id, ...patchParams(patch), next.assignee_id],
  );
  const after = rows[0]!;
  noteChange(a, "deal", id, "updated", changes, dealSnapshot(after));
  return after;
}

/**
 * The statement that reads the neighbours of the deal's new place in the stage (`lo`, `hi`: the
 * keys it goes between; no row when the named neighbour is not in the stage), as literals: for
 * the batch after the stage's lock.
 */
function neighboursSql(sql: Sql, stageId: string, self: string, req: { afterDealId: string; beforeDealId: string; top: boolean }): string {
  const stage = lit(sql, stageId);
  const others = `FROM rec_deals WHERE stage_id = ${stage} AND id <> ${lit(sql, self)}`;
  if (req.afterDealId) return `SELECT n.position AS lo, (SELECT min(position) ${others} AND position > n.position COLLATE "C") AS hi FROM rec_deals n WHERE n.id = ${lit(sql, req.afterDealId)} AND n.stage_id = ${stage}`;
  if (req.beforeDealId) return `SELECT (SELECT max(position) ${others} AND position < n.position COLLATE "C") AS lo, n.position AS hi FROM rec_deals n WHERE n.id = ${lit(sql, req.beforeDealId)} AND n.stage_id = ${stage}`;
  if (req.top) return `SELECT NULL::text AS lo, (SELECT min(position) ${others}) AS hi`;
  return `SELECT (SELECT max(position) ${others}) AS lo, NULL::text AS hi`;
}

export async function moveDeal(sql: Sql, a: Acting, req: MoveDealRequest): Promise<DealRow> {
  const v: Violation[] = [];
  const id = normalId(req.id);
  const ids = { stageId: normalId(req.stageId), afterDealId: normalId(req.afterDealId), beforeDealId: normalId(req.beforeDealId) };
  if (!isId(id)) v.push({ field: "id", description: "must be the deal's id (UUID)" });
  for (const [field, value] of Object.entries(ids)) if (value && !isId(value)) v.push({ field, description: "must be an id (UUID)" });
  if (ids.afterDealId && ids.beforeDealId) v.push({ field: "beforeDealId", description: "set afterDealId or beforeDealId, not both" });
  if (ids.afterDealId === id || ids.beforeDealId === id) v.push({ field: ids.afterDealId === id ? "afterDealId" : "beforeDealId", description: "names the deal being moved" });
  const lost = textViolation(req.lostReason.trim(), "lostReason", LIMITS.lostReason);
  if (lost) v.push(lost);
  const etag = parseEtag(req.etag);
  if (etag === "bad") v.push({ field: "etag", description: "is not an etag this service returned: read the deal again and send its etag" });
  if (v.length || etag === "bad") throw invalid(v);

  // Lock order: the stage, then the deal. One round trip: the target stage, its lock, then (fresh
  // snapshots) the deal locked and the neighbours of its new place. Without a target stage the
  // deal's own is read first, without a lock.
  const placing = (stage: string) => [stageLockSql(lit(sql, stage)), lockingSelect("deal", SELECT, lit(sql, id)), neighboursSql(sql, stage, id, { ...ids, top: req.top })];
  let target: StageRef;
  let locked: DealRow | undefined;
  let around: pg.QueryResult | undefined;
  const mismatch = (deal: { pipeline_id: string }) =>
    invalid([{ field: "stageId", description: `is a stage of pipeline ${target.pipeline_id}; the deal is in pipeline ${deal.pipeline_id}` }]);
  if (ids.stageId) {
    const [stage, , row, keys] = await batch(sql, [`SELECT id, pipeline_id, kind FROM rec_stages WHERE id = ${lit(sql, ids.stageId)}`, ...placing(ids.stageId)]);
    locked = row!.rows[0] as DealRow | undefined;
    // A deal that is not there (or not the caller's to change) is named before the stage.
    if (!locked) await checkLocked<DealRow>(sql, a, "deal", undefined, id, { etag });
    target = stageFound(stage!.rows[0] as StageRef | undefined, ids.stageId, "stageId");
    if (target.pipeline_id !== locked!.pipeline_id) throw mismatch(locked!);
    around = keys;
  } else {
    const { rows: current } = await sql.query<{ stage_id: string; pipeline_id: string; target: StageRef | null }>(
      `SELECT d.stage_id, d.pipeline_id, (SELECT json_build_object('id', s.id, 'pipeline_id', s.pipeline_id, 'kind', s.kind) FROM rec_stages s WHERE s.id = d.stage_id) AS target
       FROM rec_deals d WHERE d.id = $1`,
      [id],
    );
    if (!current[0]) throw notFound("deal", id);
    target = stageFound(current[0].target ?? undefined, current[0].stage_id, "stageId");
    const [, row, keys] = await batch(sql, placing(target.id));
    locked = row!.rows[0] as DealRow | undefined;
    around = keys;
  }
  const before = await checkLocked<DealRow>(sql, a, "deal", locked, id, { etag });
  if (!ids.stageId && before.stage_id !== target.id) throw new AppError("aborted", `deal ${id} moved to another stage meanwhile: read it again and retry`);
  const keys = around!.rows[0] as { lo: string | null; hi: string | null } | undefined;
  if (!keys) {
    const [field, other] = ids.afterDealId ? ["afterDealId", ids.afterDealId] : ["beforeDealId", ids.beforeDealId];
    throw new AppError("failed_precondition", `deal ${other} is not in stage ${target.id} (any more): read the stage again and retry`, [{ field, description: "is not in that stage" }]);
  }
  const position = positionBetween(keys.lo, keys.hi);
  const stageChanged = target.id !== before.stage_id;
  const lostReason = target.kind === "lost" ? (req.lostReason.trim() || (before.status === "lost" ? before.lost_reason : "")) : "";
  const deal = lit(sql, id);
  const kind = lit(sql, target.kind);
  // One round trip: the stage history (when the stage changes) and the deal, returned as stored.
  const results = await batch(sql, [
    ...(stageChanged
      ? [
          `UPDATE rec_deal_stage_history SET left_at = now() WHERE deal_id = ${deal} AND left_at IS NULL`,
          `INSERT INTO rec_deal_stage_history (company_id, deal_id, stage_id, entered_at, actor_id) VALUES (${lit(sql, a.companyId)}, ${deal}, ${lit(sql, target.id)}, now(), ${lit(sql, a.userId)})`,
        ]
      : []),
    `UPDATE rec_deals AS d SET stage_id = ${lit(sql, target.id)}, position = ${lit(sql, position)}, status = ${kind}, lost_reason = ${lit(sql, lostReason)},
            closed_at = CASE WHEN ${kind} = 'open' THEN NULL WHEN d.status = ${kind} THEN d.closed_at ELSE now() END,
            stage_entered_at = CASE WHEN ${lit(sql, stageChanged)} THEN now() ELSE d.stage_entered_at END,
            version = d.version + 1, updated_at = now()
     WHERE d.id = ${deal}
     RETURNING ${COLS}`,
  ]);
  const after = results[results.length - 1]!.rows[0] as DealRow;
  noteChange(a, "deal", id, stageChanged ? "stage_changed" : "updated", diff(snapshot(before), snapshot(after)), dealSnapshot(after));
  return after;
}

export async function trashDeal(sql: Sql, a: Acting, id: string, trash: boolean, etag?: bigint): Promise<DealRow> {
  const before = await lockForChange<DealRow>(sql, a, "deal", SELECT, id, { etag, trash: "allow" });
  if (Boolean(before.deleted_at) === trash) return before;
  const { rows } = await sql.query<DealRow>(`UPDATE rec_deals AS d SET deleted_at = ${trash ? "now()" : "NULL"}, version = d.version + 1, updated_at = now() WHERE d.id = $1 RETURNING ${COLS}`, [id]);
  const after = rows[0]!;
  noteChange(a, "deal", id, trash ? "deleted" : "restored", [{ field: "delete_time", before: iso(before.deleted_at), after: iso(after.deleted_at) }], dealSnapshot(after));
  return after;
}

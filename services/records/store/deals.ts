/**
 * Deals: rec_deals, their people (rec_deal_people) and stage history. A deal's place in its stage
 * is a fractional-indexing key (../src/rules.ts positionBetween): every placement into a stage
 * (create, move, a removed stage's deals) first takes that stage's advisory lock, reads the
 * neighbours and writes a key between them, so concurrent moves into one stage run one after the
 * other and each gets a key of its own: one total order (the unique (stage_id, position) index
 * backs it), and no move is lost. Lock order: the stage, then the deal.
 */
import type { JsonObject, MessageInitShape } from "@bufbuild/protobuf";
import { AppError, invalid, type Violation } from "@crm/kit";
import { DealStatus, type Deal, type DealSchema, type MoveDealRequest } from "@crm/gen/crm/records/v1/deal_pb";
import type { Sql } from "@crm/dbservice/db";
import { applyCustom, customScope, customSnapshot } from "../src/rules.js";
import { checkDeal, diff, etagOf, normalId, isId, parseEtag, positionBetween, textViolation, updatable, LIMITS, type DealInput, type Snapshot, type StageKindName } from "../src/rules.js";
import type { Acting, ConstraintInfo } from "./acting.js";
import { customPatch, patchParams, visibleCustom } from "./custom.js";
import type { ListSpec } from "./lists.js";
import { lockStage } from "./pipelines.js";
import { assigneeFor, iso, lockForChange, notFound, ownerFor, purgeTime, ts, writeTimeline } from "./shared.js";

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
    id: { expr: "d.id" },
    owner_id: { expr: "d.owner_id" },
    assignee_id: { expr: "d.assignee_id" },
    create_time: { expr: "d.created_at" },
    update_time: { expr: "d.updated_at" },
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
  if (!rows[0]) throw new AppError("not_found", `no stage ${id} in your company`, [{ field, description: "names no stage of yours" }]);
  return rows[0];
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

async function lastPosition(sql: Sql, stageId: string): Promise<string | null> {
  const { rows } = await sql.query<{ p: string | null }>("SELECT max(position) AS p FROM rec_deals WHERE stage_id = $1", [stageId]);
  return rows[0]?.p ?? null;
}

export async function createDeal(sql: Sql, a: Acting, d: Deal): Promise<DealRow> {
  const v: Violation[] = [];
  const input = checkDeal(d, updatable.deal, v);
  const stageId = normalId(d.stageId);
  const pipelineId = normalId(d.pipelineId);
  if (stageId && !isId(stageId)) v.push({ field: "deal.stageId", description: "must be a stage id (UUID)" });
  if (pipelineId && !isId(pipelineId)) v.push({ field: "deal.pipelineId", description: "must be a pipeline id (UUID)" });
  if (!stageId && !pipelineId) v.push({ field: "deal.stageId", description: "is required: the stage to put the deal in (or pipelineId, for its first stage)" });
  const patch = await customPatch(sql, "deal", d.custom, "all", v, "deal");
  let stage: StageRef;
  if (stageId) {
    stage = await stageRef(sql, stageId, "deal.stageId");
    if (pipelineId && stage.pipeline_id !== pipelineId) throw invalid([{ field: "deal.stageId", description: `is a stage of pipeline ${stage.pipeline_id}, not of ${pipelineId}` }]);
  } else {
    const { rows: p } = await sql.query("SELECT 1 FROM rec_pipelines WHERE id = $1", [pipelineId]);
    if (!p[0]) throw new AppError("not_found", `no pipeline ${pipelineId} in your company`, [{ field: "deal.pipelineId", description: "names no pipeline of yours" }]);
    const { rows } = await sql.query<StageRef>("SELECT id, pipeline_id, kind FROM rec_stages WHERE pipeline_id = $1 ORDER BY sort_order LIMIT 1", [pipelineId]);
    if (!rows[0]) throw new AppError("failed_precondition", `pipeline ${pipelineId} has no stages yet: add one with CreateStage`);
    stage = rows[0];
  }
  const owner = await ownerFor(sql, a, input.owner_id, "deal.ownerId");
  const assignee = await assigneeFor(sql, a, input.assignee_id ?? null, null, "deal.assigneeId");
  await referencesExist(sql, input);
  await lockStage(sql, stage.id);
  const position = positionBetween(await lastPosition(sql, stage.id), null);
  const { rows } = await sql.query<{ id: string }>(
    `INSERT INTO rec_deals (company_id, name, pipeline_id, stage_id, position, amount_minor, currency_code, expected_close_date, status, lost_reason, rec_company_id, owner_id, closed_at, custom, assignee_id)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, CASE WHEN $9 = 'open' THEN NULL ELSE now() END, $13, $14) RETURNING id`,
    [a.companyId, input.name, stage.pipeline_id, stage.id, position, input.amount_minor, input.currency_code, input.expected_close_date, stage.kind, input.lost_reason, input.company_id, owner, JSON.stringify(patch.set), assignee],
  );
  const id = rows[0]!.id;
  await writePeople(sql, a, id, input.person_ids, true);
  await sql.query("INSERT INTO rec_deal_stage_history (company_id, deal_id, stage_id, entered_at, actor_id) VALUES ($1, $2, $3, now(), $4)", [a.companyId, id, stage.id, a.userId]);
  const row = await getDeal(sql, id);
  await writeTimeline(sql, a, "deal", id, "created", diff({}, snapshot(row)));
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
  await sql.query(
    `UPDATE rec_deals SET name = $2, amount_minor = $3, currency_code = $4, expected_close_date = $5, lost_reason = $6, rec_company_id = $7, owner_id = $8,
            custom = (custom - $9::text[]) || $10::jsonb, assignee_id = $11, version = version + 1, updated_at = now() WHERE id = $1`,
    [id, next.name, next.amount_minor, next.currency_code, next.expected_close_date, next.lost_reason, next.rec_company_id, next.owner_id, ...patchParams(patch), next.assignee_id],
  );
  if (touched.has("person_ids")) await writePeople(sql, a, id, next.person_ids, false);
  await writeTimeline(sql, a, "deal", id, "updated", changes);
  return getDeal(sql, id);
}

/** The key between the named neighbour (or an end of the stage) and the next deal. */
async function placeIn(sql: Sql, stageId: string, self: string, req: { afterDealId: string; beforeDealId: string; top: boolean }): Promise<string> {
  const neighbour = async (id: string, field: string) => {
    const { rows } = await sql.query<{ position: string }>("SELECT position FROM rec_deals WHERE id = $1 AND stage_id = $2", [id, stageId]);
    if (!rows[0]) throw new AppError("failed_precondition", `deal ${id} is not in stage ${stageId} (any more): read the stage again and retry`, [{ field, description: "is not in that stage" }]);
    return rows[0].position;
  };
  const next = async (pos: string | null, dir: "after" | "before") => {
    const { rows } = await sql.query<{ p: string | null }>(
      dir === "after"
        ? `SELECT min(position) AS p FROM rec_deals WHERE stage_id = $1 AND id <> $2 AND ($3::text IS NULL OR position > $3::text COLLATE "C")`
        : `SELECT max(position) AS p FROM rec_deals WHERE stage_id = $1 AND id <> $2 AND ($3::text IS NULL OR position < $3::text COLLATE "C")`,
      [stageId, self, pos],
    );
    return rows[0]?.p ?? null;
  };
  if (req.afterDealId) {
    const a = await neighbour(req.afterDealId, "afterDealId");
    return positionBetween(a, await next(a, "after"));
  }
  if (req.beforeDealId) {
    const b = await neighbour(req.beforeDealId, "beforeDealId");
    return positionBetween(await next(b, "before"), b);
  }
  if (req.top) return positionBetween(null, await next(null, "after"));
  return positionBetween(await next(null, "before"), null);
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

  // The stage first (lock order: stage, then deal), so the deal's stage is read without a lock.
  const { rows: current } = await sql.query<{ stage_id: string; pipeline_id: string }>("SELECT stage_id, pipeline_id FROM rec_deals WHERE id = $1", [id]);
  if (!current[0]) throw notFound("deal", id);
  const target = await stageRef(sql, ids.stageId || current[0].stage_id, "stageId");
  if (target.pipeline_id !== current[0].pipeline_id) throw invalid([{ field: "stageId", description: `is a stage of pipeline ${target.pipeline_id}; the deal is in pipeline ${current[0].pipeline_id}` }]);
  await lockStage(sql, target.id);
  const before = await lockForChange<DealRow>(sql, a, "deal", SELECT, id, { etag });
  if (!ids.stageId && before.stage_id !== target.id) throw new AppError("aborted", `deal ${id} moved to another stage meanwhile: read it again and retry`);
  const position = await placeIn(sql, target.id, id, { afterDealId: ids.afterDealId, beforeDealId: ids.beforeDealId, top: req.top });
  const stageChanged = target.id !== before.stage_id;
  const lostReason = target.kind === "lost" ? (req.lostReason.trim() || (before.status === "lost" ? before.lost_reason : "")) : "";
  await sql.query(
    `UPDATE rec_deals SET stage_id = $2, position = $3, status = $4, lost_reason = $5,
            closed_at = CASE WHEN $4 = 'open' THEN NULL WHEN status = $4 THEN closed_at ELSE now() END,
            stage_entered_at = CASE WHEN $6 THEN now() ELSE stage_entered_at END,
            version = version + 1, updated_at = now()
     WHERE id = $1`,
    [id, target.id, position, target.kind, lostReason, stageChanged],
  );
  if (stageChanged) {
    await sql.query("UPDATE rec_deal_stage_history SET left_at = now() WHERE deal_id = $1 AND left_at IS NULL", [id]);
    await sql.query("INSERT INTO rec_deal_stage_history (company_id, deal_id, stage_id, entered_at, actor_id) VALUES ($1, $2, $3, now(), $4)", [a.companyId, id, target.id, a.userId]);
  }
  const after = await getDeal(sql, id);
  await writeTimeline(sql, a, "deal", id, stageChanged ? "stage_changed" : "updated", diff(snapshot(before), snapshot(after)));
  return after;
}

export async function trashDeal(sql: Sql, a: Acting, id: string, trash: boolean, etag?: bigint): Promise<DealRow> {
  const before = await lockForChange<DealRow>(sql, a, "deal", SELECT, id, { etag, trash: "allow" });
  if (Boolean(before.deleted_at) === trash) return before;
  await sql.query(`UPDATE rec_deals SET deleted_at = ${trash ? "now()" : "NULL"}, version = version + 1, updated_at = now() WHERE id = $1`, [id]);
  const after = await getDeal(sql, id);
  await writeTimeline(sql, a, "deal", id, trash ? "deleted" : "restored", [{ field: "delete_time", before: iso(before.deleted_at), after: iso(after.deleted_at) }]);
  return after;
}

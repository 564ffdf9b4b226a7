/**
 * Pipelines and their ordered stages: rec_pipelines, rec_stages. Configuration: owners and admins
 * change it (the policies allow nobody else). Every change takes the pipeline's row lock and bumps
 * its version, so the pipeline's etag covers its stages too.
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import { AppError, invalid, type Violation } from "@crm/kit";
import { StageKind, type PipelineSchema, type StageSchema } from "@crm/gen/crm/records/v1/pipeline_pb";
import type { Sql } from "@crm/dbservice/db";
import { etagOf, positionsAfter, type StageKindName } from "../src/rules.js";
import { actorOfActing, isAdmin, type Acting, type ConstraintInfo } from "./acting.js";
import { ts } from "./shared.js";

export interface PipelineRow {
  id: string;
  name: string;
  version: string;
  created_at: Date;
  updated_at: Date;
}

export interface StageRow {
  id: string;
  pipeline_id: string;
  name: string;
  probability: number;
  kind: StageKindName;
  sort_order: number;
}

export const pipelineConstraints: Record<string, ConstraintInfo> = {
  rec_pipelines_name_key: { field: "pipeline.name", reason: "already_exists", message: "another pipeline of yours has this name" },
  rec_stages_name_key: { field: "stage.name", reason: "already_exists", message: "another stage of this pipeline has this name" },
  rec_pipelines_name_check: { field: "pipeline.name", reason: "invalid_argument", message: "must be 1..100 characters" },
  rec_stages_name_check: { field: "stage.name", reason: "invalid_argument", message: "must be 1..100 characters" },
  rec_stages_probability_check: { field: "stage.probability", reason: "invalid_argument", message: "must be 0..100" },
  rec_stages_kind_check: { field: "stage.kind", reason: "invalid_argument", message: "must be STAGE_KIND_OPEN, STAGE_KIND_WON or STAGE_KIND_LOST" },
};

const kindToProto: Record<StageKindName, StageKind> = { open: StageKind.OPEN, won: StageKind.WON, lost: StageKind.LOST };

export function toStage(s: StageRow): MessageInitShape<typeof StageSchema> {
  return { id: s.id, pipelineId: s.pipeline_id, name: s.name, probability: s.probability, kind: kindToProto[s.kind] };
}

export function toPipeline(p: PipelineRow, stages: StageRow[]): MessageInitShape<typeof PipelineSchema> {
  return { id: p.id, name: p.name, stages: stages.map(toStage), etag: etagOf(p.version), createTime: ts(p.created_at), updateTime: ts(p.updated_at) };
}

const PCOLS = "id, name, version, created_at, updated_at";
const SCOLS = "id, pipeline_id, name, probability, kind, sort_order";

export function requireAdmin(a: Acting): void {
  if (!isAdmin(a)) throw new AppError("permission_denied", "only owners and admins change pipelines and stages; everyone may read them");
}

export async function stagesOf(sql: Sql, pipelineIds: string[]): Promise<Map<string, StageRow[]>> {
  const out = new Map<string, StageRow[]>(pipelineIds.map((id) => [id, []]));
  if (!pipelineIds.length) return out;
  const { rows } = await sql.query<StageRow>(`SELECT ${SCOLS} FROM rec_stages WHERE pipeline_id = ANY($1::uuid[]) ORDER BY pipeline_id, sort_order`, [pipelineIds]);
  for (const s of rows) out.get(s.pipeline_id)?.push(s);
  return out;
}

export async function getPipeline(sql: Sql, id: string): Promise<{ pipeline: PipelineRow; stages: StageRow[] }> {
  const { rows } = await sql.query<PipelineRow>(`SELECT ${PCOLS} FROM rec_pipelines WHERE id = $1`, [id]);
  if (!rows[0]) throw new AppError("not_found", `no pipeline ${id} in your company`);
  return { pipeline: rows[0], stages: (await stagesOf(sql, [id])).get(id)! };
}

/** The pipeline locked for a change (owners and admins), its etag checked; bumps its version. */
export async function lockPipeline(sql: Sql, a: Acting, id: string, etag: bigint | undefined): Promise<PipelineRow> {
  requireAdmin(a);
  const { rows } = await sql.query<PipelineRow>(`SELECT ${PCOLS} FROM rec_pipelines WHERE id = $1 FOR UPDATE`, [id]);
  const p = rows[0];
  if (!p) throw new AppError("not_found", `no pipeline ${id} in your company`);
  if (etag !== undefined && BigInt(p.version) !== etag) throw new AppError("aborted", `pipeline ${id} changed since you read it (etag ${etag}, now ${p.version}): read it again and retry`);
  await sql.query("UPDATE rec_pipelines SET version = version + 1, updated_at = now() WHERE id = $1", [id]);
  return p;
}

export async function createPipeline(sql: Sql, a: Acting, name: string, stages: { name: string; probability: number; kind: StageKindName }[]) {
  requireAdmin(a);
  const { rows } = await sql.query<PipelineRow>(`INSERT INTO rec_pipelines (company_id, name) VALUES ($1, $2) RETURNING ${PCOLS}`, [a.companyId, name]);
  const p = rows[0]!;
  if (stages.length) {
    await sql.query(
      `INSERT INTO rec_stages (company_id, pipeline_id, name, probability, kind, sort_order)
       SELECT $1, $2, s.name, s.probability, s.kind, s.ord - 1 FROM unnest($3::text[], $4::int[], $5::text[]) WITH ORDINALITY AS s (name, probability, kind, ord)`,
      [a.companyId, p.id, stages.map((s) => s.name), stages.map((s) => s.probability), stages.map((s) => s.kind)],
    );
  }
  return getPipeline(sql, p.id);
}

export async function listPipelines(sql: Sql, pageSize: number, after: { created: string; id: string } | undefined) {
  const { rows } = await sql.query<PipelineRow & { cursor: string }>(
    `SELECT ${PCOLS}, created_at::text AS cursor FROM rec_pipelines
     WHERE ($1::timestamptz IS NULL OR (created_at, id) > ($1::timestamptz, $2::uuid))
     ORDER BY created_at, id LIMIT $3`,
    [after?.created ?? null, after?.id ?? null, pageSize + 1],
  );
  const page = rows.slice(0, pageSize);
  const stages = await stagesOf(sql, page.map((p) => p.id));
  return { page: page.map((p) => ({ pipeline: p, stages: stages.get(p.id)! })), more: rows.length > pageSize, last: page[page.length - 1] };
}

export async function renamePipeline(sql: Sql, a: Acting, id: string, name: string, etag: bigint | undefined) {
  await lockPipeline(sql, a, id, etag);
  await sql.query("UPDATE rec_pipelines SET name = $2 WHERE id = $1", [id, name]);
  return getPipeline(sql, id);
}

/** Deals in a pipeline or stage, the trash included (they keep their stage). */
async function dealCount(sql: Sql, column: "pipeline_id" | "stage_id", id: string): Promise<number> {
  const { rows } = await sql.query<{ n: string }>(`SELECT count(*) AS n FROM rec_deals WHERE ${column} = $1`, [id]);
  return Number(rows[0]!.n);
}

export async function deletePipeline(sql: Sql, a: Acting, id: string, etag: bigint | undefined): Promise<void> {
  await lockPipeline(sql, a, id, etag);
  const n = await dealCount(sql, "pipeline_id", id);
  if (n > 0) throw new AppError("failed_precondition", `pipeline ${id} holds ${n} deal(s) (the trash included): move them to another pipeline's stages or purge them first`);
  await sql.query("DELETE FROM rec_pipelines WHERE id = $1", [id]);
}

async function stageOf(sql: Sql, id: string, field: string): Promise<StageRow> {
  const { rows } = await sql.query<StageRow>(`SELECT ${SCOLS} FROM rec_stages WHERE id = $1`, [id]);
  if (!rows[0]) throw new AppError("not_found", `no stage ${id} in your company`, [{ field, description: "names no stage of yours" }]);
  return rows[0];
}

/** Serialises every placement of deals in a stage (MoveDeal, CreateDeal, stage edits): one total order. Members hold no row lock on stages, so it is an advisory lock. */
export async function lockStage(sql: Sql, ...stageIds: string[]): Promise<void> {
  for (const id of [...new Set(stageIds)].sort()) await sql.query(stageLockSql("$1"), [id]);
}

/** The statement that takes a stage's lock (lockStage), the stage's id as the SQL `id` (a parameter or a literal): for a batch. */
export const stageLockSql = (id: string) => `SELECT pg_advisory_xact_lock(hashtextextended('rec_stage:' || ${id}, 0))`;

/** Renumbers a pipeline's stages 0, 1, 2, ... in `order` (every stage id once). */
async function renumber(sql: Sql, pipelineId: string, order: string[]): Promise<void> {
  await sql.query("SET CONSTRAINTS rec_stages_order_key DEFERRED");
  await sql.query(
    "UPDATE rec_stages s SET sort_order = o.ord - 1 FROM unnest($2::uuid[]) WITH ORDINALITY AS o (id, ord) WHERE s.id = o.id AND s.pipeline_id = $1",
    [pipelineId, order],
  );
  await sql.query("SET CONSTRAINTS rec_stages_order_key IMMEDIATE");
}

export async function createStage(sql: Sql, a: Acting, pipelineId: string, s: { name: string; probability: number; kind: StageKindName }, index: number | undefined, etag: bigint | undefined) {
  await lockPipeline(sql, a, pipelineId, etag);
  const stages = (await stagesOf(sql, [pipelineId])).get(pipelineId)!;
  if (stages.length >= 50) throw new AppError("failed_precondition", "a pipeline holds at most 50 stages");
  const at = index === undefined ? stages.length : Math.max(0, Math.min(index, stages.length));
  const { rows } = await sql.query<StageRow>(
    `INSERT INTO rec_stages (company_id, pipeline_id, name, probability, kind, sort_order) VALUES ($1, $2, $3, $4, $5, $6) RETURNING ${SCOLS}`,
    [a.companyId, pipelineId, s.name, s.probability, s.kind, stages.length],
  );
  const stage = rows[0]!;
  const order = stages.map((x) => x.id);
  order.splice(at, 0, stage.id);
  await renumber(sql, pipelineId, order);
  return { stage: { ...stage, sort_order: at }, ...(await getPipeline(sql, pipelineId)) };
}

export async function updateStage(sql: Sql, a: Acting, id: string, input: { name?: string; probability?: number; kind?: StageKindName }, etag: bigint | undefined) {
  requireAdmin(a);
  const before = await stageOf(sql, id, "stage.id");
  await lockPipeline(sql, a, before.pipeline_id, etag);
  const { rows } = await sql.query<StageRow>(
    `UPDATE rec_stages SET name = coalesce($2, name), probability = coalesce($3, probability), kind = coalesce($4, kind) WHERE id = $1 RETURNING ${SCOLS}`,
    [id, input.name ?? null, input.probability ?? null, input.kind ?? null],
  );
  const stage = rows[0]!;
  if (stage.kind !== before.kind) {
    // The deals in the stage take the new status, each with a timeline entry.
    await lockStage(sql, id);
    const { rows: changed } = await sql.query<{ record_id: string }>(
      `WITH changed AS (
         UPDATE rec_deals SET status = $2, closed_at = CASE WHEN $2 = 'open' THEN NULL ELSE coalesce(closed_at, now()) END,
                version = version + 1, updated_at = now()
         WHERE stage_id = $1 AND status <> $2 RETURNING id, company_id)
       INSERT INTO rec_timeline (company_id, object_type, record_id, action, actor_type, actor_id, actor_name, changes)
       SELECT company_id, 'deal', id, 'updated', $5, $3, $6, jsonb_build_array(jsonb_build_object('field', 'status', 'before', $4::text, 'after', $2::text)) FROM changed
       RETURNING record_id`,
      [id, stage.kind, actorOfActing(a).id, before.kind, actorOfActing(a).type, actorOfActing(a).name],
    );
    for (const r of changed) a.pending.push({ kind: "deal", recordId: r.record_id, action: "updated", changes: [{ field: "status", before: before.kind, after: stage.kind }] });
  }
  return { stage, ...(await getPipeline(sql, stage.pipeline_id)) };
}

/** Removes a stage; its deals (the trash included) go to the end of `moveTo`, in their order, each with a timeline entry and a stage-history row. */
export async function deleteStage(sql: Sql, a: Acting, id: string, moveTo: string, etag: bigint | undefined) {
  requireAdmin(a);
  const stage = await stageOf(sql, id, "id");
  await lockPipeline(sql, a, stage.pipeline_id, etag);
  const n = await dealCount(sql, "stage_id", id);
  let moved = 0;
  if (n > 0) {
    if (!moveTo) throw new AppError("failed_precondition", `stage ${id} holds ${n} deal(s) (the trash included): name moveDealsToStageId, a stage of the same pipeline to move them to`);
    const target = await stageOf(sql, moveTo, "moveDealsToStageId");
    if (target.pipeline_id !== stage.pipeline_id || target.id === id) {
      throw invalid([{ field: "moveDealsToStageId", description: "must be another stage of the same pipeline" }]);
    }
    await lockStage(sql, id, target.id);
    const { rows: deals } = await sql.query<{ id: string; position: string; status: string }>(
      "SELECT id, position, status FROM rec_deals WHERE stage_id = $1 ORDER BY position FOR UPDATE",
      [id],
    );
    const { rows: lastRows } = await sql.query<{ last: string | null }>("SELECT max(position) AS last FROM rec_deals WHERE stage_id = $1", [target.id]);
    const keys = positionsAfter(lastRows[0]?.last ?? null, deals.length);
    const ids = deals.map((d) => d.id);
    await sql.query(
      `UPDATE rec_deals d SET stage_id = $3, position = v.position, status = $4,
              closed_at = CASE WHEN $4 = 'open' THEN NULL WHEN d.status = $4 THEN d.closed_at ELSE now() END,
              lost_reason = CASE WHEN $4 = 'lost' THEN d.lost_reason ELSE '' END,
              stage_entered_at = now(), version = version + 1, updated_at = now()
       FROM unnest($1::uuid[], $2::text[]) AS v (id, position) WHERE d.id = v.id`,
      [ids, keys, target.id, target.kind],
    );
    await sql.query("UPDATE rec_deal_stage_history SET left_at = now() WHERE deal_id = ANY($1::uuid[]) AND left_at IS NULL", [ids]);
    await sql.query(
      "INSERT INTO rec_deal_stage_history (company_id, deal_id, stage_id, entered_at, actor_id) SELECT $1, unnest($2::uuid[]), $3, now(), $4",
      [a.companyId, ids, target.id, a.userId],
    );
    // Ids and statuses as they were, for the timeline.
    await sql.query(
      `INSERT INTO rec_timeline (company_id, object_type, record_id, action, actor_type, actor_id, actor_name, changes)
       SELECT $1, 'deal', v.id, 'stage_changed', $10, $2, $11,
              jsonb_build_array(jsonb_build_object('field', 'stage_id', 'before', $3::text, 'after', $4::text),
                                jsonb_build_object('field', 'position', 'before', v.old_position, 'after', v.new_position))
              || CASE WHEN v.old_status <> $5 THEN jsonb_build_array(jsonb_build_object('field', 'status', 'before', v.old_status, 'after', $5::text)) ELSE '[]'::jsonb END
       FROM unnest($6::uuid[], $7::text[], $8::text[], $9::text[]) AS v (id, old_position, new_position, old_status)`,
      [a.companyId, actorOfActing(a).id, id, target.id, target.kind, deals.map((d) => d.id), deals.map((d) => d.position), keys, deals.map((d) => d.status), actorOfActing(a).type, actorOfActing(a).name],
    );
    deals.forEach((d, i) => {
      const changes = [{ field: "stage_id", before: id, after: target.id }, { field: "position", before: d.position, after: keys[i]! }];
      if (d.status !== target.kind) changes.push({ field: "status", before: d.status, after: target.kind });
      a.pending.push({ kind: "deal", recordId: d.id, action: "stage_changed", changes });
    });
    moved = deals.length;
  }
  await sql.query("DELETE FROM rec_stages WHERE id = $1", [id]);
  const rest = (await stagesOf(sql, [stage.pipeline_id])).get(stage.pipeline_id)!;
  await renumber(sql, stage.pipeline_id, rest.map((s) => s.id));
  return { moved, ...(await getPipeline(sql, stage.pipeline_id)) };
}

export async function reorderStages(sql: Sql, a: Acting, pipelineId: string, order: string[], etag: bigint | undefined) {
  await lockPipeline(sql, a, pipelineId, etag);
  const stages = (await stagesOf(sql, [pipelineId])).get(pipelineId)!;
  const have = new Set(stages.map((s) => s.id));
  const v: Violation[] = [];
  order.forEach((id, i) => {
    if (!have.has(id)) v.push({ field: `stageIds[${i}]`, description: "is not a stage of this pipeline" });
  });
  const missing = stages.filter((s) => !order.includes(s.id));
  if (missing.length) v.push({ field: "stageIds", description: `must list every stage of the pipeline once; missing ${missing.map((s) => s.id).join(", ")}` });
  if (v.length) throw invalid(v);
  await renumber(sql, pipelineId, order);
  return getPipeline(sql, pipelineId);
}

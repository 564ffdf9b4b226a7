/**
 * Deals in an import (import-store.ts runs the batch): a row names its pipeline and stage by name
 * (or id), its amount in the currency's units and its company by domain; here they become the
 * stored ids, status and minor units, set-based per batch (one query for the pipelines and stages,
 * one for the companies). New deals go to the end of their stage in file order (fractional keys
 * after the stage's last one, under the stage's lock, as CreateDeal places one) with their first
 * stage-history entry. An import does not move deals: a row that would change a deal's stage
 * fails with the reason (MoveDeal keeps the board's order and history).
 */
import { generateNKeysBetween } from "fractional-indexing";
import type { Sql } from "@crm/dbservice/db";
import { currencyDigits, isId, normalId } from "../src/rules.js";
import type { Acting } from "./acting.js";
import type { RowValues } from "./import-rows.js";
import { lockStage } from "./pipelines.js";

interface Stage {
  id: string;
  name: string;
  kind: string;
}
interface Pipeline {
  id: string;
  name: string;
  stages: Stage[];
}

/** What the batch's deal rows refer to. */
export interface DealRefs {
  pipelines: Pipeline[];
  companyByDomain: Map<string, string>;
}

/** The stored columns an import writes of a deal (proto names; company_id is rec_company_id). */
export const dealCols = ["name", "pipeline_id", "stage_id", "status", "amount_minor", "currency_code", "expected_close_date", "company_id"] as const;

/** The tenant's pipelines with their stages in board order, and the companies the rows' domains name. */
export async function loadDealRefs(sql: Sql, groups: Iterable<{ values: RowValues }>): Promise<DealRefs> {
  const { rows } = await sql.query<{ pid: string; pname: string; sid: string | null; sname: string | null; kind: string | null }>(
    `SELECT p.id AS pid, p.name AS pname, s.id AS sid, s.name AS sname, s.kind FROM rec_pipelines p LEFT JOIN rec_stages s ON s.pipeline_id = p.id
     ORDER BY p.created_at, p.id, s.sort_order`,
  );
  const pipelines: Pipeline[] = [];
  for (const r of rows) {
    let p = pipelines[pipelines.length - 1];
    if (p?.id !== r.pid) pipelines.push((p = { id: r.pid, name: r.pname, stages: [] }));
    if (r.sid) p.stages.push({ id: r.sid, name: r.sname!, kind: r.kind! });
  }
  const domains = [...new Set([...groups].map((g) => g.values.company_domain).filter((d): d is string => !!d))];
  const companyByDomain = new Map<string, string>();
  if (domains.length) {
    const { rows: cs } = await sql.query<{ domain: string; id: string }>("SELECT domain, id FROM rec_companies WHERE domain = ANY($1::text[]) AND deleted_at IS NULL", [domains]);
    for (const c of cs) companyByDomain.set(c.domain, c.id);
  }
  return { pipelines, companyByDomain };
}

const byNameOrId = <T extends { id: string; name: string }>(xs: readonly T[], raw: string): T | undefined => {
  const id = normalId(raw);
  if (isId(id)) return xs.find((x) => x.id === id);
  const n = raw.trim().toLowerCase();
  return xs.find((x) => x.name.toLowerCase() === n);
};

/** "1250.5" in EUR → "125050"; undefined when the currency has fewer decimals than given. */
function toMinor(amount: string, currency: string): string | undefined {
  const digits = currencyDigits(currency);
  const [whole, frac = ""] = amount.split(".");
  if (frac.replace(/0+$/, "").length > digits) return undefined;
  return BigInt(`${whole}${frac.padEnd(digits, "0").slice(0, digits)}`).toString();
}

/**
 * A deal row's values (merged onto the deal it updates, `cur`, if any) in stored form, or the
 * reason the row fails.
 */
export function resolveDeal(refs: DealRefs, v: RowValues, cur: RowValues | undefined): { values: RowValues } | { reason: string } {
  const out: RowValues = { ...v, custom: v.custom };
  delete out.pipeline;
  delete out.stage;
  delete out.amount;
  delete out.company_domain;
  if (!cur || v.pipeline !== undefined || v.stage !== undefined) {
    let pipeline: Pipeline | undefined;
    if (v.pipeline !== undefined) {
      pipeline = byNameOrId(refs.pipelines, v.pipeline);
      if (!pipeline) return { reason: `pipeline: no pipeline ${JSON.stringify(v.pipeline.slice(0, 100))} in your company (its name or id)` };
    } else if (cur) pipeline = refs.pipelines.find((p) => p.id === cur.pipeline_id);
    else {
      pipeline = refs.pipelines[0];
      if (!pipeline) return { reason: "pipeline: your company has no pipeline yet: create one, then import deals into it" };
    }
    if (!pipeline) return { reason: "pipeline: the deal's pipeline is gone" };
    let stage: Stage | undefined;
    if (v.stage !== undefined) {
      stage = byNameOrId(pipeline.stages, v.stage);
      if (!stage) return { reason: `stage: pipeline ${JSON.stringify(pipeline.name)} has no stage ${JSON.stringify(v.stage.slice(0, 100))} (its name or id)` };
    } else stage = cur && cur.pipeline_id === pipeline.id ? pipeline.stages.find((s) => s.id === cur.stage_id) : pipeline.stages[0];
    if (!stage) return { reason: `stage: pipeline ${JSON.stringify(pipeline.name)} has no stages yet` };
    if (cur?.stage_id !== undefined && stage.id !== cur.stage_id) return { reason: `stage: an import does not move deals (the deal is in another stage): move it on the board` };
    out.pipeline_id = pipeline.id;
    out.stage_id = stage.id;
    out.status = stage.kind;
  }
  if (v.amount !== undefined) {
    const currency = v.currency_code ?? cur?.currency_code;
    if (!currency) return { reason: "currency_code: an amount needs its currency (map a currency column)" };
    const minor = toMinor(v.amount, currency);
    if (minor === undefined) return { reason: `amount: ${currency} has ${currencyDigits(currency)} decimal places (got ${v.amount})` };
    out.amount_minor = minor;
  }
  if (out.currency_code !== undefined && out.amount_minor === undefined) return { reason: "amount: a currency needs an amount" };
  if (v.company_domain !== undefined) {
    const id = refs.companyByDomain.get(v.company_domain);
    if (!id) return { reason: `company_domain: no company of yours has the domain ${v.company_domain}` };
    out.company_id = id;
  }
  return { values: out };
}

/** The new deals' kanban keys: each stage's next keys after its last deal, in file order (under the stages' locks). */
export async function placeNewDeals(sql: Sql, deals: { id: string; values: RowValues }[]): Promise<Map<string, string>> {
  const byStage = new Map<string, string[]>();
  for (const d of deals) byStage.set(d.values.stage_id!, [...(byStage.get(d.values.stage_id!) ?? []), d.id]);
  const stages = [...byStage.keys()];
  await lockStage(sql, ...stages);
  const { rows } = await sql.query<{ stage_id: string; p: string | null }>(
    "SELECT s.id AS stage_id, (SELECT max(position) FROM rec_deals d WHERE d.stage_id = s.id) AS p FROM unnest($1::uuid[]) AS s (id)",
    [stages],
  );
  const out = new Map<string, string>();
  for (const r of rows) {
    const ids = byStage.get(r.stage_id)!;
    generateNKeysBetween(r.p, null, ids.length).forEach((k, i) => out.set(ids[i]!, k));
  }
  return out;
}

/** The new deals and their first stage-history entries, set-based. `data`: recordJson rows with their positions. */
export async function insertDeals(sql: Sql, a: Acting, data: string): Promise<void> {
  await sql.query(
    `INSERT INTO rec_deals (id, company_id, name, pipeline_id, stage_id, position, amount_minor, currency_code, expected_close_date, status, rec_company_id, owner_id, closed_at, custom)
     SELECT x.id, $1, x.name, x.pipeline_id, x.stage_id, x.position, x.amount_minor, x.currency_code, x.expected_close_date, x.status, x.company_id, $2,
            CASE WHEN x.status = 'open' THEN NULL ELSE now() END, x.custom
     FROM jsonb_to_recordset($3::jsonb) AS x (id uuid, name text, pipeline_id uuid, stage_id uuid, position text, amount_minor bigint, currency_code text,
                                               expected_close_date date, status text, company_id uuid, custom jsonb)`,
    [a.companyId, a.userId, data],
  );
  await sql.query(
    `INSERT INTO rec_deal_stage_history (company_id, deal_id, stage_id, entered_at, actor_id)
     SELECT $1, x.id, x.stage_id, now(), $2 FROM jsonb_to_recordset($3::jsonb) AS x (id uuid, stage_id uuid)`,
    [a.companyId, a.userId, data],
  );
}

/** Deals' imported fields set from `data` (recordJson rows): an import's updates, and an undo's restores. */
export async function updateDeals(sql: Sql, data: string): Promise<void> {
  await sql.query(
    `UPDATE rec_deals d SET name = x.name, amount_minor = x.amount_minor, currency_code = x.currency_code, expected_close_date = x.expected_close_date,
            rec_company_id = x.company_id, custom = x.custom, version = d.version + 1, updated_at = now()
     FROM jsonb_to_recordset($1::jsonb) AS x (id uuid, name text, amount_minor bigint, currency_code text, expected_close_date date, company_id uuid, custom jsonb)
     WHERE d.id = x.id`,
    [data],
  );
}

/**
 * ReportService's store: the tenant's base currency and exchange rates (rec_currency_settings,
 * rec_exchange_rates: owners and admins write, everyone reads; migration 140) and the reports,
 * each ONE set-based query that converts every deal's amount in the database:
 * base_minor = amount_minor × rate × 10^(base digits − currency digits), summed, rounded once.
 * A deal in a currency without a rate is counted per currency in `unconverted`, never dropped.
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { AppError, invalid, type Violation } from "@crm/kit";
import type { DbRecordsService } from "@crm/gen/crm/db/v1/db_records_pb";
import { StageKind } from "@crm/gen/crm/records/v1/pipeline_pb";
import type { ExchangeRateSchema, UnconvertedAmountSchema } from "@crm/gen/crm/records/v1/report_pb";
import type { Sql } from "@crm/dbservice/db";
import { canonicalDecimal, checkCurrency, checkPeriod, checkRate, currencyDigits } from "../src/rules.js";
import { isAdmin, type Acting, type ConstraintInfo } from "./acting.js";
import { idOf, ts } from "./shared.js";

type Tx = <T>(ctx: HandlerContext, fn: (sql: Sql, a: Acting) => Promise<T>) => Promise<T>;

export const reportConstraints: Record<string, ConstraintInfo> = {
  rec_exchange_rates_rate_check: { field: "rate", reason: "failed_precondition", message: "a rate would round to 0 against the new base currency: set the rates again" },
};

interface RateRow {
  currency_code: string;
  rate: string;
  updated_at: Date;
  updated_by: string | null;
}

const kinds: Record<string, StageKind> = { open: StageKind.OPEN, won: StageKind.WON, lost: StageKind.LOST };

const toRate = (r: RateRow): MessageInitShape<typeof ExchangeRateSchema> => ({
  currencyCode: r.currency_code,
  rate: canonicalDecimal(r.rate),
  updateTime: ts(r.updated_at),
  updatedBy: r.updated_by ?? "",
});

interface Unconverted {
  c: string;
  n: string;
  a: string;
}
const toUnconverted = (u: Unconverted[] | null): MessageInitShape<typeof UnconvertedAmountSchema>[] =>
  (u ?? []).map((x) => ({ currencyCode: x.c, dealCount: BigInt(x.n), amountMinor: BigInt(x.a) }));

const done = (v: Violation[]) => {
  if (v.length) throw invalid(v);
};

function adminOnly(a: Acting) {
  if (!isAdmin(a)) throw new AppError("permission_denied", "only owners and admins set the base currency and exchange rates; everyone may read them");
}

async function base(sql: Sql, lock = false): Promise<{ code: string; digits: number } | undefined> {
  const { rows } = await sql.query<{ base_currency: string; base_digits: number }>(
    `SELECT base_currency, base_digits FROM rec_currency_settings${lock ? " FOR UPDATE" : ""}`,
  );
  return rows[0] && { code: rows[0].base_currency, digits: rows[0].base_digits };
}

async function rates(sql: Sql): Promise<RateRow[]> {
  const { rows } = await sql.query<RateRow>("SELECT currency_code, rate::text AS rate, updated_at, updated_by FROM rec_exchange_rates ORDER BY currency_code");
  return rows;
}

async function needBase(sql: Sql): Promise<string> {
  const b = await base(sql);
  if (!b) throw new AppError("failed_precondition", "your company has no base currency yet: an owner or admin sets it (ReportService.SetBaseCurrency), then the exchange rates");
  return b.code;
}

async function needPipeline(sql: Sql, id: string): Promise<void> {
  const { rowCount } = await sql.query("SELECT 1 FROM rec_pipelines WHERE id = $1", [id]);
  if (!rowCount) throw new AppError("not_found", `no pipeline ${id} in your company`, [{ field: "pipelineId", description: "names no pipeline of your company" }]);
}

/**
 * The deals of the query, each with its amount converted to base minor units (`conv`): 0 without
 * an amount, NULL when its currency has no rate. Row-level security keeps it in the tenant.
 */
const CONVERTED = `
  base AS (SELECT base_currency, base_digits FROM rec_currency_settings),
  d AS (
    SELECT d.stage_id, d.status, d.amount_minor, d.currency_code,
      CASE WHEN d.amount_minor IS NULL THEN 0::numeric
           WHEN d.currency_code = b.base_currency THEN d.amount_minor::numeric
           ELSE d.amount_minor * r.rate * power(10::numeric, b.base_digits - r.digits) END AS conv
    FROM rec_deals d CROSS JOIN base b
    LEFT JOIN rec_exchange_rates r ON r.currency_code = d.currency_code
    WHERE d.pipeline_id = $1 AND d.deleted_at IS NULL`;

/**
 * d's rows grouped by `key` (two passes over d whatever the number of groups): `agg` the deals and
 * converted sums, `unc` the unconverted deals per currency as JSON.
 */
const grouped = (key: string) => `,
  agg AS (SELECT ${key} AS k, count(*) AS n, sum(conv) AS raw FROM d GROUP BY ${key}),
  unc AS (SELECT k, json_agg(json_build_object('c', currency_code, 'n', n::text, 'a', a::text) ORDER BY currency_code) AS j
          FROM (SELECT ${key} AS k, currency_code, count(*) AS n, sum(amount_minor) AS a FROM d WHERE conv IS NULL GROUP BY ${key}, currency_code) x GROUP BY k)`;

export async function pipelineValue(sql: Sql, pipelineId: string) {
  await needPipeline(sql, pipelineId);
  const baseCode = await needBase(sql);
  const { rows } = await sql.query<{
    id: string; name: string; probability: number; kind: string; open: boolean; n: string; amount: string; weighted: string; unconverted: Unconverted[] | null;
  }>(
    `WITH ${CONVERTED})${grouped("stage_id")}
     SELECT s.id, s.name, s.probability, s.kind, s.kind = 'open' AS open, coalesce(agg.n, 0)::text AS n,
       round(coalesce(agg.raw, 0))::text AS amount, round(coalesce(agg.raw, 0) * s.probability / 100)::text AS weighted, unc.j AS unconverted
     FROM rec_stages s LEFT JOIN agg ON agg.k = s.id LEFT JOIN unc ON unc.k = s.id
     WHERE s.pipeline_id = $1 ORDER BY s.sort_order`,
    [pipelineId],
  );
  // The open totals are the open stages' (rounded) figures added up, so they add up on screen.
  const open = rows.filter((r) => r.open);
  const byCurrency = new Map<string, { n: bigint; a: bigint }>();
  for (const r of open) {
    for (const u of r.unconverted ?? []) {
      const t = byCurrency.get(u.c) ?? { n: 0n, a: 0n };
      byCurrency.set(u.c, { n: t.n + BigInt(u.n), a: t.a + BigInt(u.a) });
    }
  }
  const sum = (f: (r: (typeof rows)[number]) => string) => open.reduce((s, r) => s + BigInt(f(r)), 0n);
  return {
    baseCurrencyCode: baseCode,
    stages: rows.map((r) => ({
      stageId: r.id,
      name: r.name,
      probability: r.probability,
      kind: kinds[r.kind] ?? StageKind.UNSPECIFIED,
      dealCount: BigInt(r.n),
      amountMinor: BigInt(r.amount),
      weightedAmountMinor: BigInt(r.weighted),
      unconverted: toUnconverted(r.unconverted),
    })),
    openDealCount: sum((r) => r.n),
    openAmountMinor: sum((r) => r.amount),
    openWeightedAmountMinor: sum((r) => r.weighted),
    openUnconverted: [...byCurrency].sort(([x], [y]) => (x < y ? -1 : 1)).map(([c, t]) => ({ currencyCode: c, dealCount: t.n, amountMinor: t.a })),
  };
}

export async function winRate(sql: Sql, pipelineId: string, start: Date, end: Date) {
  await needPipeline(sql, pipelineId);
  const baseCode = await needBase(sql);
  const { rows } = await sql.query<{ status: "won" | "lost"; n: string; amount: string; unconverted: Unconverted[] | null }>(
    `WITH ${CONVERTED} AND d.status IN ('won', 'lost') AND d.closed_at >= $2 AND d.closed_at < $3)${grouped("status")}
     SELECT x.status, coalesce(agg.n, 0)::text AS n, round(coalesce(agg.raw, 0))::text AS amount, unc.j AS unconverted
     FROM (VALUES ('won'), ('lost')) AS x (status) LEFT JOIN agg ON agg.k = x.status LEFT JOIN unc ON unc.k = x.status`,
    [pipelineId, start, end],
  );
  const won = rows.find((r) => r.status === "won")!;
  const lost = rows.find((r) => r.status === "lost")!;
  const wonN = BigInt(won.n);
  const lostN = BigInt(lost.n);
  const wonA = BigInt(won.amount);
  const lostA = BigInt(lost.amount);
  return {
    baseCurrencyCode: baseCode,
    wonCount: wonN,
    lostCount: lostN,
    wonAmountMinor: wonA,
    lostAmountMinor: lostA,
    winRate: wonN + lostN > 0n ? Number(wonN) / Number(wonN + lostN) : 0,
    winRateByValue: wonA + lostA > 0n ? Number(wonA) / Number(wonA + lostA) : 0,
    wonUnconverted: toUnconverted(won.unconverted),
    lostUnconverted: toUnconverted(lost.unconverted),
  };
}

export async function timeInStage(sql: Sql, pipelineId: string, start: Date, end: Date) {
  await needPipeline(sql, pipelineId);
  const { rows } = await sql.query<{ id: string; name: string; kind: string; n: string; avg: number | null; median: number | null; cur_n: string; cur_avg: number | null }>(
    `WITH stays AS (
       SELECT h.stage_id, extract(epoch FROM h.left_at - h.entered_at)::float8 AS secs
       FROM rec_deal_stage_history h JOIN rec_deals d ON d.id = h.deal_id
       WHERE d.pipeline_id = $1 AND d.deleted_at IS NULL AND h.left_at >= $2 AND h.left_at < $3),
     c AS (SELECT stage_id, count(*) AS n, avg(secs) AS avg, percentile_cont(0.5) WITHIN GROUP (ORDER BY secs) AS median FROM stays GROUP BY stage_id),
     cur AS (SELECT stage_id, count(*) AS n, avg(extract(epoch FROM now() - stage_entered_at))::float8 AS avg
             FROM rec_deals WHERE pipeline_id = $1 AND deleted_at IS NULL GROUP BY stage_id)
     SELECT s.id, s.name, s.kind, coalesce(c.n, 0)::text AS n, c.avg, c.median, coalesce(cur.n, 0)::text AS cur_n, cur.avg AS cur_avg
     FROM rec_stages s LEFT JOIN c ON c.stage_id = s.id LEFT JOIN cur ON cur.stage_id = s.id
     WHERE s.pipeline_id = $1 ORDER BY s.sort_order`,
    [pipelineId, start, end],
  );
  return {
    stages: rows.map((r) => ({
      stageId: r.id,
      name: r.name,
      kind: kinds[r.kind] ?? StageKind.UNSPECIFIED,
      completedCount: BigInt(r.n),
      averageSeconds: r.avg ?? 0,
      medianSeconds: r.median ?? 0,
      currentCount: BigInt(r.cur_n),
      currentAverageSeconds: r.cur_avg ?? 0,
    })),
  };
}

export async function setBaseCurrency(sql: Sql, a: Acting, code: string) {
  adminOnly(a);
  const digits = currencyDigits(code);
  const inserted = await sql.query(
    "INSERT INTO rec_currency_settings (company_id, base_currency, base_digits, updated_by) VALUES ($1, $2, $3, $4) ON CONFLICT (company_id) DO NOTHING",
    [a.companyId, code, digits, a.userId],
  );
  if (!inserted.rowCount) {
    const old = (await base(sql, true))!;
    if (old.code !== code) {
      const { rows } = await sql.query<{ rate: string; n: string }>(
        "SELECT (SELECT rate::text FROM rec_exchange_rates WHERE currency_code = $1) AS rate, (SELECT count(*) FROM rec_exchange_rates)::text AS n",
        [code],
      );
      const r = rows[0]!;
      if (r.rate === null && r.n !== "0") {
        throw new AppError(
          "failed_precondition",
          `${code} has no exchange rate against ${old.code}, so the other rates cannot be turned into rates against it: set ${code}'s rate first (SetExchangeRate), or delete the rates`,
          [{ field: "baseCurrencyCode", description: `set an exchange rate for ${code} first` }],
        );
      }
      if (r.rate !== null) {
        // Rebase: X→old / new→old = X→new; the old base gets 1 / (new→old); the new base's row goes.
        await sql.query(
          `WITH gone AS (DELETE FROM rec_exchange_rates WHERE currency_code = $1 RETURNING rate),
           moved AS (UPDATE rec_exchange_rates SET rate = round(rate / (SELECT rate FROM gone), 12), updated_at = now(), updated_by = $4 WHERE currency_code <> $1)
           INSERT INTO rec_exchange_rates (company_id, currency_code, rate, digits, updated_by)
           SELECT $2, $3, round(1 / rate, 12), $5, $4 FROM gone`,
          [code, a.companyId, old.code, a.userId, old.digits],
        );
      }
      await sql.query("UPDATE rec_currency_settings SET base_currency = $1, base_digits = $2, updated_at = now(), updated_by = $3", [code, digits, a.userId]);
    }
  }
  return { baseCurrencyCode: code, rates: (await rates(sql)).map(toRate) };
}

export async function setExchangeRate(sql: Sql, a: Acting, code: string, rate: string) {
  adminOnly(a);
  const b = await base(sql, true);
  if (!b) throw new AppError("failed_precondition", "set the base currency first (SetBaseCurrency): a rate is against it", [{ field: "currencyCode", description: "no base currency yet" }]);
  if (b.code === code) throw invalid([{ field: "currencyCode", description: `${code} is the base currency: its rate is 1` }]);
  const { rows } = await sql.query<RateRow>(
    `INSERT INTO rec_exchange_rates (company_id, currency_code, rate, digits, updated_by) VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (company_id, currency_code) DO UPDATE SET rate = EXCLUDED.rate, digits = EXCLUDED.digits, updated_at = now(), updated_by = EXCLUDED.updated_by
     RETURNING currency_code, rate::text AS rate, updated_at, updated_by`,
    [a.companyId, code, rate, currencyDigits(code), a.userId],
  );
  return { rate: toRate(rows[0]!) };
}

export async function deleteExchangeRate(sql: Sql, a: Acting, code: string) {
  adminOnly(a);
  const { rowCount } = await sql.query("DELETE FROM rec_exchange_rates WHERE currency_code = $1", [code]);
  if (!rowCount) throw new AppError("not_found", `your company has no exchange rate for ${code}`, [{ field: "currencyCode", description: "has no rate" }]);
  return {};
}

export function reportStore(
  tx: Tx,
): Pick<
  ServiceImpl<typeof DbRecordsService>,
  "getPipelineValueDB" | "getWinRateDB" | "getTimeInStageDB" | "getCurrencySettingsDB" | "setBaseCurrencyDB" | "setExchangeRateDB" | "deleteExchangeRateDB" | "listExchangeRatesDB"
> {
  const period = (r: { startTime?: Parameters<typeof checkPeriod>[1]; endTime?: Parameters<typeof checkPeriod>[2] } | undefined) => {
    const v: Violation[] = [];
    const p = checkPeriod(v, r?.startTime, r?.endTime);
    done(v);
    return p!;
  };
  const settings = (ctx: HandlerContext) =>
    tx(ctx, async (sql) => {
      const b = await base(sql);
      return { baseCurrencyCode: b?.code ?? "", rates: (await rates(sql)).map(toRate) };
    });
  const currency = (raw: string | undefined, field: string) => {
    const v: Violation[] = [];
    const c = checkCurrency(v, field, raw ?? "");
    done(v);
    return c;
  };
  return {
    async getPipelineValueDB({ request: r }, ctx) {
      const id = idOf(r?.pipelineId ?? "", "pipelineId");
      return { response: await tx(ctx, (sql) => pipelineValue(sql, id)) };
    },
    async getWinRateDB({ request: r }, ctx) {
      const id = idOf(r?.pipelineId ?? "", "pipelineId");
      const p = period(r);
      return { response: await tx(ctx, (sql) => winRate(sql, id, p.start, p.end)) };
    },
    async getTimeInStageDB({ request: r }, ctx) {
      const id = idOf(r?.pipelineId ?? "", "pipelineId");
      const p = period(r);
      return { response: await tx(ctx, (sql) => timeInStage(sql, id, p.start, p.end)) };
    },
    async getCurrencySettingsDB(_req, ctx) {
      return { response: await settings(ctx) };
    },
    async listExchangeRatesDB(_req, ctx) {
      return { response: await settings(ctx) };
    },
    async setBaseCurrencyDB({ request: r }, ctx) {
      const code = currency(r?.baseCurrencyCode, "baseCurrencyCode");
      return { response: await tx(ctx, (sql, a) => setBaseCurrency(sql, a, code)) };
    },
    async setExchangeRateDB({ request: r }, ctx) {
      const v: Violation[] = [];
      const code = checkCurrency(v, "currencyCode", r?.currencyCode ?? "");
      const rate = checkRate(v, "rate", r?.rate ?? "");
      done(v);
      return { response: await tx(ctx, (sql, a) => setExchangeRate(sql, a, code, rate)) };
    },
    async deleteExchangeRateDB({ request: r }, ctx) {
      const code = currency(r?.currencyCode, "currencyCode");
      return { response: await tx(ctx, (sql, a) => deleteExchangeRate(sql, a, code)) };
    },
  };
}

/**
 * Reports on the real PostgreSQL: pipeline value by stage (sum and weighted) converted with the
 * tenant's exchange rates and minor-unit digits, deals without a rate reported as unconverted,
 * win rate and time in stage over a period from the stage history; the currency settings are the
 * owners' and admins' to write (the policies, proven with SQL that forgets its WHERE), everyone's
 * to read, and apart per tenant; a new base currency rebases the rates.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { installHint, need, postgresUp } from "@crm/testkit";
import { expectCode, fieldsOf, storeHarness, type StoreHarness, type Tenant, type User } from "../test/harness.js";

const skip = need("PostgreSQL", await postgresUp(), installHint.postgres);

let h: StoreHarness;
let A: Tenant;
let B: Tenant;
before(async () => {
  if (skip) return;
  h = await storeHarness();
  A = await h.tenant("A");
  B = await h.tenant("B");
});
after(async () => {
  await h?.close();
});

const HOUR = 3600_000;
const period = (from: number, to: number) => ({ startTime: timestampFromDate(new Date(from)), endTime: timestampFromDate(new Date(to)) });

async function pipeline(u: User) {
  const p = (await u.store.createPipelineDB({
    request: { pipeline: { name: `Sales ${Math.random()}`, stages: [{ name: "Lead", probability: 10 }, { name: "Proposal", probability: 50 }, { name: "Won", probability: 100, kind: 2 }, { name: "Lost", kind: 3 }] } },
  })).response!.pipeline!;
  const [lead, proposal, won, lost] = p.stages.map((s) => s.id) as [string, string, string, string];
  return { id: p.id, lead, proposal, won, lost };
}

const deal = async (u: User, stageId: string, amountMinor?: bigint, currencyCode?: string) =>
  (await u.store.createDealDB({ request: { deal: { name: `d ${Math.random()}`, stageId, ...(amountMinor === undefined ? {} : { amountMinor, currencyCode }) } } })).response!.deal!;

test("currency settings: owners and admins write, everyone reads, tenants apart; the policies decide", { skip }, async () => {
  const t = await h.tenant("settings");
  const p = await pipeline(t.admin);
  await expectCode(t.member.store.getPipelineValueDB({ request: { pipelineId: p.id } }), Code.FailedPrecondition, /base currency/);
  await expectCode(t.member.store.setBaseCurrencyDB({ request: { baseCurrencyCode: "EUR" } }), Code.PermissionDenied, /owners and admins/);
  await expectCode(t.admin.store.setExchangeRateDB({ request: { currencyCode: "USD", rate: "0.9" } }), Code.FailedPrecondition, /base currency first/);
  const e = await expectCode(t.admin.store.setBaseCurrencyDB({ request: { baseCurrencyCode: "EURO" } }), Code.InvalidArgument);
  assert.deepEqual(fieldsOf(e), ["baseCurrencyCode"]);
  assert.equal((await t.admin.store.setBaseCurrencyDB({ request: { baseCurrencyCode: "eur" } })).response!.baseCurrencyCode, "EUR");
  const bad = await expectCode(t.admin.store.setExchangeRateDB({ request: { currencyCode: "XYZ", rate: "0" } }), Code.InvalidArgument);
  assert.deepEqual(fieldsOf(bad).sort(), ["currencyCode", "rate"]);
  await expectCode(t.admin.store.setExchangeRateDB({ request: { currencyCode: "EUR", rate: "2" } }), Code.InvalidArgument, /base currency/);
  await expectCode(t.member.store.setExchangeRateDB({ request: { currencyCode: "USD", rate: "0.9" } }), Code.PermissionDenied);
  const r = (await t.owner.store.setExchangeRateDB({ request: { currencyCode: "usd", rate: "0.900" } })).response!.rate!;
  assert.deepEqual([r.currencyCode, r.rate, r.updatedBy], ["USD", "0.9", t.owner.userId]);
  await t.admin.store.setExchangeRateDB({ request: { currencyCode: "USD", rate: "0.92" } });
  const seen = (await t.member.store.getCurrencySettingsDB({ request: {} })).response!;
  assert.deepEqual([seen.baseCurrencyCode, seen.rates.map((x) => `${x.currencyCode} ${x.rate}`)], ["EUR", ["USD 0.92"]]);
  assert.deepEqual((await B.member.store.listExchangeRatesDB({ request: {} })).response!, { $typeName: "crm.records.v1.ListExchangeRatesResponse", baseCurrencyCode: "", rates: [] });
  await expectCode(t.member.store.deleteExchangeRateDB({ request: { currencyCode: "USD" } }), Code.PermissionDenied);
  await expectCode(t.admin.store.deleteExchangeRateDB({ request: { currencyCode: "GBP" } }), Code.NotFound);

  // SQL that forgets its WHERE: a member changes nothing, another tenant sees nothing.
  await h.asApp(t.member, async (c) => {
    assert.equal((await c.query("SELECT 1 FROM rec_exchange_rates")).rowCount, 1);
    assert.equal((await c.query("UPDATE rec_exchange_rates SET rate = 1")).rowCount, 0);
    assert.equal((await c.query("UPDATE rec_currency_settings SET base_currency = 'USD'")).rowCount, 0);
    assert.equal((await c.query("DELETE FROM rec_exchange_rates")).rowCount, 0);
    await assert.rejects(c.query("INSERT INTO rec_exchange_rates (company_id, currency_code, rate, digits) VALUES ($1, 'GBP', 1, 2)", [t.companyId]), /row-level security/);
  });
  await h.asApp(B.owner, async (c) => {
    assert.equal((await c.query("SELECT 1 FROM rec_exchange_rates")).rowCount, 0);
    assert.equal((await c.query("UPDATE rec_exchange_rates SET rate = 1")).rowCount, 0);
    assert.equal((await c.query("SELECT 1 FROM rec_currency_settings")).rowCount, 0);
  });
  await t.admin.store.deleteExchangeRateDB({ request: { currencyCode: "USD" } });
  assert.equal((await t.member.store.getCurrencySettingsDB({ request: {} })).response!.rates.length, 0);
});

test("pipeline value by stage: converted with each currency's digits, weighted, unconverted named", { skip }, async () => {
  const p = await pipeline(A.admin);
  await A.admin.store.setBaseCurrencyDB({ request: { baseCurrencyCode: "EUR" } });
  await A.admin.store.setExchangeRateDB({ request: { currencyCode: "USD", rate: "0.9" } });
  await A.admin.store.setExchangeRateDB({ request: { currencyCode: "JPY", rate: "0.0062" } });
  await deal(A.member, p.lead, 100_000n, "EUR"); // 1,000.00 EUR
  await deal(A.member, p.lead, 10_000n, "USD"); // 100.00 USD = 90.00 EUR
  await deal(A.member, p.lead, 10_000n, "JPY"); // 10,000 JPY (no minor units) = 62.00 EUR
  await deal(A.member, p.lead, 5_000n, "GBP"); // no rate
  await deal(A.member2, p.lead, 2_550n, "GBP");
  await deal(A.member, p.lead); // no amount
  await deal(A.member, p.proposal, 200_000n, "EUR");
  const trashed = await deal(A.member, p.proposal, 99_900n, "EUR");
  await A.member.store.deleteDealDB({ request: { id: trashed.id } });
  await deal(A.member, p.won, 70_000n, "EUR");

  const v = (await A.member.store.getPipelineValueDB({ request: { pipelineId: p.id } })).response!;
  assert.equal(v.baseCurrencyCode, "EUR");
  assert.deepEqual(
    v.stages.map((s) => [s.name, s.probability, s.dealCount, s.amountMinor, s.weightedAmountMinor, s.unconverted.map((u) => `${u.currencyCode} ${u.dealCount} ${u.amountMinor}`)]),
    [
      ["Lead", 10, 6n, 115_200n, 11_520n, ["GBP 2 7550"]],
      ["Proposal", 50, 1n, 200_000n, 100_000n, []],
      ["Won", 100, 1n, 70_000n, 70_000n, []],
      ["Lost", 0, 0n, 0n, 0n, []],
    ],
  );
  assert.deepEqual([v.openDealCount, v.openAmountMinor, v.openWeightedAmountMinor], [7n, 315_200n, 111_520n]);
  assert.deepEqual(v.openUnconverted.map((u) => [u.currencyCode, u.dealCount, u.amountMinor]), [["GBP", 2n, 7550n]]);

  // A rate for GBP converts them; BHD has three digits: 1.000 BHD = 2.45 EUR.
  await A.owner.store.setExchangeRateDB({ request: { currencyCode: "GBP", rate: "1.17" } });
  await deal(A.member, p.proposal, 1_000n, "BHD");
  await A.owner.store.setExchangeRateDB({ request: { currencyCode: "BHD", rate: "2.45" } });
  const v2 = (await A.member.store.getPipelineValueDB({ request: { pipelineId: p.id } })).response!;
  // 75.50 GBP × 1.17 = 88.335 EUR → 8,833.5 minor units; 1.000 BHD = 245 EUR cents.
  assert.deepEqual(v2.stages.slice(0, 2).map((s) => [s.amountMinor, s.unconverted.length]), [[115_200n + 8_834n, 0], [200_245n, 0]]);

  // A new base currency with a rate: the rates are rebased (EUR gets 1 / 0.9) and the report follows.
  await expectCode(A.admin.store.setBaseCurrencyDB({ request: { baseCurrencyCode: "CHF" } }), Code.FailedPrecondition, /set CHF's rate first/);
  const rebased = (await A.admin.store.setBaseCurrencyDB({ request: { baseCurrencyCode: "USD" } })).response!;
  assert.deepEqual(rebased.rates.map((r) => `${r.currencyCode} ${r.rate}`), ["BHD 2.722222222222", "EUR 1.111111111111", "GBP 1.3", "JPY 0.006888888889"]);
  const v3 = (await A.member.store.getPipelineValueDB({ request: { pipelineId: p.id } })).response!;
  assert.equal(v3.baseCurrencyCode, "USD");
  assert.equal(v3.stages[2]!.amountMinor, 77_778n, "700.00 EUR × 1.111111111111 = 777.78 USD");
  await A.admin.store.setBaseCurrencyDB({ request: { baseCurrencyCode: "EUR" } });

  await expectCode(B.owner.store.getPipelineValueDB({ request: { pipelineId: p.id } }), Code.NotFound, /no pipeline/);
});

test("win rate and time in stage over a period, from the stage history", { skip }, async () => {
  const p = await pipeline(A.admin);
  await A.admin.store.setBaseCurrencyDB({ request: { baseCurrencyCode: "EUR" } });
  await A.admin.store.setExchangeRateDB({ request: { currencyCode: "USD", rate: "0.9" } });
  await A.admin.store.deleteExchangeRateDB({ request: { currencyCode: "GBP" } }).catch(() => undefined);
  const w = await deal(A.member, p.lead, 50_000n, "EUR");
  const l1 = await deal(A.member, p.lead, 30_000n, "USD");
  const l2 = await deal(A.member, p.lead, 1_000n, "GBP");
  const staying = await deal(A.member, p.lead, 1n, "EUR");
  await A.member.store.moveDealDB({ request: { id: w.id, stageId: p.proposal } });
  await A.member.store.moveDealDB({ request: { id: w.id, stageId: p.won } });
  await A.member.store.moveDealDB({ request: { id: l1.id, stageId: p.lost } });
  await A.member.store.moveDealDB({ request: { id: l2.id, stageId: p.lost } });
  // The stays in Lead took 1, 2 and 4 days; the deal still there entered it 3 days ago.
  for (const [id, days] of [[w.id, 1], [l1.id, 2], [l2.id, 4]] as const) {
    await h.pool.query("UPDATE rec_deal_stage_history SET entered_at = left_at - make_interval(days => $2) WHERE deal_id = $1 AND stage_id = $3", [id, days, p.lead]);
  }
  await h.pool.query("UPDATE rec_deals SET stage_entered_at = now() - interval '3 days' WHERE id = $1", [staying.id]);

  const now = Date.now();
  const r = (await A.member.store.getWinRateDB({ request: { pipelineId: p.id, ...period(now - HOUR, now + HOUR) } })).response!;
  assert.deepEqual([r.wonCount, r.lostCount, r.wonAmountMinor, r.lostAmountMinor], [1n, 2n, 50_000n, 27_000n]);
  assert.equal(r.winRate, 1 / 3);
  assert.equal(r.winRateByValue, 50_000 / 77_000);
  assert.deepEqual(r.lostUnconverted.map((u) => [u.currencyCode, u.dealCount, u.amountMinor]), [["GBP", 1n, 1000n]]);
  assert.deepEqual(r.wonUnconverted, []);
  const earlier = (await A.member.store.getWinRateDB({ request: { pipelineId: p.id, ...period(now - 48 * HOUR, now - HOUR) } })).response!;
  assert.deepEqual([earlier.wonCount, earlier.lostCount, earlier.winRate], [0n, 0n, 0]);

  const t = (await A.member.store.getTimeInStageDB({ request: { pipelineId: p.id, ...period(now - HOUR, now + HOUR) } })).response!;
  const lead = t.stages[0]!;
  assert.equal(lead.name, "Lead");
  assert.equal(lead.completedCount, 3n);
  assert.ok(Math.abs(lead.averageSeconds - (7 / 3) * 86_400) < 1, String(lead.averageSeconds));
  assert.ok(Math.abs(lead.medianSeconds - 2 * 86_400) < 1, String(lead.medianSeconds));
  assert.equal(lead.currentCount, 1n);
  assert.ok(Math.abs(lead.currentAverageSeconds - 3 * 86_400) < 60, String(lead.currentAverageSeconds));
  assert.deepEqual(t.stages.map((s) => s.name), ["Lead", "Proposal", "Won", "Lost"]);
  assert.equal(t.stages[1]!.completedCount, 1n);
  const none = (await A.member.store.getTimeInStageDB({ request: { pipelineId: p.id, ...period(now - 48 * HOUR, now - HOUR) } })).response!;
  assert.deepEqual([none.stages[0]!.completedCount, none.stages[0]!.averageSeconds, none.stages[0]!.medianSeconds], [0n, 0, 0]);

  const e = await expectCode(A.member.store.getWinRateDB({ request: { pipelineId: "x", ...period(now, now - HOUR) } }), Code.InvalidArgument);
  assert.deepEqual(fieldsOf(e), ["pipelineId"]);
  const e2 = await expectCode(A.member.store.getTimeInStageDB({ request: { pipelineId: p.id, ...period(now, now - HOUR) } }), Code.InvalidArgument);
  assert.deepEqual(fieldsOf(e2), ["endTime"]);
  await expectCode(A.member.store.getWinRateDB({ request: { pipelineId: p.id } }), Code.InvalidArgument, /startTime/);
});

/**
 * ReportService's handlers in memory, with a fake store: bad requests are refused with every bad
 * field named (pipeline id, period, currency codes, rates) and never reach the store; good ones
 * reach it unchanged.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, createClient, createRouterTransport, type ServiceImpl } from "@connectrpc/connect";
import { DbRecordsService } from "@crm/gen/crm/db/v1/db_records_pb";
import { ReportService } from "@crm/gen/crm/records/v1/report_pb";
import { errorInterceptor } from "@crm/kit";
import { expectCode, fieldsOf, inMemory, log } from "../test/harness.js";
import { checkRate, currencyDigits } from "./rules.js";
import { reportService } from "./report-service.js";

const ID = "0b4e7c1a-6a4b-4bb4-9d0f-6f1b2a3c4d5e";

function setup() {
  const calls: string[] = [];
  const store: Partial<ServiceImpl<typeof DbRecordsService>> = {
    async getPipelineValueDB({ request }) {
      calls.push(`value ${request!.pipelineId}`);
      return { response: { baseCurrencyCode: "EUR" } };
    },
    async getWinRateDB() {
      calls.push("win rate");
      return { response: { winRate: 0.5 } };
    },
    async getTimeInStageDB() {
      calls.push("time");
      return { response: {} };
    },
    async setBaseCurrencyDB({ request }) {
      calls.push(`base ${request!.baseCurrencyCode}`);
      return { response: { baseCurrencyCode: "EUR" } };
    },
    async setExchangeRateDB({ request }) {
      calls.push(`rate ${request!.currencyCode} ${request!.rate}`);
      return { response: {} };
    },
    async deleteExchangeRateDB() {
      calls.push("delete");
      return { response: {} };
    },
    async getCurrencySettingsDB() {
      calls.push("settings");
      return { response: { baseCurrencyCode: "EUR" } };
    },
  };
  const db = createClient(DbRecordsService, createRouterTransport((r) => void r.service(DbRecordsService, store), { router: { interceptors: [errorInterceptor(log)] } }));
  return { calls, reports: inMemory((r) => void r.service(ReportService, reportService(db))).client(ReportService, `${ID}.${ID}.member`) };
}

const at = (ms: number) => timestampFromDate(new Date(ms));

test("reports: the pipeline id and the period are checked at once; nothing sent", async () => {
  const t = setup();
  await expectCode(t.reports.getPipelineValue({ pipelineId: "" }), Code.InvalidArgument, /pipelineId: is required/);
  let e = await expectCode(t.reports.getWinRate({ pipelineId: "nope", startTime: at(2_000), endTime: at(1_000) }), Code.InvalidArgument);
  assert.deepEqual(fieldsOf(e), ["pipelineId", "endTime"]);
  e = await expectCode(t.reports.getTimeInStage({ pipelineId: ID }), Code.InvalidArgument);
  assert.deepEqual(fieldsOf(e), ["startTime", "endTime"]);
  await expectCode(t.reports.getWinRate({ pipelineId: ID, startTime: at(0), endTime: at(11 * 366 * 86_400_000) }), Code.InvalidArgument, /10 years/);
  assert.deepEqual(t.calls, []);
  assert.equal((await t.reports.getPipelineValue({ pipelineId: ID })).baseCurrencyCode, "EUR");
  assert.equal((await t.reports.getWinRate({ pipelineId: ID, startTime: at(0), endTime: at(1_000) })).winRate, 0.5);
  await t.reports.getTimeInStage({ pipelineId: ID, startTime: at(0), endTime: at(1_000) });
  assert.deepEqual(t.calls, [`value ${ID}`, "win rate", "time"]);
});

test("currency settings: codes and rates checked at once; nothing sent", async () => {
  const t = setup();
  await expectCode(t.reports.setBaseCurrency({ baseCurrencyCode: "EURO" }), Code.InvalidArgument, /baseCurrencyCode/);
  const e = await expectCode(t.reports.setExchangeRate({ currencyCode: "XXY", rate: "1,5" }), Code.InvalidArgument);
  assert.deepEqual(fieldsOf(e), ["currencyCode", "rate"]);
  for (const rate of ["0", "0.000", "-1", "1e3", "1234567890123", "0.0000000000001", ""]) {
    await expectCode(t.reports.setExchangeRate({ currencyCode: "USD", rate }), Code.InvalidArgument, /rate/);
  }
  await expectCode(t.reports.deleteExchangeRate({ currencyCode: "" }), Code.InvalidArgument, /currencyCode: is required/);
  assert.deepEqual(t.calls, []);
  await t.reports.setBaseCurrency({ baseCurrencyCode: "eur" });
  await t.reports.setExchangeRate({ currencyCode: "usd", rate: "0.92" });
  await t.reports.deleteExchangeRate({ currencyCode: "USD" });
  await t.reports.getCurrencySettings({});
  assert.deepEqual(t.calls, ["base eur", "rate usd 0.92", "delete", "settings"]);
});

test("rates are canonical decimals; minor-unit digits per currency", () => {
  const v: { field: string; description: string }[] = [];
  assert.deepEqual(["000.9200", "150.000", "7", "0.000000000001"].map((r) => checkRate(v, "rate", r)), ["0.92", "150", "7", "0.000000000001"]);
  assert.deepEqual(v, []);
  assert.deepEqual(["JPY", "EUR", "BHD"].map(currencyDigits), [0, 2, 3]);
});

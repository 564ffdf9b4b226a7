/**
 * The crm.records.v1 handlers of ReportService: each checks its request (every bad field at once,
 * nothing sent on) and forwards it to dbservice's DbRecordsService, which runs it as the caller
 * (who may set the currency settings is row-level security's: owners and admins).
 */
import type { Client, ServiceImpl } from "@connectrpc/connect";
import { AppError, invalid, type Violation } from "@crm/kit";
import type { DbRecordsService } from "@crm/gen/crm/db/v1/db_records_pb";
import type { ReportService } from "@crm/gen/crm/records/v1/report_pb";
import { checkCurrency, checkPeriod, checkRate, requiredId } from "./rules.js";

const ok = (v: Violation[]) => {
  if (v.length) throw invalid(v);
};

function answer<T>(res: { response?: T }): T {
  if (!res.response) throw new AppError("internal", "the records store sent an empty answer");
  return res.response;
}

export function reportService(db: Client<typeof DbRecordsService>): ServiceImpl<typeof ReportService> {
  return {
    async getPipelineValue(request) {
      const v: Violation[] = [];
      requiredId(v, "pipelineId", request.pipelineId, "pipeline");
      ok(v);
      return answer(await db.getPipelineValueDB({ request }));
    },
    async getWinRate(request) {
      const v: Violation[] = [];
      requiredId(v, "pipelineId", request.pipelineId, "pipeline");
      checkPeriod(v, request.startTime, request.endTime);
      ok(v);
      return answer(await db.getWinRateDB({ request }));
    },
    async getTimeInStage(request) {
      const v: Violation[] = [];
      requiredId(v, "pipelineId", request.pipelineId, "pipeline");
      checkPeriod(v, request.startTime, request.endTime);
      ok(v);
      return answer(await db.getTimeInStageDB({ request }));
    },
    async getCurrencySettings(request) {
      return answer(await db.getCurrencySettingsDB({ request }));
    },
    async listExchangeRates(request) {
      return answer(await db.listExchangeRatesDB({ request }));
    },
    async setBaseCurrency(request) {
      const v: Violation[] = [];
      checkCurrency(v, "baseCurrencyCode", request.baseCurrencyCode);
      ok(v);
      return answer(await db.setBaseCurrencyDB({ request }));
    },
    async setExchangeRate(request) {
      const v: Violation[] = [];
      checkCurrency(v, "currencyCode", request.currencyCode);
      checkRate(v, "rate", request.rate);
      ok(v);
      return answer(await db.setExchangeRateDB({ request }));
    },
    async deleteExchangeRate(request) {
      const v: Violation[] = [];
      checkCurrency(v, "currencyCode", request.currencyCode);
      ok(v);
      return answer(await db.deleteExchangeRateDB({ request }));
    },
  };
}

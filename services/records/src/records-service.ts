/**
 * The crm.records.v1 handlers: CompanyService, PersonService, PipelineService, DealService and
 * TimelineService. Each checks its request (validation.ts: every bad field at once, nothing sent
 * on), then forwards it to dbservice's DbRecordsService through the peer client, which forwards
 * the caller's token: the tenant, the acting user and their role come from it there, and
 * PostgreSQL's row-level security decides what they may change. The store answers the public
 * response, passed back as it is.
 */
import type { Client, ServiceImpl } from "@connectrpc/connect";
import { AppError, invalid, type Violation } from "@crm/kit";
import type { DbRecordsService } from "@crm/gen/crm/db/v1/db_records_pb";
import type { CompanyService } from "@crm/gen/crm/records/v1/company_pb";
import type { DealService } from "@crm/gen/crm/records/v1/deal_pb";
import type { PersonService } from "@crm/gen/crm/records/v1/person_pb";
import type { PipelineService } from "@crm/gen/crm/records/v1/pipeline_pb";
import type { TimelineService } from "@crm/gen/crm/records/v1/timeline_pb";
import * as check from "./validation.js";

export interface RecordsServiceDeps {
  db: Client<typeof DbRecordsService>;
}

const ok = (v: Violation[]) => {
  if (v.length) throw invalid(v);
};

/** The store's answer; a store that answered nothing is a bug of ours, not the caller's. */
function answer<T>(res: { response?: T }): T {
  if (!res.response) throw new AppError("internal", "the records store sent an empty answer");
  return res.response;
}

export interface RecordsServices {
  companies: ServiceImpl<typeof CompanyService>;
  people: ServiceImpl<typeof PersonService>;
  pipelines: ServiceImpl<typeof PipelineService>;
  deals: ServiceImpl<typeof DealService>;
  timeline: ServiceImpl<typeof TimelineService>;
}

export function recordsServices({ db }: RecordsServiceDeps): RecordsServices {
  return {
    companies: {
      async createCompany(request) {
        ok(check.company.create(request));
        return answer(await db.createCompanyDB({ request }));
      },
      async getCompany(request) {
        ok(check.byId(request));
        return answer(await db.getCompanyRecordDB({ request }));
      },
      async listCompanies(request) {
        ok(check.list("company", request));
        return answer(await db.listCompaniesDB({ request }));
      },
      async updateCompany(request) {
        ok(check.company.update(request));
        return answer(await db.updateCompanyDB({ request }));
      },
      async deleteCompany(request) {
        ok(check.byId(request));
        return answer(await db.deleteCompanyDB({ request }));
      },
      async undeleteCompany(request) {
        ok(check.byId(request));
        return answer(await db.undeleteCompanyDB({ request }));
      },
      async purgeCompany(request) {
        ok(check.byId(request));
        return answer(await db.purgeCompanyDB({ request }));
      },
    },

    people: {
      async createPerson(request) {
        ok(check.person.create(request));
        return answer(await db.createPersonDB({ request }));
      },
      async getPerson(request) {
        ok(check.byId(request));
        return answer(await db.getPersonDB({ request }));
      },
      async listPeople(request) {
        ok(check.list("person", request));
        return answer(await db.listPeopleDB({ request }));
      },
      async updatePerson(request) {
        ok(check.person.update(request));
        return answer(await db.updatePersonDB({ request }));
      },
      async deletePerson(request) {
        ok(check.byId(request));
        return answer(await db.deletePersonDB({ request }));
      },
      async undeletePerson(request) {
        ok(check.byId(request));
        return answer(await db.undeletePersonDB({ request }));
      },
      async purgePerson(request) {
        ok(check.byId(request));
        return answer(await db.purgePersonDB({ request }));
      },
    },

    pipelines: {
      async createPipeline(request) {
        ok(check.pipeline.create(request));
        return answer(await db.createPipelineDB({ request }));
      },
      async getPipeline(request) {
        ok(check.byId(request));
        return answer(await db.getPipelineDB({ request }));
      },
      async listPipelines(request) {
        ok(check.pipeline.list(request));
        return answer(await db.listPipelinesDB({ request }));
      },
      async updatePipeline(request) {
        ok(check.pipeline.update(request));
        return answer(await db.updatePipelineDB({ request }));
      },
      async deletePipeline(request) {
        ok(check.byId(request));
        return answer(await db.deletePipelineDB({ request }));
      },
      async createStage(request) {
        ok(check.pipeline.createStage(request));
        return answer(await db.createStageDB({ request }));
      },
      async updateStage(request) {
        ok(check.pipeline.updateStage(request));
        return answer(await db.updateStageDB({ request }));
      },
      async deleteStage(request) {
        ok(check.pipeline.deleteStage(request));
        return answer(await db.deleteStageDB({ request }));
      },
      async reorderStages(request) {
        ok(check.pipeline.reorderStages(request));
        return answer(await db.reorderStagesDB({ request }));
      },
    },

    deals: {
      async createDeal(request) {
        ok(check.deal.create(request));
        return answer(await db.createDealDB({ request }));
      },
      async getDeal(request) {
        ok(check.byId(request));
        return answer(await db.getDealDB({ request }));
      },
      async listDeals(request) {
        ok(check.list("deal", request));
        return answer(await db.listDealsDB({ request }));
      },
      async updateDeal(request) {
        ok(check.deal.update(request));
        return answer(await db.updateDealDB({ request }));
      },
      async moveDeal(request) {
        ok(check.deal.move(request));
        return answer(await db.moveDealDB({ request }));
      },
      async deleteDeal(request) {
        ok(check.byId(request));
        return answer(await db.deleteDealDB({ request }));
      },
      async undeleteDeal(request) {
        ok(check.byId(request));
        return answer(await db.undeleteDealDB({ request }));
      },
      async purgeDeal(request) {
        ok(check.byId(request));
        return answer(await db.purgeDealDB({ request }));
      },
    },

    timeline: {
      async listTimeline(request) {
        ok(check.timeline(request));
        return answer(await db.listTimelineDB({ request }));
      },
    },
  };
}

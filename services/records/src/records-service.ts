/**
 * The crm.records.v1 handlers: CompanyService, PersonService, PipelineService, DealService,
 * TimelineService, FieldService, TaskService and NoteService. Each checks its request (validation.ts: every bad field at once, nothing sent
 * on), then forwards it to dbservice's DbRecordsService through the peer client, which forwards
 * the caller's token: the tenant, the acting user and their role come from it there, and
 * PostgreSQL's row-level security decides what they may change. The store answers the public
 * response, passed back as it is.
 */
import type { JsonObject } from "@bufbuild/protobuf";
import type { Client, ServiceImpl } from "@connectrpc/connect";
import { AppError, invalid, type Violation } from "@crm/kit";
import type { DbRecordsService } from "@crm/gen/crm/db/v1/db_records_pb";
import type { CompanyService } from "@crm/gen/crm/records/v1/company_pb";
import type { DealService } from "@crm/gen/crm/records/v1/deal_pb";
import type { PersonService } from "@crm/gen/crm/records/v1/person_pb";
import type { PipelineService } from "@crm/gen/crm/records/v1/pipeline_pb";
import type { TimelineService } from "@crm/gen/crm/records/v1/timeline_pb";
import type { FieldService } from "@crm/gen/crm/records/v1/field_pb";
import type { NoteService } from "@crm/gen/crm/records/v1/note_pb";
import type { TaskService } from "@crm/gen/crm/records/v1/task_pb";
import { ObjectType } from "@crm/gen/crm/records/v1/common_pb";
import { catalogOf, checkCustom, customScope, defFromField } from "./rules.js";
import { mentionsCustom, parseListQuery, type CustomKind, type ListParams } from "./rules.js";
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
  fields: ServiceImpl<typeof FieldService>;
  tasks: ServiceImpl<typeof TaskService>;
  notes: ServiceImpl<typeof NoteService>;
}

const objectTypes: Record<CustomKind, ObjectType> = { company: ObjectType.COMPANY, person: ObjectType.PERSON, deal: ObjectType.DEAL };

export function recordsServices({ db }: RecordsServiceDeps): RecordsServices {
  const definitions = async (kind: CustomKind) =>
    (await db.listFieldsDB({ request: { objectType: objectTypes[kind], showArchived: true } })).response?.fields.map(defFromField) ?? [];

  /**
   * A write refused for its standard fields is refused for its custom values too, so every bad
   * field is named at once: only then are the definitions read here (else the store checks the
   * values, in its transaction).
   */
  async function write(kind: CustomKind, v: Violation[], custom: JsonObject | undefined, paths: readonly string[] | "create"): Promise<void> {
    if (!v.length) return;
    const scope = paths === "create" || paths.includes("*") ? "all" : customScope(paths);
    if (scope && custom && Object.keys(custom).length) {
      const defs = await definitions(kind);
      v = v.filter((x) => !x.field.startsWith(`${kind}.custom`));
      checkCustom(kind, defs, custom, scope, v, kind);
    }
    throw invalid(v);
  }

  /** The same for lists: conditions and sorts on custom fields checked against the definitions when the request is refused anyway. */
  async function list(kind: CustomKind, req: ListParams): Promise<void> {
    const v = check.list(kind, req);
    if (!v.length) return;
    if (!mentionsCustom(req.filter, req.orderBy)) throw invalid(v);
    const all: Violation[] = [];
    parseListQuery(kind, req, all, catalogOf((await definitions(kind)).filter((d) => !d.archived)));
    throw invalid(all);
  }

  const mask = (m: { paths: string[] } | undefined) => m?.paths ?? [];

  return {
    companies: {
      async createCompany(request) {
        await write("company", check.company.create(request), request.company?.custom, "create");
        return answer(await db.createCompanyDB({ request }));
      },
      async getCompany(request) {
        ok(check.byId(request));
        return answer(await db.getCompanyRecordDB({ request }));
      },
      async listCompanies(request) {
        await list("company", request);
        return answer(await db.listCompaniesDB({ request }));
      },
      async updateCompany(request) {
        await write("company", check.company.update(request), request.company?.custom, mask(request.updateMask));
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
        await write("person", check.person.create(request), request.person?.custom, "create");
        return answer(await db.createPersonDB({ request }));
      },
      async getPerson(request) {
        ok(check.byId(request));
        return answer(await db.getPersonDB({ request }));
      },
      async listPeople(request) {
        await list("person", request);
        return answer(await db.listPeopleDB({ request }));
      },
      async updatePerson(request) {
        await write("person", check.person.update(request), request.person?.custom, mask(request.updateMask));
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
        await write("deal", check.deal.create(request), request.deal?.custom, "create");
        return answer(await db.createDealDB({ request }));
      },
      async getDeal(request) {
        ok(check.byId(request));
        return answer(await db.getDealDB({ request }));
      },
      async listDeals(request) {
        await list("deal", request);
        return answer(await db.listDealsDB({ request }));
      },
      async updateDeal(request) {
        await write("deal", check.deal.update(request), request.deal?.custom, mask(request.updateMask));
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

    fields: {
      async createField(request) {
        ok(check.field.create(request));
        return answer(await db.createFieldDB({ request }));
      },
      async getField(request) {
        ok(check.byId(request));
        return answer(await db.getFieldDB({ request }));
      },
      async listFields(request) {
        ok(check.field.list(request));
        return answer(await db.listFieldsDB({ request }));
      },
      async updateField(request) {
        ok(check.field.update(request));
        return answer(await db.updateFieldDB({ request }));
      },
      async archiveField(request) {
        ok(check.field.archive(request));
        return answer(await db.archiveFieldDB({ request }));
      },
      async unarchiveField(request) {
        ok(check.byId(request));
        return answer(await db.unarchiveFieldDB({ request }));
      },
    },

    tasks: {
      async createTask(request) {
        ok(check.task.create(request));
        return answer(await db.createTaskDB({ request }));
      },
      async getTask(request) {
        ok(check.byId(request));
        return answer(await db.getTaskDB({ request }));
      },
      async listTasks(request) {
        ok(check.list("task", request));
        return answer(await db.listTasksDB({ request }));
      },
      async updateTask(request) {
        ok(check.task.update(request));
        return answer(await db.updateTaskDB({ request }));
      },
      async deleteTask(request) {
        ok(check.byId(request));
        return answer(await db.deleteTaskDB({ request }));
      },
      async undeleteTask(request) {
        ok(check.byId(request));
        return answer(await db.undeleteTaskDB({ request }));
      },
      async purgeTask(request) {
        ok(check.byId(request));
        return answer(await db.purgeTaskDB({ request }));
      },
    },

    notes: {
      async createNote(request) {
        ok(check.note.create(request));
        return answer(await db.createNoteDB({ request }));
      },
      async getNote(request) {
        ok(check.byId(request));
        return answer(await db.getNoteDB({ request }));
      },
      async listNotes(request) {
        ok(check.list("note", request));
        return answer(await db.listNotesDB({ request }));
      },
      async updateNote(request) {
        ok(check.note.update(request));
        return answer(await db.updateNoteDB({ request }));
      },
      async deleteNote(request) {
        ok(check.byId(request));
        return answer(await db.deleteNoteDB({ request }));
      },
      async undeleteNote(request) {
        ok(check.byId(request));
        return answer(await db.undeleteNoteDB({ request }));
      },
      async purgeNote(request) {
        ok(check.byId(request));
        return answer(await db.purgeNoteDB({ request }));
      },
    },
  };
}

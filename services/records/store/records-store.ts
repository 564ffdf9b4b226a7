/**
 * The records store, mounted by dbservice as DbRecordsService. Each RPC carries the public
 * crm.records.v1 request (checked and normalised by the records service) and answers the public
 * response; it runs in ONE transaction as the caller (acting.ts: tenant, user, current role), and
 * the change and its timeline entry commit together. The store checks what it is given again with
 * the domain's rules (../src/rules.ts): it may be called by any service of ours, and the schema's
 * refusals are mapped to the same errors.
 */
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { invalid, type Violation } from "@crm/kit";
import type { DbRecordsService } from "@crm/gen/crm/db/v1/db_records_pb";
import type { Db, Sql } from "@crm/dbservice/db";
import {
  checkPipelineName, checkStage, decodePageToken, encodePageToken, pageSizeOf, pageSizeViolation, parseMask, queryFingerprint, type StageInput,
} from "../src/rules.js";
import { asCaller, type Acting, type ConstraintInfo } from "./acting.js";
import { activityStore } from "./activity-store.js";
import { companyConstraints, companyList, createCompany, getCompany, toCompany, trashCompany, updateCompany, type CompanyRow } from "./companies.js";
import { fieldConstraints } from "./fields.js";
import { noteConstraints } from "./notes.js";
import { taskConstraints } from "./tasks.js";
import { createDeal, dealConstraints, dealList, getDeal, moveDeal, toDeal, trashDeal, updateDeal, type DealRow } from "./deals.js";
import { runList } from "./lists.js";
import { createPerson, getPerson, personConstraints, personList, toPerson, trashPerson, updatePerson, type PersonRow } from "./people.js";
import {
  createPipeline, createStage, deletePipeline, deleteStage, getPipeline, listPipelines, pipelineConstraints, renamePipeline, reorderStages, toPipeline, toStage, updateStage,
} from "./pipelines.js";
import { etagArg, idOf, purge } from "./shared.js";
import { listTimeline, objectKinds } from "./timeline.js";
import { recordReaders } from "./readers.js";
import { streamStore } from "./stream-store.js";
import { searchStore } from "./search.js";
import { viewConstraints, viewStore } from "./views.js";
import { reportConstraints, reportStore } from "./reports.js";
import { permissionStore } from "./permissions.js";
import { requestIdConstraints, retrySafeCreate } from "./request-ids.js";

const constraints: Record<string, ConstraintInfo> = {
  ...companyConstraints, ...personConstraints, ...dealConstraints, ...pipelineConstraints, ...fieldConstraints, ...taskConstraints, ...noteConstraints,
  ...viewConstraints, ...reportConstraints, ...requestIdConstraints,
};

function need<T>(value: T | undefined, field: string): T {
  if (value === undefined) throw invalid([{ field, description: "is required" }]);
  return value;
}

const done = (v: Violation[]) => {
  if (v.length) throw invalid(v);
};

export interface RecordsStoreOptions {
  /** Wakes the outbox relay after a commit that wrote record change events. */
  afterOutbox?: () => void;
}

export function recordsStore(db: Db, o: RecordsStoreOptions = {}): ServiceImpl<typeof DbRecordsService> {
  const tx = <T>(ctx: HandlerContext, fn: (sql: Sql, a: Acting) => Promise<T>) => asCaller(db, ctx, fn, constraints, { readers: recordReaders, afterOutbox: o.afterOutbox });
  const company = (row: CompanyRow) => ({ company: toCompany(row) });
  const person = (row: PersonRow) => ({ person: toPerson(row) });
  const deal = (row: DealRow) => ({ deal: toDeal(row) });
  const once = retrySafeCreate(db, tx);

  return {
    // FieldService, TaskService, NoteService and the trash's 30-day purge (activity-store.ts)
    ...activityStore(db, tx, o.afterOutbox),
    // WatchRecords' versions and changes (stream-store.ts)
    ...streamStore(db, tx),
    // SearchService (search.ts)
    ...searchStore(recordReaders, tx),
    // ViewService (views.ts)
    ...viewStore(tx),
    // ReportService (reports.ts)
    ...reportStore(tx),
    // PermissionService (permissions.ts)
    ...permissionStore(tx),

    // Companies
    async createCompanyDB({ request: r }, ctx) {
      const c = need(r?.company, "company");
      return { response: company(await once(ctx, "company", r?.requestId, (sql, a) => createCompany(sql, a, c), getCompany)) };
    },
    async getCompanyRecordDB({ request: r }, ctx) {
      const id = idOf(r?.id ?? "");
      return { response: company(await tx(ctx, (sql) => getCompany(sql, id))) };
    },
    async listCompaniesDB({ request: r }, ctx) {
      const req = need(r, "request");
      const res = await tx(ctx, (sql) => runList<CompanyRow & Record<string, unknown>>(sql, companyList, req));
      return { response: { companies: res.rows.map(toCompany), nextPageToken: res.nextPageToken, totalSize: res.totalSize, totalIsExact: res.totalIsExact } };
    },
    async updateCompanyDB({ request: r }, ctx) {
      const c = need(r?.company, "company");
      const id = idOf(c.id, "company.id");
      const etag = etagArg(c.etag, "company.etag");
      const v: Violation[] = [];
      const paths = parseMask("company", r?.updateMask?.paths ?? [], v);
      done(v);
      return { response: company(await tx(ctx, (sql, a) => updateCompany(sql, a, id, c, paths, etag))) };
    },
    async deleteCompanyDB({ request: r }, ctx) {
      const id = idOf(r?.id ?? "");
      const etag = etagArg(r?.etag ?? "");
      return { response: company(await tx(ctx, (sql, a) => trashCompany(sql, a, id, true, etag))) };
    },
    async undeleteCompanyDB({ request: r }, ctx) {
      const id = idOf(r?.id ?? "");
      return { response: company(await tx(ctx, (sql, a) => trashCompany(sql, a, id, false))) };
    },
    async purgeCompanyDB({ request: r }, ctx) {
      const id = idOf(r?.id ?? "");
      await tx(ctx, (sql, a) => purge(sql, a, "company", id));
      return { response: {} };
    },

    // People
    async createPersonDB({ request: r }, ctx) {
      const p = need(r?.person, "person");
      return { response: person(await once(ctx, "person", r?.requestId, (sql, a) => createPerson(sql, a, p), getPerson)) };
    },
    async getPersonDB({ request: r }, ctx) {
      const id = idOf(r?.id ?? "");
      return { response: person(await tx(ctx, (sql) => getPerson(sql, id))) };
    },
    async listPeopleDB({ request: r }, ctx) {
      const req = need(r, "request");
      const res = await tx(ctx, (sql) => runList<PersonRow & Record<string, unknown>>(sql, personList, req));
      return { response: { people: res.rows.map(toPerson), nextPageToken: res.nextPageToken, totalSize: res.totalSize, totalIsExact: res.totalIsExact } };
    },
    async updatePersonDB({ request: r }, ctx) {
      const p = need(r?.person, "person");
      const id = idOf(p.id, "person.id");
      const etag = etagArg(p.etag, "person.etag");
      const v: Violation[] = [];
      const paths = parseMask("person", r?.updateMask?.paths ?? [], v);
      done(v);
      return { response: person(await tx(ctx, (sql, a) => updatePerson(sql, a, id, p, paths, etag))) };
    },
    async deletePersonDB({ request: r }, ctx) {
      const id = idOf(r?.id ?? "");
      const etag = etagArg(r?.etag ?? "");
      return { response: person(await tx(ctx, (sql, a) => trashPerson(sql, a, id, true, etag))) };
    },
    async undeletePersonDB({ request: r }, ctx) {
      const id = idOf(r?.id ?? "");
      return { response: person(await tx(ctx, (sql, a) => trashPerson(sql, a, id, false))) };
    },
    async purgePersonDB({ request: r }, ctx) {
      const id = idOf(r?.id ?? "");
      await tx(ctx, (sql, a) => purge(sql, a, "person", id));
      return { response: {} };
    },

    // Pipelines and stages
    async createPipelineDB({ request: r }, ctx) {
      const p = need(r?.pipeline, "pipeline");
      const v: Violation[] = [];
      const name = checkPipelineName(p.name, v);
      if (p.stages.length > 50) v.push({ field: "pipeline.stages", description: "may hold at most 50 stages" });
      const stages = p.stages.slice(0, 50).map((s, i) => checkStage(s, ["name", "probability", "kind"], v, `pipeline.stages[${i}]`) as Required<StageInput>);
      done(v);
      const res = await tx(ctx, (sql, a) => createPipeline(sql, a, name, stages));
      return { response: { pipeline: toPipeline(res.pipeline, res.stages) } };
    },
    async getPipelineDB({ request: r }, ctx) {
      const id = idOf(r?.id ?? "");
      const res = await tx(ctx, (sql) => getPipeline(sql, id));
      return { response: { pipeline: toPipeline(res.pipeline, res.stages) } };
    },
    async listPipelinesDB({ request: r }, ctx) {
      const v: Violation[] = [];
      const bad = pageSizeViolation(r?.pageSize ?? 0);
      if (bad) v.push(bad);
      const fingerprint = queryFingerprint("pipeline", []);
      const cursor = decodePageToken(r?.pageToken ?? "", fingerprint, 1, v);
      done(v);
      const res = await tx(ctx, (sql) => listPipelines(sql, pageSizeOf(r?.pageSize ?? 0), cursor && { created: cursor.keys[0] ?? "", id: cursor.keys[1]! }));
      return {
        response: {
          pipelines: res.page.map((p) => toPipeline(p.pipeline, p.stages)),
          nextPageToken: res.more && res.last ? encodePageToken(fingerprint, { keys: [res.last.cursor, res.last.id] }) : "",
        },
      };
    },
    async updatePipelineDB({ request: r }, ctx) {
      const p = need(r?.pipeline, "pipeline");
      const id = idOf(p.id, "pipeline.id");
      const etag = etagArg(p.etag, "pipeline.etag");
      const v: Violation[] = [];
      parseMask("pipeline", r?.updateMask?.paths ?? [], v);
      const name = checkPipelineName(p.name, v);
      done(v);
      const res = await tx(ctx, (sql, a) => renamePipeline(sql, a, id, name, etag));
      return { response: { pipeline: toPipeline(res.pipeline, res.stages) } };
    },
    async deletePipelineDB({ request: r }, ctx) {
      const id = idOf(r?.id ?? "");
      const etag = etagArg(r?.etag ?? "");
      await tx(ctx, (sql, a) => deletePipeline(sql, a, id, etag));
      return { response: {} };
    },
    async createStageDB({ request: r }, ctx) {
      const pipelineId = idOf(r?.pipelineId ?? "", "pipelineId");
      const s = need(r?.stage, "stage");
      const etag = etagArg(r?.etag ?? "");
      const v: Violation[] = [];
      const input = checkStage(s, ["name", "probability", "kind"], v) as Required<StageInput>;
      if (r?.index !== undefined && r.index < 0) v.push({ field: "index", description: "must be 0 or more (unset: at the end)" });
      done(v);
      const res = await tx(ctx, (sql, a) => createStage(sql, a, pipelineId, input, r?.index, etag));
      return { response: { stage: toStage(res.stage), pipeline: toPipeline(res.pipeline, res.stages) } };
    },
    async updateStageDB({ request: r }, ctx) {
      const s = need(r?.stage, "stage");
      const id = idOf(s.id, "stage.id");
      const etag = etagArg(r?.etag ?? "");
      const v: Violation[] = [];
      const paths = parseMask("stage", r?.updateMask?.paths ?? [], v);
      const input = checkStage(s, paths, v);
      done(v);
      const res = await tx(ctx, (sql, a) => updateStage(sql, a, id, input, etag));
      return { response: { stage: toStage(res.stage), pipeline: toPipeline(res.pipeline, res.stages) } };
    },
    async deleteStageDB({ request: r }, ctx) {
      const id = idOf(r?.id ?? "");
      const moveTo = r?.moveDealsToStageId ? idOf(r.moveDealsToStageId, "moveDealsToStageId") : "";
      const etag = etagArg(r?.etag ?? "");
      const res = await tx(ctx, (sql, a) => deleteStage(sql, a, id, moveTo, etag));
      return { response: { pipeline: toPipeline(res.pipeline, res.stages), movedDeals: res.moved } };
    },
    async reorderStagesDB({ request: r }, ctx) {
      const pipelineId = idOf(r?.pipelineId ?? "", "pipelineId");
      const etag = etagArg(r?.etag ?? "");
      const order = (r?.stageIds ?? []).map((s, i) => idOf(s, `stageIds[${i}]`));
      if (new Set(order).size !== order.length) throw invalid([{ field: "stageIds", description: "names a stage twice" }]);
      const res = await tx(ctx, (sql, a) => reorderStages(sql, a, pipelineId, order, etag));
      return { response: { pipeline: toPipeline(res.pipeline, res.stages) } };
    },

    // Deals
    async createDealDB({ request: r }, ctx) {
      const d = need(r?.deal, "deal");
      return { response: deal(await once(ctx, "deal", r?.requestId, (sql, a) => createDeal(sql, a, d), getDeal)) };
    },
    async getDealDB({ request: r }, ctx) {
      const id = idOf(r?.id ?? "");
      return { response: deal(await tx(ctx, (sql) => getDeal(sql, id))) };
    },
    async listDealsDB({ request: r }, ctx) {
      const req = need(r, "request");
      const res = await tx(ctx, (sql) => runList<DealRow & Record<string, unknown>>(sql, dealList, req));
      return { response: { deals: res.rows.map(toDeal), nextPageToken: res.nextPageToken, totalSize: res.totalSize, totalIsExact: res.totalIsExact } };
    },
    async updateDealDB({ request: r }, ctx) {
      const d = need(r?.deal, "deal");
      const id = idOf(d.id, "deal.id");
      const etag = etagArg(d.etag, "deal.etag");
      const v: Violation[] = [];
      const paths = parseMask("deal", r?.updateMask?.paths ?? [], v);
      done(v);
      return { response: deal(await tx(ctx, (sql, a) => updateDeal(sql, a, id, d, paths, etag))) };
    },
    async moveDealDB({ request: r }, ctx) {
      const req = need(r, "request");
      return { response: deal(await tx(ctx, (sql, a) => moveDeal(sql, a, req))) };
    },
    async deleteDealDB({ request: r }, ctx) {
      const id = idOf(r?.id ?? "");
      const etag = etagArg(r?.etag ?? "");
      return { response: deal(await tx(ctx, (sql, a) => trashDeal(sql, a, id, true, etag))) };
    },
    async undeleteDealDB({ request: r }, ctx) {
      const id = idOf(r?.id ?? "");
      return { response: deal(await tx(ctx, (sql, a) => trashDeal(sql, a, id, false))) };
    },
    async purgeDealDB({ request: r }, ctx) {
      const id = idOf(r?.id ?? "");
      await tx(ctx, (sql, a) => purge(sql, a, "deal", id));
      return { response: {} };
    },

    // Timeline
    async listTimelineDB({ request: r }, ctx) {
      const kind = objectKinds[r?.objectType ?? 0];
      const v: Violation[] = [];
      if (!kind) v.push({ field: "objectType", description: "must be OBJECT_TYPE_COMPANY, _PERSON, _DEAL, _TASK or _NOTE" });
      const bad = pageSizeViolation(r?.pageSize ?? 0);
      if (bad) v.push(bad);
      done(v);
      const id = idOf(r?.recordId ?? "", "recordId");
      return { response: await tx(ctx, (sql) => listTimeline(sql, kind!, id, r?.pageSize ?? 0, r?.pageToken ?? "")) };
    },
  };
}


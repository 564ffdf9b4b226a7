/**
 * The records service's handlers in memory (createRouterTransport), with a fake store in place of
 * dbservice: bad requests are refused with every bad field named and never reach the store; good
 * ones reach it unchanged, and the store's answer and errors come back as they are.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Code, createClient, createRouterTransport, type ConnectRouter, type ServiceImpl } from "@connectrpc/connect";
import { DbRecordsService } from "@crm/gen/crm/db/v1/db_records_pb";
import { ObjectType, Operator } from "@crm/gen/crm/records/v1/common_pb";
import { CompanyService } from "@crm/gen/crm/records/v1/company_pb";
import { DealService } from "@crm/gen/crm/records/v1/deal_pb";
import { PersonService } from "@crm/gen/crm/records/v1/person_pb";
import { PipelineService, type StageKind } from "@crm/gen/crm/records/v1/pipeline_pb";
import { TimelineService } from "@crm/gen/crm/records/v1/timeline_pb";
import { AppError, errorInterceptor } from "@crm/kit";
import { expectCode, fieldsOf, inMemory, log } from "../test/harness.js";
import { recordsServices } from "./records-service.js";

const ID = "0b4e7c1a-6a4b-4bb4-9d0f-6f1b2a3c4d5e";
const token = `${ID}.${ID}.member`;

function setup(store: Partial<ServiceImpl<typeof DbRecordsService>>) {
  const calls: string[] = [];
  const spy = new Proxy(store, {
    get(target, name: string) {
      const fn = target[name as keyof typeof target] as ((...a: unknown[]) => unknown) | undefined;
      return fn && ((...args: unknown[]) => (calls.push(name), fn(...args)));
    },
  });
  // As dbservice serves it: its errors leave through the error interceptor.
  const db = createClient(DbRecordsService, createRouterTransport((r) => void r.service(DbRecordsService, spy), { router: { interceptors: [errorInterceptor(log)] } }));
  const s = recordsServices({ db });
  const routes = (r: ConnectRouter) => {
    r.service(CompanyService, s.companies);
    r.service(PersonService, s.people);
    r.service(PipelineService, s.pipelines);
    r.service(DealService, s.deals);
    r.service(TimelineService, s.timeline);
  };
  const mem = inMemory(routes);
  return {
    calls,
    anonymous: mem.client(CompanyService, ""),
    companies: mem.client(CompanyService, token),
    people: mem.client(PersonService, token),
    pipelines: mem.client(PipelineService, token),
    deals: mem.client(DealService, token),
    timeline: mem.client(TimelineService, token),
  };
}

test("CreateCompany: every bad field named at once, nothing sent to the store", async () => {
  const t = setup({});
  const e = await expectCode(
    t.companies.createCompany({ company: { name: " ", domain: "not a domain", size: -1, ownerId: "me", tags: ["x".repeat(51)], address: "a".repeat(501) } }),
    Code.InvalidArgument,
  );
  assert.deepEqual(fieldsOf(e).sort(), ["company.address", "company.domain", "company.name", "company.ownerId", "company.size", "company.tags[0]"]);
  await expectCode(t.companies.createCompany({}), Code.InvalidArgument, /company: is required/);
  assert.deepEqual(t.calls, []);
});

test("a good request reaches the store unchanged; its answer comes back", async () => {
  let seen: unknown;
  const t = setup({
    async createCompanyDB(req) {
      seen = req.request?.company?.domain;
      return { response: { company: { id: ID, name: "Acme", domain: "acme.example", etag: "1" } } };
    },
  });
  const res = await t.companies.createCompany({ company: { name: "Acme", domain: "https://ACME.example/" } });
  assert.equal(res.company?.domain, "acme.example");
  assert.equal(seen, "https://ACME.example/", "the store normalises, with the same rules");
  assert.deepEqual(t.calls, ["createCompanyDB"]);
});

test("the store's errors reach the caller as they are (aborted for a stale etag)", async () => {
  const t = setup({
    async updateDealDB() {
      throw new AppError("aborted", "deal changed since you read it");
    },
  });
  await expectCode(t.deals.updateDeal({ deal: { id: ID, name: "x", etag: "3" }, updateMask: { paths: ["name"] } }), Code.Aborted, /changed since/);
});

test("updates: a mask is required and names only updatable fields; stage and position change by MoveDeal", async () => {
  const t = setup({});
  let e = await expectCode(t.deals.updateDeal({ deal: { id: ID, name: "x" } }), Code.InvalidArgument, /updateMask: is required/);
  e = await expectCode(t.deals.updateDeal({ deal: { id: "nope", etag: "W/x" }, updateMask: { paths: ["stage_id", "name"] } }), Code.InvalidArgument, /MoveDeal/);
  assert.deepEqual(fieldsOf(e).sort(), ["deal.etag", "deal.id", "deal.name", "updateMask.paths[0]"]);
  e = await expectCode(t.people.updatePerson({ person: { id: ID, emails: ["a@example.com", "A@EXAMPLE.COM"], phones: ["555"] }, updateMask: { paths: ["emails", "phones"] } }), Code.InvalidArgument);
  assert.deepEqual(fieldsOf(e), ["person.emails[1]", "person.phones[0]"]);
  assert.deepEqual(t.calls, []);
});

test("MoveDeal, lists, pipelines and the timeline check their requests", async () => {
  const t = setup({});
  let e = await expectCode(t.deals.moveDeal({ id: ID, afterDealId: ID, beforeDealId: "x", etag: "0" }), Code.InvalidArgument);
  assert.deepEqual(fieldsOf(e).sort(), ["afterDealId", "beforeDealId", "etag"]);
  e = await expectCode(t.deals.listDeals({ pageSize: 501, orderBy: "nope", filter: { node: { case: "condition", value: { field: "amount_minor", operator: Operator.CONTAINS, values: ["1"] } } } }), Code.InvalidArgument);
  assert.deepEqual(fieldsOf(e).sort(), ["filter.condition.operator", "orderBy", "pageSize"]);
  e = await expectCode(t.pipelines.createPipeline({ pipeline: { name: "P", stages: [{ name: "A", probability: 101 }, { name: "a", kind: 9 as StageKind }] } }), Code.InvalidArgument);
  assert.deepEqual(fieldsOf(e).sort(), ["pipeline.stages[0].probability", "pipeline.stages[1].kind", "pipeline.stages[1].name"]);
  e = await expectCode(t.timeline.listTimeline({ objectType: ObjectType.UNSPECIFIED, recordId: "" }), Code.InvalidArgument);
  assert.deepEqual(fieldsOf(e).sort(), ["objectType", "recordId"]);
  await expectCode(t.deals.createDeal({ deal: { name: "no stage" } }), Code.InvalidArgument, /deal.stageId: is required/);
  assert.deepEqual(t.calls, []);
});

test("without a token nothing is served; text with control characters is refused before the handler", async () => {
  const t = setup({});
  await expectCode(t.anonymous.getCompany({ id: ID }), Code.Unauthenticated);
  const e = await expectCode(t.companies.createCompany({ company: { name: "bad\u0000name" } }), Code.InvalidArgument, /control character/);
  assert.deepEqual(fieldsOf(e), ["company.name"]);
  assert.deepEqual(t.calls, []);
});

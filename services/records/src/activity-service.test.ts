/**
 * FieldService, TaskService and NoteService's handlers, and the custom values of records, in
 * memory over a fake store: bad requests are refused with every bad field named and never reach
 * the store; a write or list refused for its standard fields has its custom values checked too
 * (the definitions are read for that only), so every bad field is named at once; good requests
 * reach the store unchanged.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Code, createClient, createRouterTransport, type ConnectRouter, type ServiceImpl } from "@connectrpc/connect";
import { DbRecordsService } from "@crm/gen/crm/db/v1/db_records_pb";
import { ObjectType, Operator } from "@crm/gen/crm/records/v1/common_pb";
import { DealService } from "@crm/gen/crm/records/v1/deal_pb";
import { FieldService, FieldType } from "@crm/gen/crm/records/v1/field_pb";
import { NoteService } from "@crm/gen/crm/records/v1/note_pb";
import { TaskService } from "@crm/gen/crm/records/v1/task_pb";
import { TimelineService } from "@crm/gen/crm/records/v1/timeline_pb";
import { errorInterceptor } from "@crm/kit";
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
  const db = createClient(DbRecordsService, createRouterTransport((r) => void r.service(DbRecordsService, spy), { router: { interceptors: [errorInterceptor(log)] } }));
  const s = recordsServices({ db });
  const routes = (r: ConnectRouter) => {
    r.service(DealService, s.deals);
    r.service(TimelineService, s.timeline);
    r.service(FieldService, s.fields);
    r.service(TaskService, s.tasks);
    r.service(NoteService, s.notes);
  };
  const mem = inMemory(routes);
  return { calls, deals: mem.client(DealService, token), timeline: mem.client(TimelineService, token), fields: mem.client(FieldService, token), tasks: mem.client(TaskService, token), notes: mem.client(NoteService, token) };
}

/** A store that knows two deal fields: tier (select) and score (number, required). */
const definitions: Partial<ServiceImpl<typeof DbRecordsService>> = {
  async listFieldsDB() {
    return {
      response: {
        fields: [
          { objectType: ObjectType.DEAL, key: "tier", label: "Tier", type: FieldType.SELECT, options: [{ value: "Gold" }] },
          { objectType: ObjectType.DEAL, key: "score", label: "Score", type: FieldType.NUMBER, required: true },
        ],
      },
    };
  },
};

test("FieldService, TaskService, NoteService: every bad field named, nothing sent to the store", async () => {
  const t = setup({});
  let e = await expectCode(t.fields.createField({ field: { objectType: ObjectType.TASK, key: "9x", label: "", type: FieldType.MONEY, options: [{ value: "a" }] } }), Code.InvalidArgument);
  assert.deepEqual(fieldsOf(e).sort(), ["field.currencyCode", "field.key", "field.label", "field.objectType", "field.options"]);
  e = await expectCode(t.fields.updateField({ field: { id: "x" }, updateMask: { paths: ["key", "label"] } }), Code.InvalidArgument);
  assert.deepEqual(fieldsOf(e).sort(), ["field.id", "field.label", "updateMask.paths[0]"]);
  e = await expectCode(t.tasks.createTask({ task: { title: "", assigneeId: "nobody", links: [{ objectType: ObjectType.NOTE, id: ID }, { objectType: ObjectType.DEAL, id: "x" }] } }), Code.InvalidArgument);
  assert.deepEqual(fieldsOf(e).sort(), ["task.assigneeId", "task.links[0].objectType", "task.links[1].id", "task.title"]);
  e = await expectCode(t.notes.updateNote({ note: { id: ID, text: " " }, updateMask: { paths: ["text", "author_id"] } }), Code.InvalidArgument);
  assert.deepEqual(fieldsOf(e).sort(), ["note.text", "updateMask.paths[1]"]);
  e = await expectCode(t.tasks.listTasks({ filter: { node: { case: "condition", value: { field: "done", operator: Operator.EQUALS, values: ["maybe"] } } }, orderBy: "record_ids" }), Code.InvalidArgument);
  assert.deepEqual(fieldsOf(e).sort(), ["filter.condition.values[0]", "orderBy"]);
  assert.deepEqual(t.calls, []);
});

test("a write refused for its standard fields names its bad custom values too (the definitions read for that alone)", async () => {
  const t = setup(definitions);
  const e = await expectCode(t.deals.createDeal({ deal: { name: "", stageId: ID, custom: { tier: "Bronze", nope: 1 } } }), Code.InvalidArgument);
  assert.deepEqual(fieldsOf(e).sort(), ["deal.custom.nope", "deal.custom.score", "deal.custom.tier", "deal.name"]);
  const l = await expectCode(t.deals.listDeals({ orderBy: "nope", filter: { node: { case: "condition", value: { field: "custom.tier", operator: Operator.EQUALS, values: ["bronze"] } } } }), Code.InvalidArgument);
  assert.deepEqual(fieldsOf(l).sort(), ["filter.condition.values[0]", "orderBy"]);
  assert.deepEqual(t.calls, ["listFieldsDB", "listFieldsDB"]);
});

test("good requests reach the store unchanged, custom values included (the store checks them against the definitions)", async () => {
  let seen: unknown;
  const t = setup({
    ...definitions,
    async createDealDB(req) {
      seen = req.request?.deal?.custom;
      return { response: { deal: { id: ID, name: "x" } } };
    },
    async listTimelineDB() {
      return { response: { entries: [] } };
    },
  });
  await t.deals.createDeal({ deal: { name: "x", stageId: ID, custom: { tier: "gold", score: "7" } } });
  assert.deepEqual(seen, { tier: "gold", score: "7" });
  await t.timeline.listTimeline({ objectType: ObjectType.TASK, recordId: ID });
  assert.deepEqual(t.calls, ["createDealDB", "listTimelineDB"]);
});

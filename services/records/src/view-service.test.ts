/**
 * ViewService's handlers in memory, with a fake store: bad requests are refused with every bad
 * field named (the filter and order as List takes them, columns as fields of the object type) and
 * never reach the store; good ones reach it unchanged.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Code, createClient, createRouterTransport, type ServiceImpl } from "@connectrpc/connect";
import { DbRecordsService } from "@crm/gen/crm/db/v1/db_records_pb";
import { ObjectType, Operator, type Filter } from "@crm/gen/crm/records/v1/common_pb";
import { ViewService } from "@crm/gen/crm/records/v1/view_pb";
import { errorInterceptor, invalid } from "@crm/kit";
import { expectCode, fieldsOf, inMemory, log } from "../test/harness.js";
import { viewService } from "./view-service.js";

const ID = "0b4e7c1a-6a4b-4bb4-9d0f-6f1b2a3c4d5e";

function setup() {
  const calls: string[] = [];
  const store: Partial<ServiceImpl<typeof DbRecordsService>> = {
    async createViewDB({ request }) {
      calls.push("create");
      // The store knows the custom fields: it refuses a column naming none of the type's active ones.
      const i = request!.view!.columns.indexOf("custom.gone");
      if (i >= 0) throw invalid([{ field: `view.columns[${i}]`, description: "custom.gone is not a custom field of people (or it is archived): see FieldService.ListFields" }]);
      return { response: { view: { name: request!.view!.name, id: ID, etag: "1" } } };
    },
    async updateViewDB({ request }) {
      calls.push(`update ${request!.updateMask!.paths.join(",")}`);
      return { response: { view: request!.view } };
    },
    async listViewsDB() {
      calls.push("list");
      return { response: {} };
    },
    async deleteViewDB() {
      calls.push("delete");
      return { response: {} };
    },
  };
  const db = createClient(DbRecordsService, createRouterTransport((r) => void r.service(DbRecordsService, store), { router: { interceptors: [errorInterceptor(log)] } }));
  return { calls, views: inMemory((r) => void r.service(ViewService, viewService(db))).client(ViewService, `${ID}.${ID}.member`) };
}

const cond = (field: string, operator: Operator, values: string[]): Filter => ({ node: { case: "condition", value: { field, operator, values } } }) as Filter;

test("CreateView: name, object type, filter, order and columns checked at once; nothing sent", async () => {
  const t = setup();
  const e = await expectCode(
    t.views.createView({ view: { name: " ", objectType: ObjectType.DEAL, filter: cond("amount_minor", Operator.CONTAINS, ["x"]), orderBy: "nope desc", columns: ["name", "nope", "name"] } }),
    Code.InvalidArgument,
  );
  assert.deepEqual(fieldsOf(e).sort(), ["view.columns[1]", "view.columns[2]", "view.filter.condition.operator", "view.name", "view.orderBy"]);
  await expectCode(t.views.createView({ view: { name: "x", objectType: ObjectType.TASK } }), Code.InvalidArgument, /view.objectType/);
  await expectCode(t.views.createView({ view: { name: "Trash", objectType: ObjectType.COMPANY, filter: cond("delete_time", Operator.IS_NOT_EMPTY, []) } }), Code.InvalidArgument, /showDeleted/);
  await expectCode(t.views.createView({}), Code.InvalidArgument, /view: is required/);
  assert.deepEqual(t.calls, []);
  const ok = await t.views.createView({ view: { name: "Open deals", objectType: ObjectType.DEAL, filter: cond("status", Operator.EQUALS, ["open"]), orderBy: "amount_minor desc", columns: ["name", "custom.tier"] } });
  assert.equal(ok.view?.id, ID);
  assert.deepEqual(t.calls, ["create"]);
});

test("UpdateView, ListViews, DeleteView check their requests", async () => {
  const t = setup();
  const e = await expectCode(t.views.updateView({ view: { id: "nope", etag: "x", name: "" }, updateMask: { paths: ["name", "owner_id"] } }), Code.InvalidArgument);
  assert.deepEqual(fieldsOf(e).sort(), ["updateMask.paths[1]", "view.etag", "view.id", "view.name"]);
  await expectCode(t.views.updateView({ view: { id: ID } }), Code.InvalidArgument, /updateMask/);
  await expectCode(t.views.listViews({ objectType: ObjectType.NOTE, pageSize: 501, pageToken: "!" }), Code.InvalidArgument);
  await expectCode(t.views.deleteView({ id: "", etag: "x" }), Code.InvalidArgument);
  assert.deepEqual(t.calls, []);
  await t.views.updateView({ view: { id: ID, shared: true }, updateMask: { paths: ["shared"] } });
  await t.views.listViews({ objectType: ObjectType.PERSON });
  await t.views.deleteView({ id: ID, etag: "3" });
  assert.deepEqual(t.calls, ["update shared", "list", "delete"]);
});

test("CreateView: columns are the type's fields or well-formed custom.<key>; the store's refusal of an unknown custom one reaches the caller by its field", async () => {
  const t = setup();
  const e = await expectCode(
    t.views.createView({ view: { name: "People", objectType: ObjectType.PERSON, columns: ["first_name", "stage_id", "custom.Region", "custom.", "custom.region"] } }),
    Code.InvalidArgument,
  );
  assert.deepEqual(fieldsOf(e), ["view.columns[1]", "view.columns[2]", "view.columns[3]"]);
  assert.match(e.message, /must be a field of person \(.*first_name.*\) or custom\.<key> \(got "stage_id"\)/);
  assert.deepEqual(t.calls, [], "nothing sent");
  const gone = await expectCode(t.views.createView({ view: { name: "People", objectType: ObjectType.PERSON, columns: ["first_name", "custom.gone"] } }), Code.InvalidArgument, /custom\.gone is not a custom field of people/);
  assert.deepEqual(fieldsOf(gone), ["view.columns[1]"]);
  assert.deepEqual(t.calls, ["create"]);
});

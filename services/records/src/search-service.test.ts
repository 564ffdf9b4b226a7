/**
 * SearchService's handler in memory, with a fake store: bad requests are refused with every bad
 * field named and never reach the store; good ones reach it unchanged and its answer comes back.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Code, createClient, createRouterTransport, type ServiceImpl } from "@connectrpc/connect";
import { DbRecordsService } from "@crm/gen/crm/db/v1/db_records_pb";
import { ObjectType } from "@crm/gen/crm/records/v1/common_pb";
import { SearchService } from "@crm/gen/crm/records/v1/search_pb";
import { errorInterceptor } from "@crm/kit";
import { expectCode, fieldsOf, inMemory, log } from "../test/harness.js";
import { checkSearch } from "./rules.js";
import { searchService } from "./search-service.js";

const ID = "0b4e7c1a-6a4b-4bb4-9d0f-6f1b2a3c4d5e";

function setup(store: Partial<ServiceImpl<typeof DbRecordsService>>) {
  const calls: unknown[] = [];
  const spy: Partial<ServiceImpl<typeof DbRecordsService>> = {
    async searchDB(req, ctx) {
      calls.push(req.request);
      return store.searchDB!(req, ctx);
    },
  };
  const db = createClient(DbRecordsService, createRouterTransport((r) => void r.service(DbRecordsService, spy), { router: { interceptors: [errorInterceptor(log)] } }));
  return { calls, search: inMemory((r) => void r.service(SearchService, searchService(db))).client(SearchService, `${ID}.${ID}.member`) };
}

test("Search: every bad field named, nothing sent to the store", async () => {
  const t = setup({});
  const e = await expectCode(t.search.search({ query: "  -  ", objectTypes: [ObjectType.NOTE, 99 as ObjectType], pageSize: 51 }), Code.InvalidArgument);
  assert.deepEqual(fieldsOf(e).sort(), ["objectTypes[0]", "objectTypes[1]", "pageSize", "query"]);
  await expectCode(t.search.search({ query: "x".repeat(201) }), Code.InvalidArgument, /at most 200/);
  assert.deepEqual(t.calls, []);
});

test("Search: a good request reaches the store unchanged, its answer comes back", async () => {
  const t = setup({ searchDB: async () => ({ response: { results: [{ objectType: ObjectType.COMPANY, recordId: ID, title: "Globex", score: 2.5 }] } }) });
  const res = await t.search.search({ query: "glob", objectTypes: [ObjectType.COMPANY] });
  assert.equal(res.results[0]?.title, "Globex");
  assert.equal((t.calls[0] as { query: string }).query, "glob");
});

test("the query's forms: words, types, page size, phone digits", () => {
  const v: never[] = [];
  assert.deepEqual(checkSearch({ query: "  Ann   Lee ", objectTypes: [], pageSize: 0 }, v), { query: "Ann Lee", kinds: ["company", "person", "deal"], pageSize: 20, digits: "" });
  assert.equal(checkSearch({ query: "+1 (415) 555-0100", objectTypes: [], pageSize: 5 }, v).digits, "14155550100");
  assert.equal(checkSearch({ query: "020 7946 0958", objectTypes: [], pageSize: 5 }, v).digits, "2079460958", "a national trunk prefix dropped");
  assert.equal(checkSearch({ query: "555", objectTypes: [], pageSize: 5 }, v).digits, "", "too few digits for a number");
  assert.equal(checkSearch({ query: "Suite 555", objectTypes: [], pageSize: 5 }, v).digits, "", "words are not a number");
  assert.deepEqual(checkSearch({ query: "ёж", objectTypes: [ObjectType.DEAL, ObjectType.DEAL], pageSize: 50 }, v).kinds, ["deal"]);
  assert.deepEqual(v, []);
});

import assert from "node:assert/strict";
import { test } from "node:test";
import { create } from "@bufbuild/protobuf";
import { ColumnMappingSchema } from "@crm/gen/crm/records/v1/import_pb";
import { buildMapping } from "./mapping.js";

const columns = ["E-mail", "First", "Last", "Tier"];
const suggested = [create(ColumnMappingSchema, { column: 0, field: "emails" }), create(ColumnMappingSchema, { column: 1, field: "first_name" })];
const pairs = (m: ReturnType<typeof buildMapping>) => m.map((c) => [c.column, c.field]);

test("--map changes the suggestion by header (ignoring case) or #N; COLUMN= leaves one out", () => {
  assert.deepEqual(pairs(buildMapping(columns, suggested, [], true)), [[0, "emails"], [1, "first_name"]]);
  assert.deepEqual(pairs(buildMapping(columns, suggested, ["last=last_name", "#4=custom.tier", "first="], true)), [[0, "emails"], [2, "last_name"], [3, "custom.tier"]]);
  assert.deepEqual(pairs(buildMapping(columns, suggested, ["e-mail=emails"], false)), [[0, "emails"]], "--no-suggest: only what --map says");
});

test("unknown columns and bad fields are usage errors naming the file's columns", () => {
  assert.throws(() => buildMapping(columns, suggested, ["Phone=phones"], true), /no column "Phone" \(its columns: #1 "E-mail", #2 "First"/);
  assert.throws(() => buildMapping(columns, suggested, ["#9=phones"], true), /no column "#9"/);
  assert.throws(() => buildMapping(columns, suggested, ["emails"], true), /use COLUMN=FIELD/);
  assert.throws(() => buildMapping(columns, suggested, ["Tier=Custom Tier"], true), /not a field name/);
});

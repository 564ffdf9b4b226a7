import assert from "node:assert/strict";
import { test } from "node:test";
import { toJson } from "@bufbuild/protobuf";
import { FilterSchema, Operator } from "@crm/gen/crm/records/v1/common_pb";
import { CliError, Exit } from "./errors.js";
import { parseCondition, parseFilters } from "./filter.js";

const cond = (text: string) => {
  const f = parseCondition(text);
  assert.equal(f.node.case, "condition");
  const c = f.node.value as { field: string; operator: Operator; values: string[] };
  return [c.field, Operator[c.operator], c.values];
};

test("symbol operators: the leftmost wins, the longer of two at one place", () => {
  assert.deepEqual(cond("name~acme"), ["name", "CONTAINS", ["acme"]]);
  assert.deepEqual(cond("name^=Ac"), ["name", "STARTS_WITH", ["Ac"]]);
  assert.deepEqual(cond("status=won"), ["status", "EQUALS", ["won"]]);
  assert.deepEqual(cond("stage_id != abc"), ["stage_id", "NOT_EQUALS", ["abc"]]);
  assert.deepEqual(cond("amount_minor>=100000"), ["amount_minor", "GREATER_OR_EQUAL", ["100000"]]);
  assert.deepEqual(cond("amount_minor>5"), ["amount_minor", "GREATER_THAN", ["5"]]);
  assert.deepEqual(cond("size<=10"), ["size", "LESS_OR_EQUAL", ["10"]]);
  assert.deepEqual(cond("size<10"), ["size", "LESS_THAN", ["10"]]);
  assert.deepEqual(cond("custom.tier=gold"), ["custom.tier", "EQUALS", ["gold"]]);
  assert.deepEqual(cond("name=a=b"), ["name", "EQUALS", ["a=b"]], "later operators are part of the value");
  assert.deepEqual(cond('name="Acme, Inc."'), ["name", "EQUALS", ["Acme, Inc."]], "quotes are taken off");
  assert.deepEqual(cond("name~Made in Italy"), ["name", "CONTAINS", ["Made in Italy"]], "a word operator inside a value is the value's");
});

test("word operators: in, between, empty, notempty", () => {
  assert.deepEqual(cond("tags in vip, partner"), ["tags", "IN", ["vip", "partner"]]);
  assert.deepEqual(cond("expected_close_date between 2026-01-01,2026-03-31"), ["expected_close_date", "BETWEEN", ["2026-01-01", "2026-03-31"]]);
  assert.deepEqual(cond("amount_minor BETWEEN 1..5"), ["amount_minor", "BETWEEN", ["1", "5"]]);
  assert.deepEqual(cond("domain empty"), ["domain", "IS_EMPTY", []]);
  assert.deepEqual(cond("domain notempty"), ["domain", "IS_NOT_EMPTY", []]);
});

test("bad conditions are usage errors (exit 2) that show the form", () => {
  for (const bad of ["acme", "name=", "tags in", "x between 1", "domain empty yes", "1name=x", "na me=x"]) {
    assert.throws(() => parseCondition(bad), (e: unknown) => e instanceof CliError && e.exitCode === Exit.usage, bad);
  }
  assert.throws(() => parseCondition("acme"), /e\.g\. "name~acme"/);
});

test("several --filter all hold; ' | ' inside one means either", () => {
  assert.equal(parseFilters([]), undefined);
  const f = parseFilters(["status=won", "name~acme | domain~acme"]);
  assert.deepEqual(toJson(FilterSchema, f!), {
    and: {
      filters: [
        { condition: { field: "status", operator: "OPERATOR_EQUALS", values: ["won"] } },
        { or: { filters: [{ condition: { field: "name", operator: "OPERATOR_CONTAINS", values: ["acme"] } }, { condition: { field: "domain", operator: "OPERATOR_CONTAINS", values: ["acme"] } }] } },
      ],
    },
  });
  assert.deepEqual(cond("name=a|b"), ["name", "EQUALS", ["a|b"]], "a | without spaces is part of the value");
});

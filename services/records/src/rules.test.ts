import assert from "node:assert/strict";
import { test } from "node:test";
import { Operator, type Filter } from "@crm/gen/crm/records/v1/common_pb";
import type { Violation } from "@crm/kit";
import {
  decodePageToken, diff, encodePageToken, normalizeCurrency, normalizeDate, normalizeDomain, normalizeEmail, normalizePhone, normalizeTags,
  parseEtag, parseFilter, parseMask, parseOrderBy, positionBetween, positionsAfter, queryFingerprint,
} from "./rules.js";

test("domains: scheme, www, path, port, case and the root dot go; IDN to xn--; not a domain → undefined", () => {
  assert.equal(normalizeDomain("https://www.Example.COM:8443/about?x#y"), "example.com");
  assert.equal(normalizeDomain("shop.example.co.uk."), "shop.example.co.uk");
  assert.equal(normalizeDomain("münchen.example"), "xn--mnchen-3ya.example");
  assert.equal(normalizeDomain(""), "");
  for (const bad of ["localhost", "10.0.0.1", "exa mple.com", "-bad.example", "a..b", "x".repeat(64) + ".com"]) assert.equal(normalizeDomain(bad), undefined, bad);
});

test("e-mails kept as written, phones to E.164, currencies ISO 4217, real dates, tags once each", () => {
  assert.equal(normalizeEmail("  Ann.Lee@Example.com "), "Ann.Lee@Example.com");
  assert.equal(normalizeEmail("nope"), undefined);
  assert.equal(normalizePhone("+1 (415) 555-0100"), "+14155550100");
  assert.equal(normalizePhone("0415 555 0100"), undefined);
  assert.equal(normalizeCurrency(" eur"), "EUR");
  assert.equal(normalizeCurrency("XYZ"), undefined);
  assert.equal(normalizeDate("2028-02-29"), "2028-02-29");
  assert.equal(normalizeDate("2026-02-29"), undefined);
  assert.deepEqual(normalizeTags([" VIP ", "vip", "b2b", "", "big  deal"]), ["VIP", "b2b", "big deal"]);
});

test("etags: versions as text; empty means no check; anything else is not ours", () => {
  assert.equal(parseEtag("7"), 7n);
  assert.equal(parseEtag('W/"7"'), 7n);
  assert.equal(parseEtag(""), undefined);
  assert.equal(parseEtag("0"), "bad");
  assert.equal(parseEtag("abc"), "bad");
});

const cond = (field: string, operator: Operator, ...values: string[]) => ({ node: { case: "condition", value: { field, operator, values } } }) as Filter;

test("filters: typed values, operators per type, violations by JSON path", () => {
  const v: Violation[] = [];
  const node = parseFilter("deal", { node: { case: "or", value: { filters: [cond("status", Operator.IN, "won", "DEAL_STATUS_LOST"), cond("amount_minor", Operator.BETWEEN, "100", "200")] } } } as Filter, false, v);
  assert.equal(v.length, 0);
  assert.deepEqual(node, {
    kind: "or",
    children: [
      { kind: "cond", field: "status", type: "enum", op: Operator.IN, values: ["won", "lost"] },
      { kind: "cond", field: "amount_minor", type: "int", op: Operator.BETWEEN, values: ["100", "200"] },
    ],
  });
  parseFilter("company", cond("size", Operator.GREATER_THAN, "many"), false, v);
  parseFilter("company", cond("name", Operator.IS_EMPTY, "x"), false, v);
  parseFilter("person", cond("company_ids", Operator.EQUALS, "x"), false, v);
  assert.deepEqual(v.map((x) => x.field), ["filter.condition.values[0]", "filter.condition.values", "filter.condition.values[0]"]);
});

test("order_by: up to three sortable fields; the default is newest first", () => {
  const v: Violation[] = [];
  assert.deepEqual(parseOrderBy("deal", "", v), [{ field: "create_time", type: "time", desc: true }]);
  assert.deepEqual(parseOrderBy("deal", "amount_minor DESC, name", v).map((k) => [k.field, k.desc]), [["amount_minor", true], ["name", false]]);
  parseOrderBy("deal", "person_ids", v);
  parseOrderBy("deal", "name, name", v);
  parseOrderBy("deal", "a, b, c, d", v);
  assert.equal(v.length, 3);
});

test("page tokens round-trip and belong to their query", () => {
  const q = queryFingerprint("deal", ["x"]);
  const token = encodePageToken(q, { keys: ["2026-01-01 00:00:00+00", null, "0b4e7c1a-6a4b-4bb4-9d0f-6f1b2a3c4d5e"] });
  const v: Violation[] = [];
  assert.deepEqual(decodePageToken(token, q, 2, v)?.keys, ["2026-01-01 00:00:00+00", null, "0b4e7c1a-6a4b-4bb4-9d0f-6f1b2a3c4d5e"]);
  decodePageToken(token, queryFingerprint("deal", ["y"]), 2, v);
  decodePageToken("!!", q, 2, v);
  assert.deepEqual(v.map((x) => x.description.slice(0, 20)), ["belongs to a list wi", "is not a token this "]);
});

test("positions: keys sort between their neighbours, byte-wise", () => {
  const first = positionBetween(null, null);
  const [a, b, c] = positionsAfter(first, 3) as [string, string, string];
  assert.ok(first < a && a < b && b < c);
  const mid = positionBetween(a, b);
  assert.ok(a < mid && mid < b);
  assert.ok(positionBetween(null, first) < first);
});

test("diffs: changed fields only, empty values as null; a created record lists what is set", () => {
  assert.deepEqual(diff({ name: "A", tags: [], size: null }, { name: "B", tags: [], size: 3 }), [
    { field: "name", before: "A", after: "B" },
    { field: "size", before: null, after: 3 },
  ]);
  assert.deepEqual(diff({}, { name: "A", domain: "", tags: ["x"] }), [
    { field: "name", before: null, after: "A" },
    { field: "tags", before: null, after: ["x"] },
  ]);
});

test("masks: required, '*' for all, unknown paths named", () => {
  const v: Violation[] = [];
  assert.deepEqual(parseMask("stage", ["*"], v), ["name", "probability", "kind"]);
  parseMask("company", [], v);
  parseMask("company", ["name", "id"], v);
  assert.deepEqual(v.map((x) => x.field), ["updateMask", "updateMask.paths[1]"]);
});

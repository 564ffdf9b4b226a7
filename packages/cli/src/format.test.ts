import assert from "node:assert/strict";
import { test } from "node:test";
import { cell, hoursMinutes, list, pairs, table } from "./format.js";

test("table: columns aligned two spaces apart, no trailing blanks, cells on one line", () => {
  assert.equal(table(["ID", "NAME", "X"], [["1", "Acme\nLtd", ""], ["22", "B", "y"]]), "ID  NAME      X\n1   Acme Ltd\n22  B         y\n");
  assert.equal(table(["A"], []), "A\n");
});

test("pairs: keys padded to the longest", () => {
  assert.equal(pairs([["server", "http://x"], ["id", "1"]]), "server  http://x\nid      1\n");
});

test("hoursMinutes: h:mm, seconds dropped", () => {
  assert.equal(hoursMinutes(undefined), "0:00");
  assert.equal(hoursMinutes({ seconds: 7n * 3600n + 5n * 60n + 59n, nanos: 0 } as never), "7:05");
  assert.equal(hoursMinutes({ seconds: 100n * 3600n, nanos: 0 } as never), "100:00");
});

test("cell: dotted paths, lists joined, objects as JSON, absent as empty", () => {
  const person = { id: "p1", emails: ["a@x.io", "b@x.io"], companies: [{ company_id: "c1", role: "CTO" }, { company_id: "c2" }], custom: { tier: "gold", score: 4, meta: { a: 1 } }, size: 0 };
  assert.equal(cell(person, "id"), "p1");
  assert.equal(cell(person, "emails"), "a@x.io; b@x.io");
  assert.equal(cell(person, "companies.company_id"), "c1; c2");
  assert.equal(cell(person, "custom.tier"), "gold");
  assert.equal(cell(person, "custom.score"), "4");
  assert.equal(cell(person, "custom.meta"), '{"a":1}');
  assert.equal(cell(person, "size"), "0");
  assert.equal(cell(person, "custom.missing"), "");
  assert.equal(cell(person, "nope.deeper"), "");
});

test("list: comma-separated names, blanks dropped", () => {
  assert.deepEqual(list(" id, name ,,custom.tier"), ["id", "name", "custom.tier"]);
});

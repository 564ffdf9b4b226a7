import assert from "node:assert/strict";
import { test } from "node:test";
import { cell, enumWord, hoursMinutes, list, money, pairs, table } from "./format.js";

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

test("enumWord: an enum value without its type's prefix, as a word", () => {
  assert.equal(enumWord("DEAL_STATUS_LOST", "deal_status_"), "lost");
  assert.equal(enumWord("IMPORT_STATE_DRY_RUN_DONE", "import_state_"), "dry run done");
  assert.equal(enumWord("OPEN"), "open", "no prefix");
  assert.equal(enumWord("OTHER_THING", "deal_status_"), "other thing", "another prefix is kept");
});

test("money: minor units in the currency's own decimals, with its code", () => {
  assert.equal(money("7610000", "USD"), "USD 76,100.00");
  assert.equal(money("150000", "JPY"), "JPY 150,000");
  assert.equal(money("5", "BHD"), "BHD 0.005");
  assert.equal(money("-99", "EUR"), "-EUR 0.99");
  assert.equal(money(undefined, "EUR"), "");
  assert.equal(money("100", ""), "");
  assert.equal(money("100", "XYZW"), "100 XYZW (minor units)", "a code Intl refuses");
  assert.equal(money("99999999999999999999", "EUR"), "99999999999999999999 EUR (minor units)", "beyond a double's exact integers");
});

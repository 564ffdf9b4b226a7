/**
 * The console's records helpers that need no browser (web/src/screens/records/format.ts): money
 * in minor units per currency and locale, typed amounts, calendar dates, the filter tree built
 * from a screen's filters, and the form field a server violation belongs to.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Operator } from "@crm/gen/crm/records/v1/common_pb";
import { allOf, anyContains, formatAmountInput, formatDate, formatMoney, minorDigits, minorToDecimal, parseAmount, splitList, violationField } from "../../web/src/screens/records/format.ts";

const nbsp = (s: string) => s.replace(/[\u00a0\u202f]/g, " ");

test("minor units per currency, exact for any int64", () => {
  assert.equal(minorDigits("EUR"), 2);
  assert.equal(minorDigits("JPY"), 0);
  assert.equal(minorDigits("KWD"), 3);
  assert.equal(minorToDecimal(1250050n, 2), "12500.50");
  assert.equal(minorToDecimal(5n, 2), "0.05");
  assert.equal(minorToDecimal(9223372036854775807n, 2), "92233720368547758.07");
  assert.equal(minorToDecimal(1500n, 0), "1500");
});

test("money per locale", () => {
  assert.equal(formatMoney(1250050n, "EUR", "en"), "€12,500.50");
  assert.equal(nbsp(formatMoney(1250050n, "EUR", "ru")), "12 500,50 €");
  assert.equal(formatMoney(1500n, "JPY", "en"), "¥1,500");
  assert.equal(nbsp(formatMoney(1250050n, "RUB", "ru")), "12 500,50 ₽");
  assert.equal(formatMoney(9223372036854775807n, "USD", "en"), "$92,233,720,368,547,758.07", "no float on the way");
});

test("an amount typed in the locale → minor units; too many decimals refused, never rounded", () => {
  assert.deepEqual(parseAmount("12,500.5", "EUR", "en"), { ok: true, minor: 1250050n });
  assert.deepEqual(parseAmount("12 500,5", "EUR", "ru"), { ok: true, minor: 1250050n });
  assert.deepEqual(parseAmount("12\u00a0500.50", "EUR", "ru"), { ok: true, minor: 1250050n }, "a point also works where the comma is the decimal sign");
  assert.deepEqual(parseAmount("1500", "JPY", "en"), { ok: true, minor: 1500n });
  assert.deepEqual(parseAmount("0.001", "KWD", "en"), { ok: true, minor: 1n });
  assert.deepEqual(parseAmount("1.005", "EUR", "en"), { ok: false, reason: "fraction" });
  assert.deepEqual(parseAmount("1.5", "JPY", "en"), { ok: false, reason: "fraction" });
  assert.deepEqual(parseAmount("12abc", "EUR", "en"), { ok: false, reason: "format" });
  assert.deepEqual(parseAmount("-5", "EUR", "en"), { ok: false, reason: "format" });
  assert.equal(formatAmountInput(1250050n, "EUR", "en"), "12,500.50");
  assert.equal(nbsp(formatAmountInput(1250050n, "EUR", "ru")), "12 500,50");
});

test("calendar dates are not shifted by the time zone", () => {
  assert.equal(formatDate("2026-09-30", "en"), "Sep 30, 2026");
  assert.equal(nbsp(formatDate("2026-01-01", "ru")), "1 янв. 2026 г.");
  assert.equal(formatDate("not a date", "en"), "not a date");
});

test("the filter tree from simple filters", () => {
  assert.equal(allOf(undefined, anyContains(["name"], "  ")), undefined, "no filter at all");
  const one = allOf(anyContains(["name"], " glo "));
  assert.equal(one?.node.case, "condition");
  assert.deepEqual(one?.node.case === "condition" && { field: one.node.value.field, op: one.node.value.operator, values: one.node.value.values }, { field: "name", op: Operator.CONTAINS, values: ["glo"] });
  const tree = allOf(anyContains(["first_name", "last_name"], "ann"), { field: "owner_id", op: Operator.EQUALS, values: ["u1"] }, { field: "delete_time", op: Operator.IS_NOT_EMPTY });
  assert.equal(tree?.node.case, "and");
  const kids = tree?.node.case === "and" ? tree.node.value.filters : [];
  assert.equal(kids.length, 3);
  assert.equal(kids[0]?.node.case, "or");
  assert.deepEqual(kids[0]?.node.case === "or" && kids[0].node.value.filters.map((f) => f.node.case === "condition" && f.node.value.field), ["first_name", "last_name"]);
  assert.equal(kids[2]?.node.case === "condition" && kids[2].node.value.values.length, 0);
});

test("lists typed with commas; server violations mapped to form fields", () => {
  assert.deepEqual(splitList(" a@x.example, b@y.example;\nc@z.example ,, "), ["a@x.example", "b@y.example", "c@z.example"]);
  assert.equal(violationField("person.emails[1]", "person"), "emails");
  assert.equal(violationField("deal.currencyCode", "deal"), "currencyCode");
  assert.equal(violationField("person.companies[0].companyId", "person"), "companies");
  assert.equal(violationField("updateMask", "deal"), "updateMask");
});

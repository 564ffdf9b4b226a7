import assert from "node:assert/strict";
import { test } from "node:test";
import { Role } from "@crm/gen/crm/auth/v1/auth_pb";
import { detectDelimiter, parseRole, parseUsersCsv } from "./users-csv.js";

test("header aliases, BOM, `;` delimiter, quoted newlines, blank lines, spreadsheet row numbers", () => {
  const text = '\uFEFFE-mail;Имя;Роль;Phone\r\nann@acme.test;"Ann\nSmith";admin;+14155550100\r\n\r\nbob@acme.test;Bob;;\r\n';
  const { rows, problems } = parseUsersCsv(text, Role.MEMBER, "users.csv");
  assert.deepEqual(problems, []);
  assert.deepEqual(rows, [
    { row: 2, email: "ann@acme.test", name: "Ann\nSmith", role: Role.ADMIN, phone: "+14155550100" },
    { row: 4, email: "bob@acme.test", name: "Bob", role: Role.MEMBER, phone: "" },
  ]);
});

test("a bad role is that row's problem; the others go on", () => {
  const { rows, problems } = parseUsersCsv("email,name,role\na@x.io,A,boss\nb@x.io,B,OWNER\n", Role.MEMBER, "f.csv");
  assert.deepEqual(problems, [{ row: 2, email: "a@x.io", reason: 'role: "boss" is not a role; use owner, admin or member' }]);
  assert.deepEqual(rows.map((r) => [r.row, r.role]), [[3, Role.OWNER]]);
});

test("a file without an email column, or empty, says so", () => {
  assert.throws(() => parseUsersCsv("name,role\nA,admin\n", Role.MEMBER, "f.csv"), /f\.csv has no email column \(its columns: "name", "role"\)/);
  assert.throws(() => parseUsersCsv("", Role.MEMBER, "f.csv"), /f\.csv is empty/);
});

test("delimiter: the header's most frequent of , ; tab", () => {
  assert.equal(detectDelimiter("a;b;c\n1,2;3"), ";");
  assert.equal(detectDelimiter("a\tb\n"), "\t");
  assert.equal(detectDelimiter("email"), ",");
  assert.equal(parseRole(" Admin "), Role.ADMIN);
  assert.equal(parseRole("ROLE_MEMBER"), Role.MEMBER);
  assert.equal(parseRole(""), Role.UNSPECIFIED);
  assert.equal(parseRole("boss"), undefined);
});

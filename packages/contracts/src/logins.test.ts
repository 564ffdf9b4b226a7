import assert from "node:assert/strict";
import { test } from "node:test";
import { normaliseEmail, normalisePhone } from "./logins.js";

test("email and phone normalisation", () => {
  assert.equal(normaliseEmail(" Olga@Acme.TEST "), "olga@acme.test");
  assert.equal(normaliseEmail("bad@"), undefined);
  assert.equal(normalisePhone("+1 (415) 555-2671"), "+14155552671");
  assert.equal(normalisePhone("+0123456789"), undefined);
  assert.equal(normalisePhone("8 916 123 45 67"), undefined, "national format is not E.164");
});

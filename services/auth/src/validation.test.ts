import assert from "node:assert/strict";
import { test } from "node:test";
import { AppError } from "@crm/kit";
import { validateLogin, validateRegister } from "./validation.js";
import { passwordProblem } from "./passwords.js";

const good = { companyName: " Acme ", address: "", email: " Owner@Example.COM ", phone: "+1 (415) 555-2671", password: "correct horse battery", ownerName: "Olga", locale: "" };

test("register input is normalised", () => {
  const r = validateRegister(good);
  assert.equal(r.companyName, "Acme");
  assert.equal(r.email, "owner@example.com");
  assert.equal(r.phone, "+14155552671");
  assert.equal(r.locale, "en");
});

test("every bad field is named in one invalid_argument", () => {
  try {
    validateRegister({ ...good, companyName: "", email: "nope", phone: "12345", password: "short", ownerName: " ", locale: "de" });
    assert.fail("should throw");
  } catch (err) {
    assert.ok(err instanceof AppError);
    assert.equal(err.reason, "invalid_argument");
    assert.deepEqual(err.violations.map((v) => v.field).sort(), ["companyName", "email", "locale", "ownerName", "password", "phone"]);
    assert.match(err.message, /phone: must be in E\.164 format/);
  }
});

test("passwords follow NIST 800-63B: length, common list, no composition rules", () => {
  assert.equal(passwordProblem("aaaaaaaa1"), undefined);
  assert.match(passwordProblem("1234567")!, /at least 8/);
  assert.match(passwordProblem("x".repeat(129))!, /at most 128/);
  assert.equal(passwordProblem("é".repeat(128)), undefined, "length counts characters, not bytes");
  assert.match(passwordProblem("password123")!, /common/);
  assert.match(passwordProblem("Qwertyuiop")!, /common/, "case-insensitive");
  assert.match(passwordProblem("me@example.com", { email: "me@example.com" })!, /e-mail/);
});

test("logins: exactly one of email or phone", () => {
  assert.deepEqual(validateLogin({ email: "A@b.co", phone: "" }), { email: "a@b.co" });
  assert.deepEqual(validateLogin({ email: "", phone: "+79161234567" }), { phone: "+79161234567" });
  assert.throws(() => validateLogin({ email: "a@b.co", phone: "+79161234567" }), /exactly one/);
  assert.throws(() => validateLogin({ email: "", phone: "" }), /exactly one/);
  assert.throws(() => validateLogin({ email: "a@b.co", phone: "" }, ""), /password: is required/);
});

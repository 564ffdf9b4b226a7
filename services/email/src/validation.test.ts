import assert from "node:assert/strict";
import { test } from "node:test";
import { AppError } from "@crm/kit";
import { EmailKind } from "@crm/gen/crm/email/v1/email_pb";
import { validateSend } from "./validation.js";

const ok = { email: " Someone@Example.com ", subject: " Hello ", body: "Hi there", idempotencyKey: "", kind: EmailKind.UNSPECIFIED, locale: "" };

const fields = (fn: () => unknown) => {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof AppError && err.reason === "invalid_argument");
    return err.violations.map((v) => v.field);
  }
  assert.fail("expected invalid_argument");
};

test("a good e-mail is normalised", () => {
  assert.deepEqual(validateSend(ok), { to: "someone@example.com", subject: "Hello", text: "Hi there", html: "", idempotencyKey: "", kind: EmailKind.CUSTOM, locale: "en" });
});

test("every bad field is named", () => {
  assert.deepEqual(fields(() => validateSend({ ...ok, email: "", subject: "", body: " " })), ["email", "subject", "body"]);
  assert.deepEqual(fields(() => validateSend({ ...ok, email: "a@b, c@d" })), ["email"]);
  assert.deepEqual(fields(() => validateSend({ ...ok, subject: "a\r\nBcc: x@y.z" })), ["subject"]);
  assert.deepEqual(fields(() => validateSend({ ...ok, subject: "s".repeat(999) })), ["subject"]);
  assert.deepEqual(fields(() => validateSend({ ...ok, body: "b".repeat(1024 * 1024 + 1) })), ["body"]);
  assert.deepEqual(fields(() => validateSend({ ...ok, html: "h".repeat(1024 * 1024 + 1) })), ["html"]);
  assert.deepEqual(fields(() => validateSend({ ...ok, idempotencyKey: "k".repeat(129) })), ["idempotencyKey"]);
  assert.deepEqual(fields(() => validateSend({ ...ok, kind: 42 as EmailKind })), ["kind"]);
  assert.deepEqual(fields(() => validateSend({ ...ok, locale: "english please" })), ["locale"]);
});

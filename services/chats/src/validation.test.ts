import assert from "node:assert/strict";
import { test } from "node:test";
import { AppError } from "@crm/kit";
import { validateAddMembers, validateCreateChat, validateListChats, validateListMessages, validateMarkRead, validateSendMessage, validateSubscribe } from "./validation.js";

const id = "0b7e6a3c-1f2d-4e5a-8b9c-0d1e2f3a4b5c";
const fields = (fn: () => unknown) => {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof AppError && err.reason === "invalid_argument", String(err));
    return err.violations.map((v) => v.field);
  }
  assert.fail("expected invalid_argument");
};

test("send message: content trimmed, 1..4000 characters (code points), retry key at most 64", () => {
  assert.deepEqual(validateSendMessage({ chatId: id, content: "  hi \n", clientMessageId: "" }), { chatId: id, content: "hi", clientMessageId: "" });
  assert.equal(validateSendMessage({ chatId: id, content: "😀".repeat(4000), clientMessageId: "k".repeat(64) }).content.length, 8000);
  assert.deepEqual(fields(() => validateSendMessage({ chatId: id, content: "x".repeat(4001), clientMessageId: "" })), ["content"]);
  assert.deepEqual(fields(() => validateSendMessage({ chatId: id, content: "\t \n", clientMessageId: "" })), ["content"]);
  assert.deepEqual(fields(() => validateSendMessage({ chatId: "1", content: "", clientMessageId: "k".repeat(65) })), ["chatId", "content", "clientMessageId"]);
});

test("create chat and members: names trimmed 1..200, ids must be UUIDs, duplicates dropped, at most 1000", () => {
  assert.deepEqual(validateCreateChat({ name: " Team ", memberIds: [id, id] }), { name: "Team", memberIds: [id] });
  assert.deepEqual(fields(() => validateCreateChat({ name: "", memberIds: ["x"] })), ["name", "memberIds"]);
  assert.deepEqual(fields(() => validateCreateChat({ name: "n".repeat(201), memberIds: [] })), ["name"]);
  assert.deepEqual(fields(() => validateAddMembers({ chatId: id, userIds: [] })), ["userIds"]);
  assert.deepEqual(fields(() => validateAddMembers({ chatId: id, userIds: Array(1001).fill(id) })), ["userIds"]);
});

test("paging: limit and page size 0..200 (0 = 50), at most one cursor, no negatives", () => {
  assert.equal(validateListMessages({ chatId: id, limit: 0 }).limit, 50);
  assert.equal(validateListMessages({ chatId: id, limit: 200, afterSeq: 0n }).limit, 200);
  assert.deepEqual(fields(() => validateListMessages({ chatId: id, limit: 201 })), ["limit"]);
  assert.deepEqual(fields(() => validateListMessages({ chatId: id, limit: 1, beforeSeq: 2n, afterSeq: 1n })), ["beforeSeq"]);
  assert.deepEqual(fields(() => validateListMessages({ chatId: id, limit: 1, beforeSeq: 0n })), ["beforeSeq"]);
  assert.equal(validateListChats({ pageSize: 0, pageToken: "" }).pageSize, 50);
  assert.deepEqual(fields(() => validateListChats({ pageSize: -1, pageToken: "" })), ["pageSize"]);
  assert.deepEqual(fields(() => validateSubscribe({ chatId: id, afterSeq: -1n })), ["afterSeq"]);
  assert.deepEqual(fields(() => validateMarkRead({ chatId: "", seq: -1n })), ["chatId", "seq"]);
});

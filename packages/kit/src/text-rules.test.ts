/** The text rule every request passes (text-rules.ts): walked by schema, field paths named, cheap. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { create, fromBinary, fromJson, toBinary, type MessageInitShape } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { AddUsersRequestSchema } from "@crm/gen/crm/admin/v1/admin_pb";
import { SendMessageRequestSchema } from "@crm/gen/crm/chat/v1/chat_pb";
import { SaveLogsRequestSchema } from "@crm/gen/crm/logs/v1/logs_pb";
import { logsServiceSender } from "./error-reports.js";
import { scrubText, textViolations } from "./text-rules.js";

const fields = (v: { field: string }[]) => v.map((x) => x.field);

test("every string is walked: nested, repeated, map keys and values; paths in JSON names", () => {
  const logs = create(SaveLogsRequestSchema, {
    entries: [
      { name: "ok", message: "line one\nline two\ttabbed\r\n", attributes: { fine: "v" } },
      { name: "n\u0000", message: "m\u0007", traceId: "t\u007f", attributes: { "a\u007f": "v", good: "x\u0085", "\u{1F600}": "ok" } },
    ],
  });
  const v = textViolations(SaveLogsRequestSchema, logs);
  assert.deepEqual(fields(v), ["entries[1].name", "entries[1].message", "entries[1].traceId", "entries[1].attributes", 'entries[1].attributes["good"]']);
  // Attribute values may span lines (stack traces); keys may not.
  const stack = create(SaveLogsRequestSchema, { entries: [{ name: "n", attributes: { stack: "Error\n\tat f", "two\nlines": "v" } }] });
  assert.deepEqual(fields(textViolations(SaveLogsRequestSchema, stack)), ["entries[0].attributes"]);
  assert.match(v[0]!.description, /control character U\+0000.*one line/);
  assert.match(v[1]!.description, /U\+0007.*line breaks and tabs are allowed/);
  assert.match(v[3]!.description, /^a key contains the control character U\+007F/);

  const users = create(AddUsersRequestSchema, { users: [{ email: "a@b.io", name: "Ann" }, { email: "c@d.io", name: "Bob\nSmith" }] });
  assert.deepEqual(fields(textViolations(AddUsersRequestSchema, users)), ["users[1].name"], "a name is one line");

  const send = create(SendMessageRequestSchema, { chatId: "c", content: "hello\n\tworld", clientMessageId: "k\r" });
  assert.deepEqual(fields(textViolations(SendMessageRequestSchema, send)), ["clientMessageId"], "content is multi-line, clientMessageId is not");

  // Recursive well-known types (Struct/Value) and oneofs are walked too.
  const value = fromJson(ValueSchema, { a: [{ b: "x\u0001" }] });
  assert.deepEqual(fields(textViolations(ValueSchema, value)), ['structValue.fields["a"].listValue.values[0].structValue.fields["b"].stringValue']);
});

test("lone surrogates and invalid UTF-8 (binary) are named, not replaced by U+FFFD", () => {
  // JSON decoding already refuses them (invalid_argument naming the field); messages built in code do not.
  assert.throws(() => fromJson(SendMessageRequestSchema, { chatId: "c", content: "half \ud800 a pair" }), /content.*invalid UTF8/);
  const built = create(SendMessageRequestSchema, { chatId: "c", content: "half \ud800 a pair" });
  const [surrogate] = textViolations(SendMessageRequestSchema, built);
  assert.equal(surrogate?.field, "content");
  assert.match(surrogate!.description, /lone surrogate/);

  // content (field 2) = bytes C3 28: a two-byte sequence cut short.
  const bytes = new Uint8Array([0x0a, 1, 0x63, 0x12, 2, 0xc3, 0x28]);
  const decoded = fromBinary(SendMessageRequestSchema, bytes);
  const [utf8] = textViolations(SendMessageRequestSchema, decoded);
  assert.equal(utf8?.field, "content");
  assert.match(utf8!.description, /not valid UTF-8/);

  // Valid UTF-8 (including U+FFFD itself and astral characters) passes.
  const good = fromBinary(SendMessageRequestSchema, toBinary(SendMessageRequestSchema, create(SendMessageRequestSchema, { content: "\uFFFD é \u{1F600} 中文" })));
  assert.deepEqual(textViolations(SendMessageRequestSchema, good), []);
});

test("violations are capped at a screenful", () => {
  const users = create(AddUsersRequestSchema, { users: Array.from({ length: 1000 }, () => ({ email: "\u0000", name: "\u0000" })) });
  assert.equal(textViolations(AddUsersRequestSchema, users).length, 20);
});

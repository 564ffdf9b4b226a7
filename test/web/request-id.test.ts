/** The console's request ids for retry-safe creates (web/src/request-id.ts): UUIDs v4 the server takes, a new one each time. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { newRequestId } from "../../web/src/request-id.ts";

test("request ids are RFC 4122 version 4 UUIDs, each new", () => {
  const ids = Array.from({ length: 1000 }, newRequestId);
  for (const id of ids) assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.equal(new Set(ids).size, ids.length);
});

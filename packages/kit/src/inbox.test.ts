import assert from "node:assert/strict";
import { test } from "node:test";
import { Inbox } from "./inbox.js";

test("inbox: items in order, timeout when idle, abort, overflow drops the buffer once", async () => {
  const box = new Inbox<number>(3);
  const ac = new AbortController();
  box.push(1);
  box.push(2);
  assert.equal(await box.next(1000, ac.signal), 1);
  assert.equal(await box.next(1000, ac.signal), 2);
  assert.equal(await box.next(10, ac.signal), "timeout");
  const waiting = box.next(5_000, ac.signal);
  setTimeout(() => box.push(3), 5);
  assert.equal(await waiting, 3);
  for (let i = 0; i < 5; i++) box.push(i);
  assert.equal(await box.next(10, ac.signal), "overflow", "a slow reader is told to catch up from the database");
  box.push(9);
  assert.equal(await box.next(10, ac.signal), 9);
  const aborted = box.next(5_000, ac.signal);
  ac.abort();
  assert.equal(await aborted, "aborted");
});

/** The argon2 concurrency limit and the password helpers around it. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { concurrencyLimit, dummyHash, hashPassword, verifyPassword } from "./passwords.js";

test("concurrencyLimit runs at most n at once, the rest in arrival order, and frees a slot when an operation fails", async () => {
  const run = concurrencyLimit(2);
  let active = 0;
  let most = 0;
  const started: number[] = [];
  const op = (i: number) => async () => {
    started.push(i);
    most = Math.max(most, ++active);
    await new Promise((r) => setTimeout(r, 5));
    active--;
    if (i === 1) throw new Error("boom");
    return i;
  };
  const results = await Promise.allSettled([0, 1, 2, 3, 4, 5].map((i) => run(op(i))));
  assert.equal(most, 2);
  assert.deepEqual(started, [0, 1, 2, 3, 4, 5]);
  assert.deepEqual(
    results.map((r) => (r.status === "fulfilled" ? r.value : "failed")),
    [0, "failed", 2, 3, 4, 5],
  );
});

test("hash and verify go through the limit and still work; a malformed hash verifies as false", async () => {
  const phc = await hashPassword("correct horse battery staple 42");
  assert.match(phc, /^\$argon2id\$v=19\$m=19456,t=2,p=1\$/);
  const [ok, wrong, dummy, malformed] = await Promise.all([
    verifyPassword(phc, "correct horse battery staple 42"),
    verifyPassword(phc, "wrong password"),
    verifyPassword(dummyHash, "correct horse battery staple 42"),
    verifyPassword("not a hash", "correct horse battery staple 42"),
  ]);
  assert.deepEqual([ok, wrong, dummy, malformed], [true, false, false, false]);
});

import assert from "node:assert/strict";
import { test } from "node:test";
import { AppError, memoryCounter, type Counter } from "@crm/kit";
import { createLoginThrottle } from "./throttle.js";

test("failures lock out the guessing address for that account, never the owner elsewhere", async () => {
  let now = 0;
  const t = createLoginThrottle(memoryCounter(() => now), { perAccountAndIp: 3, perIp: 100, windowSeconds: 60 });
  for (let i = 0; i < 3; i++) await t.failed("victim@x.io", "6.6.6.6");
  await assert.rejects(t.check("victim@x.io", "6.6.6.6"), (e: unknown) => e instanceof AppError && e.reason === "rate_limited" && e.retryAfterSeconds === 60);
  await t.check("victim@x.io", "10.0.0.1"); // the owner from their own address
  await t.check("other@x.io", "6.6.6.6"); // other accounts from the same address, until the per-IP cap
  now += 61_000;
  await t.check("victim@x.io", "6.6.6.6"); // the window ends
});

test("an address that fails across many accounts is capped", async () => {
  const t = createLoginThrottle(memoryCounter(), { perAccountAndIp: 10, perIp: 5, windowSeconds: 60 });
  for (let i = 0; i < 5; i++) await t.failed(`u${i}@x.io`, "6.6.6.6");
  await assert.rejects(t.check("fresh@x.io", "6.6.6.6"), /too many failed logins/);
});

test("a success forgives this address's failures for the login, and writes nothing when none were counted", async () => {
  const memory = memoryCounter();
  const resets: string[] = [];
  const counter: Counter = { ...memory, reset: (key) => (resets.push(key), memory.reset(key)) };
  const t = createLoginThrottle(counter, { perAccountAndIp: 3, perIp: 100, windowSeconds: 60 });
  await t.succeeded("olga@x.io", "10.0.0.1", await t.check("olga@x.io", "10.0.0.1"));
  assert.deepEqual(resets, [], "an ordinary login: no counter write");
  for (let i = 0; i < 2; i++) await t.failed("olga@x.io", "10.0.0.1");
  const failures = await t.check("olga@x.io", "10.0.0.1");
  assert.equal(failures, 2);
  await t.succeeded("olga@x.io", "10.0.0.1", failures);
  assert.deepEqual(resets, ["login:pair:olga@x.io|10.0.0.1"]);
  for (let i = 0; i < 2; i++) await t.failed("olga@x.io", "10.0.0.1");
  assert.equal(await t.check("olga@x.io", "10.0.0.1"), 2, "the earlier two were forgiven: not locked out at 4");
});

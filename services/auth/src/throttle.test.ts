import assert from "node:assert/strict";
import { test } from "node:test";
import { AppError, memoryCounter } from "@crm/kit";
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

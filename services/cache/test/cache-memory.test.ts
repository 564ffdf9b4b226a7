/** All-in-one without REDIS_URL: the in-memory store answers with the same semantics. */
import { after, before, test } from "node:test";
import type { TestApp } from "@crm/testkit";
import { badInput, basicFlow, quotaEnv, quotaFlow, startApp } from "./flow.js";

let app: TestApp;
before(async () => {
  app = await startApp(quotaEnv);
});
after(async () => {
  await app?.close();
});

test("SET NX, Get, Delete and tenant isolation in memory", async () => {
  await basicFlow(app);
});

test("per-company quotas in memory: resource_exhausted past them, no company loses keys to another", async () => {
  await quotaFlow(app);
});

test("bad input is refused in memory too", async () => {
  await badInput(app);
});

/** The same flow against the embedded default: PGlite in DATA_DIR, memory revocations. */
import { after, before, test } from "node:test";
import { type TestApp } from "@crm/testkit";
import { startTestApp } from "@crm/all/test-app";
import { fullFlow } from "./flow.js";

let app: TestApp;
before(async () => {
  app = await startTestApp();
});
after(async () => {
  await app?.close();
});

test("register → login → refresh → reuse → check → logout on embedded PGlite", async () => {
  await fullFlow(app, "pglite");
});

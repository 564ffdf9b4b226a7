/**
 * Starts the all-in-one app in this test process on a free port with a temporary DATA_DIR, and
 * returns Connect and gRPC clients for it (`TestApp`, @crm/testkit). It lives here, in the entry
 * point's tests, because only services/all may start every service; tests of any service import
 * it as `@crm/all/test-app`.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { testAppAt, type TestApp } from "@crm/testkit";
import { startAllInOne } from "../src/all-in-one.js";

export async function startTestApp(env: Record<string, string> = {}): Promise<TestApp> {
  const dataDir = mkdtempSync(join(tmpdir(), "crm-test-"));
  const app = await startAllInOne({ LOG_LEVEL: "warn", ...env, PORT: "0", HOST: "127.0.0.1", DATA_DIR: dataDir });
  return testAppAt(`http://127.0.0.1:${app.port}`, dataDir, async () => {
    await app.close();
    rmSync(dataDir, { recursive: true, force: true });
  });
}

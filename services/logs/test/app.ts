/** The all-in-one app for these tests: on the local PostgreSQL when it runs (fast), else embedded PGlite. */
import { randomBytes } from "node:crypto";
import { AuthService } from "@crm/gen/crm/auth/v1/auth_pb";
import { freshDatabase, postgresUp, type TestApp } from "@crm/testkit";
import { startTestApp } from "@crm/all/test-app";

export async function startApp(env: Record<string, string> = {}): Promise<TestApp> {
  const db = (await postgresUp()) ? await freshDatabase() : undefined;
  const app = await startTestApp({ ...env, ...(db ? { DATABASE_URL: db.url } : {}) });
  return {
    ...app,
    client: app.client.bind(app),
    async close() {
      await app.close();
      await db?.drop();
    },
  };
}

/** A new company; returns its owner's token and ids. */
export async function newCompany(app: TestApp, name = "Acme") {
  const tag = randomBytes(4).toString("hex");
  const r = await app.client(AuthService).registerCompany({ companyName: `${name} ${tag}`, email: `owner-${tag}@example.com`, password: "correct horse battery", ownerName: "Owner" });
  return { token: r.accessToken, companyId: r.companyId, userId: r.userId };
}

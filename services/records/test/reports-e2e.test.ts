/**
 * Through the all-in-one over real HTTP on the machine's PostgreSQL: an owner sets the company's
 * base currency and a rate, deals in three currencies make a pipeline report (one without a rate
 * reported as unconverted); and a program calling with an API key is written on the timeline as
 * "API key <name>", not as the user it acts for.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, test } from "node:test";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { ApiKeyService } from "@crm/gen/crm/auth/v1/api_keys_pb";
import { AuthService } from "@crm/gen/crm/auth/v1/auth_pb";
import { ActorType, ObjectType } from "@crm/gen/crm/records/v1/common_pb";
import { DealService } from "@crm/gen/crm/records/v1/deal_pb";
import { PipelineService, StageKind } from "@crm/gen/crm/records/v1/pipeline_pb";
import { ReportService } from "@crm/gen/crm/records/v1/report_pb";
import { TimelineAction, TimelineService } from "@crm/gen/crm/records/v1/timeline_pb";
import { freshDatabase, installHint, need, postgresUp, type TestApp, type TestDatabase } from "@crm/testkit";
import { startTestApp } from "@crm/all/test-app";
import { expectCode } from "./harness.js";

const skip = need("PostgreSQL", await postgresUp(), installHint.postgres);

let db: TestDatabase;
let app: TestApp;
before(async () => {
  if (skip) return;
  db = await freshDatabase();
  app = await startTestApp({ DATABASE_URL: db.url });
});
after(async () => {
  await app?.close();
  await db?.drop();
});

async function register(a: TestApp) {
  const t = randomBytes(4).toString("hex");
  return a.client(AuthService).registerCompany({ companyName: `Reports ${t}`, email: `owner-${t}@example.com`, password: "correct horse battery staple", ownerName: "Owner" });
}

test("a pipeline report in the base currency through the all-in-one; a deal without a rate is named", { skip }, async () => {
  const owner = await register(app);
  const reports = app.client(ReportService, { token: owner.accessToken });
  const pipelines = app.client(PipelineService, { token: owner.accessToken, protocol: "grpc" });
  const deals = app.client(DealService, { token: owner.accessToken });
  const p = (await pipelines.createPipeline({ pipeline: { name: "Sales", stages: [{ name: "Lead", probability: 20 }, { name: "Won", probability: 100, kind: StageKind.WON }] } })).pipeline!;
  await expectCode(reports.getPipelineValue({ pipelineId: p.id }), Code.FailedPrecondition, /base currency/);
  await reports.setBaseCurrency({ baseCurrencyCode: "EUR" });
  await reports.setExchangeRate({ currencyCode: "USD", rate: "0.5" });
  await deals.createDeal({ deal: { name: "A", pipelineId: p.id, amountMinor: 10_000n, currencyCode: "EUR" } });
  await deals.createDeal({ deal: { name: "B", pipelineId: p.id, amountMinor: 10_000n, currencyCode: "USD" } });
  await deals.createDeal({ deal: { name: "C", pipelineId: p.id, amountMinor: 700n, currencyCode: "SEK" } });
  const v = await reports.getPipelineValue({ pipelineId: p.id });
  assert.equal(v.baseCurrencyCode, "EUR");
  assert.deepEqual([v.stages[0]!.dealCount, v.stages[0]!.amountMinor, v.stages[0]!.weightedAmountMinor], [3n, 15_000n, 3_000n]);
  assert.deepEqual(v.openUnconverted.map((u) => [u.currencyCode, u.dealCount, u.amountMinor]), [["SEK", 1n, 700n]]);
  const now = Date.now();
  const w = await reports.getWinRate({ pipelineId: p.id, startTime: timestampFromMs(now - 3_600_000), endTime: timestampFromMs(now + 3_600_000) });
  assert.deepEqual([w.wonCount, w.lostCount, w.winRate], [0n, 0n, 0]);
  const settings = await app.client(ReportService, { token: owner.accessToken, protocol: "grpc" }).getCurrencySettings({});
  assert.deepEqual(settings.rates.map((r) => `${r.currencyCode} ${r.rate}`), ["USD 0.5"]);
});

test("a change made with an API key is on the timeline as the key, not as its creator", { skip }, async () => {
  const owner = await register(app);
  const p = (await app.client(PipelineService, { token: owner.accessToken }).createPipeline({ pipeline: { name: "Sales", stages: [{ name: "Lead" }, { name: "Next" }] } })).pipeline!;
  const key = await app.client(ApiKeyService, { token: owner.accessToken }).createApiKey({ name: "CRM sync", scopes: ["deals:read", "deals:write"] });
  const byKey = app.client(DealService, { token: key.secret });
  const d = (await byKey.createDeal({ deal: { name: "From the key", pipelineId: p.id } })).deal!;
  await byKey.moveDeal({ id: d.id, stageId: p.stages[1]!.id });
  await app.client(DealService, { token: owner.accessToken }).updateDeal({ deal: { id: d.id, name: "By hand" }, updateMask: { paths: ["name"] } });
  const entries = (await app.client(TimelineService, { token: owner.accessToken }).listTimeline({ objectType: ObjectType.DEAL, recordId: d.id })).entries;
  assert.deepEqual(
    entries.map((e) => [TimelineAction[e.action], ActorType[e.actor!.type], e.actor!.id, e.actor!.name]),
    [
      ["UPDATED", "USER", owner.userId, ""],
      ["STAGE_CHANGED", "API_KEY", key.apiKey!.apiKeyId, "API key CRM sync"],
      ["CREATED", "API_KEY", key.apiKey!.apiKeyId, "API key CRM sync"],
    ],
  );
});

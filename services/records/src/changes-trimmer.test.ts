/**
 * The change log's trimming job over a fake dbservice (in memory): a pass calls again while a
 * tenant comes back full and sends the retention settings, concurrent runs share one pass, a
 * refusal fails the pass, and stop() ends the job.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { createClient, createRouterTransport, type ServiceImpl } from "@connectrpc/connect";
import { DbRecordsService } from "@crm/gen/crm/db/v1/db_records_pb";
import { AppError, errorInterceptor } from "@crm/kit";
import { log } from "../test/harness.js";
import { createChangesTrimmer } from "./changes-trimmer.js";

function db(impl: Partial<ServiceImpl<typeof DbRecordsService>>) {
  return createClient(DbRecordsService, createRouterTransport((r) => void r.service(DbRecordsService, impl), { router: { interceptors: [errorInterceptor(log)] } }));
}

test("a pass calls again while a tenant came back full, with the retention settings, and adds up what was trimmed", async () => {
  const answers = [{ trimmed: 500, more: true }, { trimmed: 20, more: false }];
  const seen: [number, number, bigint][] = [];
  const trimmer = createChangesTrimmer({
    db: db({
      async trimChangesDB(req) {
        seen.push([req.limit, req.retentionDays, req.keepVersions]);
        return answers.shift()!;
      },
    }),
    log,
    intervalMs: 3_600_000,
    retentionDays: 7,
    keepVersions: 1000,
    batch: 500,
  });
  const [a, b] = await Promise.all([trimmer.runOnce(), trimmer.runOnce()]);
  assert.equal(a, 520);
  assert.equal(b, 520, "a second run while one is in flight shares it");
  assert.deepEqual(seen, [[500, 7, 1000n], [500, 7, 1000n]]);
  await trimmer.stop();
});

test("a refused call fails the pass (the schedule logs it and runs again later); stop ends the job", async () => {
  const trimmer = createChangesTrimmer({
    db: db({
      async trimChangesDB() {
        throw new AppError("permission_denied", "this internal call is only for the records service");
      },
    }),
    log,
    intervalMs: 3_600_000,
    retentionDays: 7,
    keepVersions: 0,
  });
  await assert.rejects(trimmer.runOnce(), /only for the records service/);
  trimmer.start();
  await trimmer.stop();
});

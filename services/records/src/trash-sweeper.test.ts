/**
 * The trash's 30-day purge job over a fake dbservice (in memory): a pass calls again while a kind
 * comes back full, concurrent runs share one pass, a refusal is logged and the job goes on, and
 * stop() waits for the pass in flight.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { createClient, createRouterTransport, type ServiceImpl } from "@connectrpc/connect";
import { DbRecordsService } from "@crm/gen/crm/db/v1/db_records_pb";
import { AppError, errorInterceptor } from "@crm/kit";
import { log } from "../test/harness.js";
import { createTrashSweeper } from "./trash-sweeper.js";

function db(impl: Partial<ServiceImpl<typeof DbRecordsService>>) {
  return createClient(DbRecordsService, createRouterTransport((r) => void r.service(DbRecordsService, impl), { router: { interceptors: [errorInterceptor(log)] } }));
}

test("a pass calls again while a kind came back full, and adds up what was purged", async () => {
  const answers = [{ purged: 7, more: true }, { purged: 3, more: true }, { purged: 1, more: false }];
  const limits: number[] = [];
  const sweeper = createTrashSweeper({
    db: db({
      async purgeTrashDB(req) {
        limits.push(req.limit);
        return answers.shift()!;
      },
    }),
    log,
    intervalMs: 3_600_000,
    batch: 5,
  });
  const [a, b] = await Promise.all([sweeper.runOnce(), sweeper.runOnce()]);
  assert.equal(a, 11);
  assert.equal(b, 11, "a second run while one is in flight shares it");
  assert.deepEqual(limits, [5, 5, 5]);
  await sweeper.stop();
});

test("a refused call fails the pass (the schedule logs it and runs again later); stop ends the job", async () => {
  const sweeper = createTrashSweeper({
    db: db({
      async purgeTrashDB() {
        throw new AppError("permission_denied", "this internal call is only for the records service");
      },
    }),
    log,
    intervalMs: 3_600_000,
  });
  await assert.rejects(sweeper.runOnce(), /only for the records service/);
  sweeper.start();
  await sweeper.stop();
});

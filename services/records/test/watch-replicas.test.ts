/**
 * WatchRecords on two records replicas: the all-in-one in this process (records A, with its
 * dbservice and outbox relay) and `main.ts records` as its own process (records B, calling
 * `main.ts dbservice` over gRPC, whose own relay publishes what it commits), sharing PostgreSQL and
 * RabbitMQ. Deals are changed through both; a watcher on each replica sees every change of the
 * tenant, once, in version order, without a gap; a watcher that reconnects with the last version
 * it saw gets exactly what it missed. Heartbeats are set to a minute, so only live delivery
 * through RabbitMQ can pass within the waits (the heartbeat's database catch-up cannot).
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { ConnectError, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { AuthService } from "@crm/gen/crm/auth/v1/auth_pb";
import { ObjectType } from "@crm/gen/crm/records/v1/common_pb";
import { DealService } from "@crm/gen/crm/records/v1/deal_pb";
import { PipelineService } from "@crm/gen/crm/records/v1/pipeline_pb";
import { RecordStreamService, type WatchedChange } from "@crm/gen/crm/records/v1/stream_pb";
import { TEST_AMQP_URL, freshDatabase, installHint, need, postgresUp, rabbitUp, until, type TestApp, type TestDatabase } from "@crm/testkit";
import { startTestApp } from "@crm/all/test-app";
import { startService, type ServiceProcess } from "../../chats/test/processes.js";

const skip = need("PostgreSQL", await postgresUp(), installHint.postgres) || need("RabbitMQ", await rabbitUp(), installHint.rabbitmq);

let db: TestDatabase;
let app: TestApp;
let dbservice: ServiceProcess | undefined;
let recordsB: ServiceProcess | undefined;
before(async () => {
  if (skip) return;
  db = await freshDatabase();
  app = await startTestApp({ DATABASE_URL: db.url, AMQP_URL: TEST_AMQP_URL, RECORDS_HEARTBEAT_MS: "60000" });
  const shared = { AMQP_URL: TEST_AMQP_URL, JWT_PUBLIC_KEYS_FILE: join(app.dataDir, "keys", "jwks.json"), TLS_CLIENT_AUTH: "off" };
  dbservice = await startService("dbservice", { ...shared, DATABASE_URL: db.url });
  recordsB = await startService("records", { ...shared, DBSERVICE_URL: dbservice.url, RECORDS_HEARTBEAT_MS: "60000" });
});
after(async () => {
  await recordsB?.stop();
  await dbservice?.stop();
  await app?.close();
  await db?.drop();
});

/** A client of replica B (gRPC over h2c), as `token`. */
function onB<S extends Parameters<typeof createClient>[0]>(service: S, token: string) {
  const auth: Interceptor = (next) => (req) => (req.header.set("authorization", `Bearer ${token}`), next(req));
  return createClient(service, createGrpcTransport({ baseUrl: recordsB!.url, interceptors: [auth] }));
}

function watch(client: Client<typeof RecordStreamService>, afterVersion?: bigint) {
  const ac = new AbortController();
  const w = { changes: [] as WatchedChange[], heartbeats: [] as bigint[], error: undefined as ConnectError | undefined, ended: false };
  const done = (async () => {
    try {
      for await (const ev of client.watchRecords({ objectType: ObjectType.DEAL, afterVersion }, { signal: ac.signal })) {
        if (ev.event.case === "change") w.changes.push(ev.event.value);
        else if (ev.event.case === "heartbeat") w.heartbeats.push(ev.event.value.lastVersion);
      }
    } catch (err) {
      if (!ac.signal.aborted) w.error = ConnectError.from(err);
    } finally {
      w.ended = true;
    }
  })();
  return {
    w,
    versions: () => w.changes.map((c) => Number(c.change!.version)),
    live: () => until("the stream to go live", () => w.heartbeats.length > 0 || w.ended, 15_000),
    count: (n: number) => until(`${n} changes (have ${w.changes.length}${w.error ? `, ${w.error.message}` : ""})`, () => w.changes.length >= n || w.ended, 20_000),
    close: async () => (ac.abort(), await done),
  };
}

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

test("two records processes: watchers on both see every change made through either, once, in order; a reconnect misses nothing", { skip, timeout: 120_000 }, async () => {
  const t = randomBytes(4).toString("hex");
  const reg = await app.client(AuthService).registerCompany({ companyName: `Replicas ${t}`, email: `owner-${t}@example.com`, password: "correct horse battery staple", ownerName: "Owner" });
  const token = reg.accessToken;
  const dealsA = app.client(DealService, { token, protocol: "grpc" });
  const dealsB = onB(DealService, token);
  const pipeline = (await app.client(PipelineService, { token }).createPipeline({ pipeline: { name: "P", stages: [{ name: "S" }] } })).pipeline!;

  const onA = watch(app.client(RecordStreamService, { token, protocol: "grpc" }));
  const onReplicaB = watch(onB(RecordStreamService, token));
  await onA.live();
  await onReplicaB.live();

  // 30 deals, alternately through A and B, some of them concurrently.
  for (let i = 0; i < 30; i += 3) {
    await Promise.all([0, 1, 2].map((k) => ((i + k) % 2 ? dealsB : dealsA).createDeal({ deal: { name: `deal ${i + k}`, stageId: pipeline.stages[0]!.id } })));
  }
  await onA.count(30);
  await onReplicaB.count(30);
  assert.deepEqual(onA.versions(), range(1, 30));
  assert.deepEqual(onReplicaB.versions(), range(1, 30));
  assert.equal(onReplicaB.w.heartbeats.length, 1, "only the going-live heartbeat: everything came live");
  assert.equal(onA.w.heartbeats.length, 1);

  // B's watcher goes away after 30; 10 more changes happen meanwhile; it comes back (on the other replica) after what it saw.
  await onReplicaB.close();
  const last = BigInt(onReplicaB.versions().at(-1)!);
  for (let i = 0; i < 10; i++) await (i % 2 ? dealsB : dealsA).createDeal({ deal: { name: `while away ${i}`, stageId: pipeline.stages[0]!.id } });
  const back = watch(app.client(RecordStreamService, { token }), last);
  await back.live();
  await dealsB.createDeal({ deal: { name: "after the reconnect", stageId: pipeline.stages[0]!.id } });
  await back.count(11);
  assert.deepEqual(back.versions(), range(31, 41), "replayed 31..40, then 41 live: no gap, no duplicate at the seam");
  await onA.count(41);
  assert.deepEqual(onA.versions(), range(1, 41));
  await back.close();
  await onA.close();
});

/**
 * WatchRecords in memory: the handler with its hub on the in-memory event bus and a fake store
 * (the tenant's stored changes). The seam between replay and live, duplicates and changes out of
 * order from the bus, gaps filled from the store, the filter with in_view, heartbeats, and bad
 * requests refused before anything is read.
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { test } from "node:test";
import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, createRouterTransport, type ServiceImpl } from "@connectrpc/connect";
import { RECORD_EVENTS_EXCHANGE, recordRoutingKey } from "@crm/contracts";
import { DbRecordsService } from "@crm/gen/crm/db/v1/db_records_pb";
import { ObjectType, Operator, type Filter } from "@crm/gen/crm/records/v1/common_pb";
import { DealStatus } from "@crm/gen/crm/records/v1/deal_pb";
import { ChangeAction, RecordChangeSchema, RecordStreamService, type RecordChange, type WatchedChange } from "@crm/gen/crm/records/v1/stream_pb";
import { createEventBus, errorInterceptor } from "@crm/kit";
import { until } from "@crm/testkit";
import { expectCode, fieldsOf, inMemory, log } from "../test/harness.js";
import { createHub } from "./hub.js";
import { recordStream } from "./watch.js";

const TENANT = randomUUID();
const USER = randomUUID();
const token = `${USER}.${TENANT}.member`;

/** The tenant's stored changes, and a fake store serving them as ListChangesDB and GetRecordVersionDB do. */
function fakeStore() {
  const changes: RecordChange[] = [];
  const calls: string[] = [];
  /** GetRecordVersionDB calls still to fail (as when the caller's token has just expired). */
  const failing = { versions: 0 };
  const store: Partial<ServiceImpl<typeof DbRecordsService>> = {
    async getRecordVersionDB() {
      calls.push("version");
      if (failing.versions > 0 && failing.versions--) throw new ConnectError("token expired", Code.Unauthenticated);
      return { version: BigInt(changes.length) };
    },
    async listChangesDB(req) {
      calls.push(`changes>${req.afterVersion}`);
      const limit = req.limit || 500;
      const after = changes.filter((c) => c.version > req.afterVersion && (!req.objectType || c.objectType === req.objectType));
      const page = after.slice(0, limit);
      const more = after.length > limit;
      return { changes: page, more, throughVersion: more ? page[page.length - 1]!.version : BigInt(changes.length) };
    },
  };
  return { changes, calls, store, failing };
}

function deal(version: number, id: string, stage: string, previousStage?: string, tenant = TENANT): RecordChange {
  const snap = (s: string) => ({ record: { case: "deal" as const, value: { id, name: `deal ${id.slice(0, 4)}`, stageId: s, status: DealStatus.OPEN } } });
  return create(RecordChangeSchema, {
    version: BigInt(version),
    tenantId: tenant,
    objectType: ObjectType.DEAL,
    recordId: id,
    action: previousStage ? ChangeAction.STAGE_CHANGED : ChangeAction.CREATED,
    record: snap(stage),
    previous: previousStage ? snap(previousStage) : undefined,
  });
}

function company(version: number): RecordChange {
  return create(RecordChangeSchema, {
    version: BigInt(version),
    tenantId: TENANT,
    objectType: ObjectType.COMPANY,
    recordId: randomUUID(),
    action: ChangeAction.CREATED,
    record: { record: { case: "company", value: { name: "Acme" } } },
  });
}

async function setup(heartbeatMs = 60_000) {
  const s = fakeStore();
  const bus = createEventBus({ log, name: "test" });
  const hub = await createHub({ bus, log, unbindGraceMs: 10 });
  const db = createClient(DbRecordsService, createRouterTransport((r) => void r.service(DbRecordsService, s.store), { router: { interceptors: [errorInterceptor(log)] } }));
  const client = inMemory((r) => void r.service(RecordStreamService, recordStream({ db, hub, heartbeatMs }))).client(RecordStreamService, token);
  /** Stores a change (as the store commits it), then publishes it (as the relay does), unless `publish` is false. */
  const commit = async (c: RecordChange, publish = true) => {
    s.changes.push(c);
    if (publish) await send(c);
  };
  const send = (c: RecordChange) => bus.publish(RECORD_EVENTS_EXCHANGE, recordRoutingKey(c.tenantId), toBinary(RecordChangeSchema, c));
  return {
    ...s,
    hub,
    commit,
    send,
    watch(req: { objectType: ObjectType; filter?: Filter; afterVersion?: bigint; showDeleted?: boolean }) {
      const ac = new AbortController();
      const w = { changes: [] as WatchedChange[], heartbeats: [] as bigint[], error: undefined as ConnectError | undefined, ended: false };
      const done = (async () => {
        try {
          for await (const ev of client.watchRecords(req, { signal: ac.signal })) {
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
        live: () => until("live", () => w.heartbeats.length > 0 || w.ended, 5_000),
        count: (n: number) => until(`${n} changes (have ${w.changes.length}, ${w.error?.message ?? ""})`, () => w.changes.length >= n || w.ended, 5_000),
        close: async () => (ac.abort(), await done),
      };
    },
    close: async () => {
      await hub.close();
      await bus.close();
    },
  };
}

/**
 * Makes the streams' idle timers run out in one turn, as a change that woke them all at once does
 * on a server: lets every stream arm its timer (a few turns), then holds this thread past the
 * heartbeat, so all of them are due when the event loop next runs timers. Without it, timers armed
 * a millisecond apart on a busy machine could run out in two turns.
 */
async function idleTogether(heartbeatMs: number): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
  const until = performance.now() + heartbeatMs + 50;
  while (performance.now() < until);
}

const stageIs = (id: string): Filter => ({ node: { case: "condition", value: { field: "stage_id", operator: Operator.EQUALS, values: [id] } } }) as Filter;

test("replay after a version, then live: each change once, in version order, with no gap at the seam", async () => {
  const t = await setup();
  for (let v = 1; v <= 5; v++) await t.commit(deal(v, randomUUID(), "s1"), false); // stored before anyone watched
  const s = t.watch({ objectType: ObjectType.DEAL, afterVersion: 2n });
  await s.live();
  assert.deepEqual(s.versions(), [3, 4, 5], "the replay");
  assert.deepEqual(s.w.heartbeats, [5n], "live from 5");
  // Live, with a duplicate of an old one and a repeat delivery.
  await t.commit(deal(6, randomUUID(), "s1"));
  await t.send(t.changes[3]!);
  await t.send(t.changes[5]!);
  await t.commit(deal(7, randomUUID(), "s1"));
  await s.count(5);
  assert.deepEqual(s.versions(), [3, 4, 5, 6, 7]);
  await s.close();
  await t.close();
});

test("a change missed or out of order on the bus is read from the store; other object types keep the count", async () => {
  const t = await setup();
  const s = t.watch({ objectType: ObjectType.DEAL });
  await s.live();
  await t.commit(company(1));
  await t.commit(deal(2, randomUUID(), "s1"));
  await t.commit(deal(3, randomUUID(), "s1"), false); // the bus lost it
  await t.commit(company(4), false);
  await t.commit(deal(5, randomUUID(), "s1")); // → 3 and 4 from the store
  await s.count(3);
  assert.deepEqual(s.versions(), [2, 3, 5]);
  assert.ok(t.calls.includes("changes>2"), "the gap after 2 was filled from the store");
  // Out of order: 7 arrives before 6.
  t.changes.push(deal(6, randomUUID(), "s1"));
  t.changes.push(deal(7, randomUUID(), "s1"));
  await t.send(t.changes[6]!);
  await t.send(t.changes[5]!);
  await s.count(5);
  assert.deepEqual(s.versions(), [2, 3, 5, 6, 7]);
  await s.close();
  await t.close();
});

test("the filter: changes of records in the view, or that left it (in_view false); others not sent", async () => {
  const t = await setup();
  const [a, b] = [randomUUID(), randomUUID()];
  const s = t.watch({ objectType: ObjectType.DEAL, filter: stageIs("11111111-1111-4111-8111-111111111111") });
  await s.live();
  const s1 = "11111111-1111-4111-8111-111111111111";
  const s2 = "22222222-2222-4222-8222-222222222222";
  await t.commit(deal(1, a, s1)); // enters
  await t.commit(deal(2, b, s2)); // never in view
  await t.commit(deal(3, b, s1, s2)); // enters by a move
  await t.commit(deal(4, a, s2, s1)); // leaves
  await t.commit(deal(5, a, s2, s2)); // moves outside: not sent
  await t.commit(deal(6, b, s1, s1)); // stays
  await s.count(4);
  await until("the last change considered", () => t.changes.length === 6, 1000);
  assert.deepEqual(s.w.changes.map((c) => [Number(c.change!.version), c.inView]), [[1, true], [3, true], [4, false], [6, true]]);
  await s.close();
  await t.close();
});

test("idle: the heartbeat checks the store and catches up what the bus never brought", async () => {
  const t = await setup(150);
  const s = t.watch({ objectType: ObjectType.DEAL });
  await s.live();
  await t.commit(deal(1, randomUUID(), "s1"), false);
  await s.count(1);
  await until("a heartbeat after the catch-up", () => s.w.heartbeats.length >= 2, 5_000);
  assert.equal(s.w.heartbeats.at(-1), 1n);
  await s.close();
  await t.close();
});

test("idle together: the watchers a change woke at once share one version check, and all catch up from it", async () => {
  const t = await setup(200);
  const streams = Array.from({ length: 5 }, () => t.watch({ objectType: ObjectType.DEAL }));
  for (const s of streams) await s.live();
  // One change wakes every watcher in the same turn, so their idle timers run out together.
  await t.commit(deal(1, randomUUID(), "s1"));
  for (const s of streams) await s.count(1);
  t.calls.splice(0);
  await t.commit(deal(2, randomUUID(), "s1"), false); // the bus never brings it
  await idleTogether(200);
  for (const s of streams) await s.count(2);
  assert.deepEqual(t.calls, ["version", "changes>1", "changes>1", "changes>1", "changes>1", "changes>1"], "one version check for the five, then each reads what it missed");
  for (const s of streams) assert.deepEqual(s.versions(), [1, 2]);
  for (const s of streams) await s.close();
  await t.close();
});

test("idle together: a shared version check that fails is asked again by each stream as itself; none ends", async () => {
  const t = await setup(200);
  const streams = Array.from({ length: 3 }, () => t.watch({ objectType: ObjectType.DEAL }));
  for (const s of streams) await s.live();
  await t.commit(deal(1, randomUUID(), "s1"));
  for (const s of streams) await s.count(1);
  t.calls.splice(0);
  t.failing.versions = 1;
  await t.commit(deal(2, randomUUID(), "s1"), false);
  await idleTogether(200);
  for (const s of streams) await s.count(2);
  assert.equal(t.calls.filter((c) => c === "version").length, 4, "the shared check, then one per stream");
  for (const s of streams) assert.equal(s.w.error, undefined);
  for (const s of streams) await s.close();
  await t.close();
});

test("another tenant's changes never reach a stream; the binding goes when the last watcher leaves", async () => {
  const t = await setup();
  const s = t.watch({ objectType: ObjectType.DEAL });
  await s.live();
  assert.equal(t.hub.boundTenants(), 1);
  await t.send(deal(1, randomUUID(), "s1", undefined, randomUUID()));
  await t.commit(deal(1, randomUUID(), "s1"));
  await s.count(1);
  assert.equal(s.w.changes[0]!.change!.tenantId, TENANT);
  await s.close();
  await until("the binding released", () => t.hub.boundTenants() === 0, 2_000);
  await t.close();
});

test("bad requests: every bad field named before anything is read; a version ahead is failed_precondition", async () => {
  const t = await setup();
  const s = t.watch({
    objectType: ObjectType.UNSPECIFIED,
    afterVersion: -1n,
  });
  await until("the end", () => s.w.ended, 5_000);
  assert.equal(s.w.error?.code, Code.InvalidArgument);
  assert.deepEqual(fieldsOf(s.w.error).sort(), ["afterVersion", "objectType"]);
  const f = t.watch({ objectType: ObjectType.DEAL, filter: { node: { case: "condition", value: { field: "nope", operator: Operator.EQUALS, values: ["x"] } } } as Filter });
  await until("the end", () => f.w.ended, 5_000);
  assert.deepEqual(fieldsOf(f.w.error), ["filter.condition.field"]);
  assert.deepEqual(t.calls, [], "nothing was read");
  const ahead = t.watch({ objectType: ObjectType.DEAL, afterVersion: 3n });
  await until("the end", () => ahead.w.ended, 5_000);
  await expectCode(Promise.reject(ahead.w.error), Code.FailedPrecondition, /ahead/);
  await t.close();
});

function task(version: number, id: string, after: { assigneeId: string; done: boolean }, before?: { assigneeId: string; done: boolean }): RecordChange {
  const snap = (v: { assigneeId: string; done: boolean }) => ({ record: { case: "task" as const, value: { id, title: "Call Ann", ...v, links: [{ objectType: ObjectType.DEAL, id: "33333333-3333-4333-8333-333333333333" }] } } });
  return create(RecordChangeSchema, {
    version: BigInt(version),
    tenantId: TENANT,
    objectType: ObjectType.TASK,
    recordId: id,
    action: before ? ChangeAction.UPDATED : ChangeAction.CREATED,
    record: snap(after),
    previous: before ? snap(before) : undefined,
  });
}

test("tasks: \"my open tasks\" (assignee_id = me, done = false) sees a task enter, and leave when done; others' not", async () => {
  const t = await setup();
  const mine = (): Filter =>
    ({ node: { case: "and", value: { filters: [
      { node: { case: "condition", value: { field: "assignee_id", operator: Operator.EQUALS, values: ["me"] } } },
      { node: { case: "condition", value: { field: "done", operator: Operator.EQUALS, values: ["false"] } } },
    ] } } }) as Filter;
  const s = t.watch({ objectType: ObjectType.TASK, filter: mine() });
  const linked = t.watch({ objectType: ObjectType.TASK, filter: { node: { case: "condition", value: { field: "record_ids", operator: Operator.IN, values: ["33333333-3333-4333-8333-333333333333"] } } } as Filter });
  await s.live();
  await linked.live();
  const [a, b] = [randomUUID(), randomUUID()];
  const other = randomUUID();
  await t.commit(task(1, a, { assigneeId: USER, done: false })); // mine: enters
  await t.commit(task(2, b, { assigneeId: other, done: false })); // someone else's
  await t.commit(company(3)); // another object type
  await t.commit(task(4, a, { assigneeId: USER, done: true }, { assigneeId: USER, done: false })); // done: leaves
  await t.commit(task(5, b, { assigneeId: USER, done: false }, { assigneeId: other, done: false })); // handed to me: enters
  await s.count(3);
  await linked.count(4);
  assert.deepEqual(s.w.changes.map((c) => [Number(c.change!.version), c.inView]), [[1, true], [4, false], [5, true]]);
  assert.deepEqual(linked.versions(), [1, 2, 4, 5], "record_ids: the task's links");
  assert.equal(s.w.changes[0]!.change!.record?.record.case, "task");
  await s.close();
  await linked.close();
  await t.close();
});

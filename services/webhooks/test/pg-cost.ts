/**
 * PostgreSQL time per claim and per enqueue with a backlog like the bench's (issue 18): one
 * company, 51 endpoints taking every event, `EVENTS` record changes queued one EnqueueEventDB each,
 * then claims of 64 (4 per endpoint) settled in batches until the backlog is gone. Needs a
 * PostgreSQL with pg_stat_statements preloaded (TEST_DATABASE_URL); prints the statements' mean
 * times (track = all, so the statements inside crm_wh_claim are listed too).
 *   TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5499/postgres npx tsx --conditions=source services/webhooks/test/pg-cost.ts
 */
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { companyCreated, harness } from "./harness.js";
import { migratedDatabase } from "../../dbservice/test/helpers.js";

const EVENTS = Number(process.env.EVENTS ?? 1000);
/** Events per EnqueueEventsDB call; 0: one EnqueueEventDB call each. */
const BATCH = Number(process.env.BATCH ?? 0);
const m = await migratedDatabase(8);
await m.pool.query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements");
await m.pool.query(`ALTER DATABASE "${new URL(m.tdb.url).pathname.slice(1)}" SET pg_stat_statements.track = 'all'`);
const h = await harness({}, { workers: false, m });
const { companyId } = await h.tenant();
for (let i = 0; i < 51; i++)
  await m.pool.query("INSERT INTO wh_endpoints (company_id, url, event_types, secret) VALUES ($1, $2, '{*}', 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw')", [companyId, `http://127.0.0.1:${20000 + i}/hook`]);
const now = () => timestampFromDate(new Date());
const reset = () => m.pool.query("SELECT pg_stat_statements_reset()");
const report = async (label: string, wall: number, n: number) => {
  const { rows } = await m.pool.query<{ calls: string; mean: number; total: number; query: string }>(
    `SELECT calls, mean_exec_time AS mean, total_exec_time AS total, left(regexp_replace(query, '\\s+', ' ', 'g'), 110) AS query
       FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) ORDER BY total_exec_time DESC LIMIT 12`,
  );
  console.log(`\n== ${label}: ${n} calls, wall ${(wall / n).toFixed(2)} ms each`);
  for (const r of rows) console.log(`${String(r.calls).padStart(7)} ${r.mean.toFixed(3).padStart(8)} ms ${(r.total / n).toFixed(3).padStart(8)} ms/call  ${r.query}`);
};
await reset();
let t = performance.now();
const events = Array.from({ length: EVENTS }, (_, i) => companyCreated(companyId, BigInt(i + 1)).payload);
if (BATCH > 0) {
  for (let i = 0; i < EVENTS; i += BATCH) await h.store.enqueueEventsDB({ events: events.slice(i, i + BATCH).map((recordChange) => ({ recordChange })), now: now() });
} else for (const recordChange of events) await h.store.enqueueEventDB({ recordChange, now: now() });
await report(`enqueue ${EVENTS} events (batch ${BATCH || 1}) × 51 endpoints`, performance.now() - t, EVENTS);
await m.pool.query("ANALYZE wh_deliveries");
if (process.env.EXPLAIN) {
  const ep = (await m.pool.query<{ id: string }>("SELECT id FROM wh_endpoints LIMIT 1")).rows[0]!.id;
  await m.pool.query("UPDATE wh_deliveries SET lease = gen_random_uuid(), lease_until = now() + interval '1 min' WHERE id IN (SELECT id FROM wh_deliveries WHERE endpoint_id = $1 ORDER BY next_at LIMIT 4)", [ep]);
  for (const [label, q, args] of [
    ["candidates", "SELECT en.id, en.ordered FROM wh_endpoints en WHERE en.active AND en.id IN (SELECT DISTINCT d.endpoint_id FROM wh_deliveries d WHERE d.status = 'pending' AND d.next_at <= now() AND (d.lease_until IS NULL OR d.lease_until <= now()) LIMIT 1000) ORDER BY random() FOR UPDATE OF en SKIP LOCKED", []],
    ["slots", "SELECT count(*) FROM wh_deliveries d WHERE d.endpoint_id = $1 AND d.status = 'pending' AND d.lease_until > now()", [ep]],
    ["lease", "SELECT o.id FROM wh_deliveries o WHERE o.endpoint_id = $1 AND o.status = 'pending' AND o.next_at <= now() AND (o.lease_until IS NULL OR o.lease_until <= now()) ORDER BY o.next_at LIMIT 4 FOR UPDATE SKIP LOCKED", [ep]],
    ["return", "SELECT d.id FROM wh_deliveries d JOIN wh_endpoints en ON en.id = d.endpoint_id WHERE d.lease = gen_random_uuid()", []],
    ["update", "UPDATE wh_deliveries d SET lease = gen_random_uuid(), lease_until = now() + interval '1 min' WHERE d.id IN (SELECT o.id FROM wh_deliveries o WHERE o.endpoint_id = $1 AND o.status = 'pending' AND o.next_at <= now() AND (o.lease_until IS NULL OR o.lease_until <= now()) ORDER BY o.next_at LIMIT 4 FOR UPDATE SKIP LOCKED) RETURNING d.id", [ep]],
  ] as const) {
    const { rows } = await m.pool.query(`EXPLAIN (ANALYZE, BUFFERS) ${q}`, [...args]);
    console.log(`\n-- ${label}\n` + rows.map((r: Record<string, string>) => r["QUERY PLAN"]).join("\n"));
  }
}
await reset();
t = performance.now();
let claims = 0;
let leased = 0;
for (;;) {
  const { deliveries } = await h.store.claimDeliveriesDB({ limit: 64, perEndpoint: 4, leaseMs: 25_000, now: now() });
  claims++;
  if (deliveries.length === 0) break;
  leased += deliveries.length;
  await h.store.completeDeliveriesDB({ deliveries: deliveries.map((d) => ({ companyId: d.companyId, deliveryId: d.deliveryId, lease: d.lease, succeeded: true, attempt: { attemptTime: now(), httpStatus: 200 }, now: now() })) });
  if (claims >= Number(process.env.CLAIMS ?? 100)) break;
}
await report(`claim 64 + settle, ${leased} deliveries`, performance.now() - t, claims);
const pending = await m.pool.query("SELECT count(*) FROM wh_deliveries WHERE status = 'pending'");
console.log("pending left", pending.rows[0]);
await h.close();

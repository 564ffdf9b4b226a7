/**
 * 16. The CRM at size: 1,000,000 deals and 1,000,000 people (and 100,000 companies) in one tenant,
 * ten small tenants beside it (1,000 of each), through the gateway (TLS, JWT at NGINX, records →
 * dbservice over mTLS, PostgreSQL with row-level security):
 *
 * - ListDeals, first page of 50 with a filter and a sort (open EUR deals over 10,000.00, biggest
 *   first: the README's example). Floor: pgbench running the SQL the store runs for that request
 *   (taken from the store itself: `runList` on a recording connection), in the same tenant
 *   transaction (BEGIN, SET LOCAL ROLE crm_app, tenant, acting user and role), on as many
 *   connections as dbservice's pool;
 * - SearchService/Search (a common name, a typo, a number prefix). Floor: pgbench running the
 *   store's search statement (`searchRecords`) the same way;
 * - CreateDeal, UpdateDeal, MoveDeal at 1,000 req/s (open loop, every request its own values: an
 *   UpdateDeal that changes nothing writes nothing). Floor: pgbench bumping the tenant's version
 *   row alone (rec_versions: every write of a tenant takes that row's lock until COMMIT, so it is
 *   the tenant's write ceiling).
 *
 * The generated database is kept between runs (generating takes minutes): BENCH_RECORDS_DB names
 * it (default crm_bench_records; crm_bench_records_quick with --quick, a thousandth of the rows).
 * The scenario creates it when missing (migrations by dbservice, tenants registered through the
 * API, rows by services/records/demo/bulk.ts's COPY generator) and drops and redoes it when a
 * generation was interrupted. `BENCH_RECORDS_DB=… npm run bench -- records` after dropping it
 * regenerates.
 */
import { readFileSync } from "node:fs";
import pg from "pg";
import { createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { DealService } from "@crm/gen/crm/records/v1/deal_pb";
import { Operator, type Filter } from "@crm/gen/crm/records/v1/common_pb";
import { TEST_PG_URL, unreachable } from "@crm/testkit";
import { generate } from "../../services/records/demo/bulk.js";
import { dealList } from "../../services/records/store/deals.js";
import { runList } from "../../services/records/store/lists.js";
import { searchRecords } from "../../services/records/store/search.js";
import { checkSearch } from "../../services/records/src/rules.js";
import { migrationDirs } from "../../services/dbservice/src/migrate.js";
import { nginxProblem } from "../../services/gateway/run.mjs";
import { connectJson, trustCa } from "../lib/app.js";
import { clusterLib, clusterProblem, startBenchCluster, type BenchCluster } from "../lib/cluster.js";
import { benchPassword, registerOwner, uniqueTag } from "../lib/crm.js";
import { combine, h2load, h2loadProblem, type LoadResult } from "../lib/h2load.js";
import { pgbench, pgbenchProblem } from "../lib/pgbench.js";
import { dbNameOf, mb, postgresBackends, sampleAll, trackCpu } from "../lib/proc.js";
import type { Check, Ctx, Row, Scenario } from "../lib/report.js";
import { latency } from "../lib/stats.js";

const poolMax = 10; // dbservice's DB_POOL_MAX default
const writeRate = 1_000; // req/s of the issue's target

export interface Tenant {
  email: string;
  companyId: string;
  userId: string;
  pipelineId: string;
}
export interface BenchData {
  url: string;
  big: Tenant;
  small: Tenant[];
  counts: { companies: number; people: number; deals: number };
}

/** The database's name (BENCH_RECORDS_DB) and URL on the test server. */
export function benchDbUrl(quick: boolean): string {
  const name = process.env.BENCH_RECORDS_DB ?? (quick ? "crm_bench_records_quick" : "crm_bench_records");
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(name)) throw new Error(`BENCH_RECORDS_DB must be a plain lower-case database name, not ${JSON.stringify(name)}`);
  const u = new URL(TEST_PG_URL);
  u.pathname = `/${name}`;
  return u.toString();
}

async function readMeta(url: string): Promise<BenchData | undefined> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    const { rows } = await c.query<{ value: BenchData }>("SELECT value FROM bench_records_meta WHERE key = 'data'").catch(() => ({ rows: [] as { value: BenchData }[] }));
    return rows[0]?.value;
  } finally {
    await c.end();
  }
}

async function dropDb(url: string) {
  const admin = new pg.Client({ connectionString: TEST_PG_URL });
  await admin.connect();
  try {
    await admin.query(`DROP DATABASE IF EXISTS "${dbNameOf(url)}" WITH (FORCE)`);
  } finally {
    await admin.end();
  }
}

/**
 * The generated database: made when missing (through a running cluster's API and the COPY
 * generator), read from its bench_records_meta table when present.
 */
export async function ensureBenchData(ctx: Ctx, baseUrl: string, url: string): Promise<BenchData> {
  const found = await readMeta(url);
  if (found) return found;
  const counts = ctx.quick ? { companies: 100, people: 1_000, deals: 1_000 } : { companies: 100_000, people: 1_000_000, deals: 1_000_000 };
  const small = ctx.quick ? { companies: 10, people: 100, deals: 100 } : { companies: 100, people: 1_000, deals: 1_000 };
  ctx.log(`generating ${dbNameOf(url)}: ${counts.deals} deals, ${counts.people} people, ${counts.companies} companies in one tenant, 10 small tenants (kept for later runs)`);
  const tenants: Tenant[] = [];
  for (let i = 0; i < 11; i++) {
    const o = await registerOwner(baseUrl, `${i ? "small" : "big"}${uniqueTag()}`);
    const n = i ? small : counts;
    const r = await generate({ databaseUrl: url, companyId: o.companyId, ...n, log: (l) => ctx.log(`  tenant ${i}: ${l}`) });
    ctx.log(`  tenant ${i}: ${r.seconds} s`);
    tenants.push({ email: o.email, companyId: o.companyId, userId: o.userId, pipelineId: r.pipelineId });
  }
  const data: BenchData = { url, big: tenants[0]!, small: tenants.slice(1), counts };
  const db = new pg.Client({ connectionString: url });
  await db.connect();
  try {
    await db.query("VACUUM (ANALYZE)"); // visibility map and statistics, as after autovacuum on a live system
    await db.query("CREATE TABLE bench_records_meta (key text PRIMARY KEY, value jsonb NOT NULL)");
    await db.query("INSERT INTO bench_records_meta VALUES ('data', $1)", [JSON.stringify(data)]);
  } finally {
    await db.end();
  }
  return data;
}

/**
 * The kept database's URL, ready for dbservice to start on: created (empty) when missing or left
 * half-generated, else brought up to date with the migrations added since.
 */
export async function keptDatabase(ctx: Ctx): Promise<string> {
  const url = benchDbUrl(ctx.quick);
  const { ensureDatabase } = await clusterLib();
  // A database without the meta row was left by an interrupted generation: start again.
  const existing = await readMeta(url).catch(() => undefined);
  if (!existing) await dropDb(url);
  await ensureDatabase(url);
  if (existing) await catchUpMigrations(url);
  return url;
}

/** The cluster (dbservice, auth, records, logs behind NGINX) on the generated database, generating it first when missing. */
export async function startRecordsCluster(ctx: Ctx): Promise<{ bc: BenchCluster; data: BenchData }> {
  const url = await keptDatabase(ctx);
  const bc = await startBenchCluster({ only: ["dbservice", "auth", "records", "logs"], databaseUrl: url, serviceEnv: { dbservice: { DB_POOL_MAX: String(poolMax), DB_CONNECT_TIMEOUT_MS: "15000" } } });
  try {
    trustCa(readFileSync(bc.cluster.pki.ca));
    const data = await ensureBenchData(ctx, bc.cluster.gatewayUrl, url);
    return { bc, data };
  } catch (err) {
    await bc.stop();
    throw err;
  }
}

/**
 * A kept database may lack migrations added since it was made, some numbered below ones it has
 * (helpers land migrations out of order): dbservice refuses that (checkOrder), so they are applied
 * here first, in name order, without the order check. A fresh database never needs this.
 */
async function catchUpMigrations(url: string) {
  const { runner } = await import("node-pg-migrate");
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    // Rows renumbered below (or added by hand) may be ahead of the id sequence: the runner's INSERT would collide.
    await c.query("SELECT setval(pg_get_serial_sequence('crm_migrations', 'id'), (SELECT max(id) FROM crm_migrations))");
    await runner({
      dbClient: c, dir: migrationDirs.map((d) => `${d}/*.sql`), useGlob: true, direction: "up", migrationsTable: "crm_migrations",
      singleTransaction: true, checkOrder: false, log: () => {},
    });
    // Recorded as if run in name order, which is what dbservice's order check compares.
    await c.query(`WITH o AS (SELECT id, row_number() OVER (ORDER BY name) AS rn FROM crm_migrations) UPDATE crm_migrations m SET id = -o.rn FROM o WHERE m.id = o.id`);
    await c.query(`UPDATE crm_migrations SET id = -id, run_on = timestamp '2000-01-01' + (-id) * interval '1 second'`);
  } finally {
    await c.end();
  }
}

export async function login(baseUrl: string, email: string): Promise<string> {
  const r = await connectJson<{ accessToken: string }>(baseUrl, "crm.auth.v1.AuthService/Login", { email, password: benchPassword });
  return r.accessToken;
}

/** The tenant transaction's start as dbservice sends it (services/dbservice/src/db.ts begin()). */
function beginSql(t: Tenant): string {
  return [
    "BEGIN;",
    "SET LOCAL ROLE crm_app;",
    `SELECT set_config('app.company_id', '${t.companyId}', true);`,
    `SELECT set_config('app.user_id', '${t.userId}', true), set_config('app.role', coalesce((SELECT role FROM users WHERE id = '${t.userId}' AND status = 'active'), ''), true) AS role;`,
  ].join("\n");
}

/** A parameter as an SQL literal (the statements cast every parameter: $1::uuid). */
function literal(c: pg.Client, v: unknown): string {
  if (v === null || v === undefined) return "NULL";
  if (Array.isArray(v)) return c.escapeLiteral(`{${v.map((x) => `"${String(x).replace(/["\\]/g, (m) => `\\${m}`)}"`).join(",")}}`);
  return c.escapeLiteral(String(v));
}

/**
 * The statements the store runs for `fn`, taken from the store's own code on a real connection in
 * the tenant's transaction (rolled back), as one pgbench script with the parameters inlined.
 */
async function storeSql(url: string, t: Tenant, fn: (sql: pg.PoolClient) => Promise<unknown>): Promise<{ script: string; statements: string[] }> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  const statements: string[] = [];
  try {
    await c.query(beginSql(t));
    const query = c.query.bind(c) as (text: string, params?: unknown[]) => Promise<pg.QueryResult>;
    const recording = {
      query: (text: string, params: unknown[] = []) => {
        statements.push(text.replace(/\$(\d+)/g, (_, i: string) => literal(c, params[Number(i) - 1])));
        return query(text, params);
      },
      escapeLiteral: (s: string) => c.escapeLiteral(s),
    } as unknown as pg.PoolClient;
    await fn(recording);
  } finally {
    await c.query("ROLLBACK").catch(() => {});
    await c.end();
  }
  return { script: `${beginSql(t)}\n${statements.map((s) => `${s.replace(/--[^\n]*/g, "").replace(/\s*\n\s*/g, " ")};`).join("\n")}\nCOMMIT;\n`, statements };
}

const cond = (field: string, operator: Operator, ...values: string[]) => ({ node: { case: "condition" as const, value: { field, operator, values } } });
/** Open EUR deals over 10,000.00, biggest first (bench/README.md, services/records/README.md). */
const listFilter = { node: { case: "and" as const, value: { filters: [cond("status", Operator.EQUALS, "open"), cond("amount_minor", Operator.GREATER_THAN, "1000000"), cond("currency_code", Operator.EQUALS, "EUR")] } } };
const listOrder = "amount_minor desc";
/** The same filter as Connect JSON. */
const listJson = {
  filter: { and: { filters: [
    { condition: { field: "status", operator: "OPERATOR_EQUALS", values: ["open"] } },
    { condition: { field: "amount_minor", operator: "OPERATOR_GREATER_THAN", values: ["1000000"] } },
    { condition: { field: "currency_code", operator: "OPERATOR_EQUALS", values: ["EUR"] } },
  ] } },
  orderBy: listOrder,
  pageSize: 50,
};
/** A common name (tens of thousands of matches), a typo, a number prefix. */
const searchQueries = ["Elena Petrov", "okafr", "deal 42"];

interface WriteResult extends LoadResult {
  skipped: number;
  errorSamples: string[];
}

/**
 * Open loop from this process: `rate` requests/s started on schedule whatever the answers'
 * latency (at most `maxInFlight` outstanding: more are counted as skipped), for `seconds`.
 */
async function openLoop(o: { rate: number; seconds: number; maxInFlight: number; call: (i: number) => Promise<unknown> }): Promise<WriteResult> {
  const times: number[] = [];
  const errorSamples: string[] = [];
  let errors = 0;
  let skipped = 0;
  let inFlight = 0;
  let issued = 0;
  const total = Math.round(o.rate * o.seconds);
  const pending: Promise<void>[] = [];
  const t0 = performance.now();
  while (issued < total) {
    const due = Math.min(total, Math.floor(((performance.now() - t0) / 1000) * o.rate));
    for (; issued < due; issued++) {
      if (inFlight >= o.maxInFlight) {
        skipped++;
        continue;
      }
      const i = issued;
      inFlight++;
      const s = performance.now();
      pending.push(
        o.call(i).then(
          () => void times.push(performance.now() - s),
          (err: unknown) => {
            errors++;
            if (errorSamples.length < 3) errorSamples.push(String((err as Error)?.message ?? err).slice(0, 200));
          },
        ).finally(() => inFlight--),
      );
    }
    await new Promise((r) => setTimeout(r, 2));
  }
  await Promise.all(pending);
  const seconds = (performance.now() - t0) / 1000;
  return { tool: `node open loop ${o.rate}/s (connect-node, HTTP/2)`, requests: times.length + errors + skipped, ok: times.length, errors: errors + skipped, seconds, rps: times.length / seconds, ...latency(times), statuses: {}, samplesMs: times, skipped, errorSamples };
}

export const records: Scenario = {
  name: "records",
  title: "The CRM at 1M deals + 1M people: first list page, search, CreateDeal/UpdateDeal/MoveDeal through the gateway vs pgbench on the same SQL",
  async missing() {
    return clusterProblem() ?? nginxProblem() ?? h2loadProblem() ?? pgbenchProblem() ?? (await unreachable("postgres", "redis", "rabbitmq"));
  },
  async run(ctx: Ctx) {
    const rows: Row[] = [];
    const checks: Check[] = [];
    const notes: string[] = [];
    const rounds = ctx.quick ? 1 : 2;
    // Calls per round and variant (BENCH_RECORDS_CALLS); a search costs ~20 list pages at 1M records, so it gets a fifth of them.
    const n = ctx.quick ? 200 : Number(process.env.BENCH_RECORDS_CALLS ?? 2_000);
    const { bc, data } = await startRecordsCluster(ctx);
    try {
      const gw = bc.cluster.gatewayUrl;
      const big = data.big;
      const token = await login(gw, big.email);
      const serverPids = () => [...Object.values(bc.pids), ...bc.nginxPids()];
      const pgPids = () => postgresBackends(dbNameOf(data.url));

      // --- the list page and search: the service through the gateway, pgbench on the store's SQL.
      const first = await connectJson<{ deals: { amountMinor: string; currencyCode: string; status: string }[]; totalSize: string }>(gw, "crm.records.v1.DealService/ListDeals", listJson, token);
      if (first.deals.length !== 50 || first.deals.some((d) => d.currencyCode !== "EUR" || d.status !== "DEAL_STATUS_OPEN" || BigInt(d.amountMinor) <= 1_000_000n)) throw new Error(`ListDeals answered ${first.deals.length} deals, not 50 open EUR deals over 1000000: ${JSON.stringify(first.deals[0])}`);
      for (let i = 1; i < first.deals.length; i++) if (BigInt(first.deals[i]!.amountMinor) > BigInt(first.deals[i - 1]!.amountMinor)) throw new Error("ListDeals did not sort by amount, biggest first");
      for (const q of searchQueries) {
        const s = await connectJson<{ results?: unknown[] }>(gw, "crm.records.v1.SearchService/Search", { query: q }, token);
        if (!s.results?.length) throw new Error(`Search ${JSON.stringify(q)} found nothing`);
      }
      const listReq = { filter: listFilter as unknown as Filter, orderBy: listOrder, pageSize: 50, pageToken: "", showDeleted: false, exactTotal: false };
      const list = await storeSql(data.url, big, (sql) => runList(sql, dealList, listReq));
      const searches: { script: string; statements: string[] }[] = [];
      for (const q of searchQueries) {
        const v: never[] = [];
        const input = checkSearch({ query: q, objectTypes: [], pageSize: 0 }, v);
        searches.push(await storeSql(data.url, big, (sql) => searchRecords(sql, input)));
      }
      // EXPLAIN ANALYZE of the list statement, as the app role in the tenant: where the time goes.
      const explain = await explainAnalyze(data.url, big, list.statements[0]!);
      notes.push(`ListDeals plan (EXPLAIN ANALYZE, crm_app in the tenant): ${explain}`);

      const headers = { "content-type": "application/json", "connect-protocol-version": "1", authorization: `Bearer ${token}` };
      const h2 = (method: string, body: unknown, requests: number) =>
        h2load({ url: `${gw}/crm.records.v1.${method}`, requests, clients: 4, streams: 4, headers, body: JSON.stringify(body), timeoutMs: 300_000 });
      const variants: { label: string; floor?: boolean; share: number; run: (k: number) => Promise<LoadResult> }[] = [
        { label: "pgbench: the store's ListDeals SQL (first page, filter, sort) in the tenant transaction", floor: true, share: 1, run: (k) => pgbench({ url: data.url, scripts: [list.script], clients: poolMax, threads: 2, mode: "simple", transactions: Math.ceil(k / poolMax), timeoutMs: 300_000 }) },
        { label: "ListDeals first page through the gateway", share: 1, run: (k) => h2("DealService/ListDeals", listJson, k) },
        { label: "pgbench: the store's Search SQL in the tenant transaction", floor: true, share: 0.2, run: (k) => pgbench({ url: data.url, scripts: searches.map((s) => s.script), clients: poolMax, threads: 2, mode: "simple", transactions: Math.ceil(k / poolMax), timeoutMs: 300_000 }) },
        {
          label: "Search through the gateway",
          share: 0.2,
          run: async (k) => {
            // The queries in turn, each with the list's 16 in flight.
            const rs: LoadResult[] = [];
            for (const q of searchQueries) rs.push(await h2("SearchService/Search", { query: q }, Math.ceil(k / searchQueries.length)));
            return combine(rs);
          },
        },
      ];
      // Warm-up: caches, plans, connections.
      for (const v of variants) await v.run(Math.ceil((ctx.quick ? 50 : 300) * v.share));
      // Each server process's CPU on its own (NGINX's workers together), to say where a call's goes.
      const byProcess = (): Record<string, number> => ({ ...Object.fromEntries(Object.entries(bc.pids).map(([k, pid]) => [k, sampleAll([pid]).cpuMs])), nginx: sampleAll(bc.nginxPids()).cpuMs });
      const acc = new Map<string, { loads: LoadResult[]; cpu: number; pg: number; split: Record<string, number> }>();
      for (let round = 0; round < rounds; round++) {
        for (const v of variants) {
          const s0 = sampleAll(serverPids()).cpuMs;
          const p0 = byProcess();
          const pgT = trackCpu(pgPids);
          const r = await v.run(Math.ceil(n * v.share));
          const a = acc.get(v.label) ?? { loads: [], cpu: 0, pg: 0, split: {} };
          a.loads.push(r);
          a.cpu += sampleAll(serverPids()).cpuMs - s0;
          for (const [k, ms] of Object.entries(byProcess())) a.split[k] = (a.split[k] ?? 0) + ms - (p0[k] ?? 0);
          a.pg += pgT.stop();
          acc.set(v.label, a);
        }
      }
      const results = new Map<string, LoadResult>();
      for (const v of variants) {
        const a = acc.get(v.label)!;
        const r = combine(a.loads);
        results.set(v.label, r);
        rows.push({
          label: v.label, floor: v.floor, tool: r.tool, requests: r.requests, errors: r.errors, rps: r.rps, p50Ms: r.p50Ms, p99Ms: r.p99Ms,
          cpuMsPerReq: v.floor ? undefined : a.cpu / r.ok, rssMB: v.floor ? undefined : mb(sampleAll(Object.values(bc.pids)).rssBytes),
          note: `PostgreSQL ${(a.pg / r.ok).toFixed(3)} CPU ms/req`,
        });
        if (!v.floor) notes.push(`${v.label}, server CPU ms/req by process: ${Object.entries(a.split).sort((x, y) => y[1] - x[1]).map(([k, ms]) => `${k} ${(ms / r.ok).toFixed(2)}`).join(", ")}`);
        ctx.log(`${v.label}: ${r.rps.toFixed(0)} req/s p50 ${r.p50Ms.toFixed(1)} p99 ${r.p99Ms.toFixed(1)} ms`);
        if (r.errors) notes.push(`${v.label}: ${r.errors} failed (statuses ${JSON.stringify(r.statuses)})`);
      }
      const [fl, li, fs, se] = variants.map((v) => results.get(v.label)!) as [LoadResult, LoadResult, LoadResult, LoadResult];
      checks.push(
        { label: "ListDeals first page of 50 (filter + sort) through the gateway, p99", value: li.p99Ms, unit: "ms", target: "≤ 20 ms", met: li.p99Ms <= 20 && li.errors === 0 },
        { label: "ListDeals p99 ÷ pgbench p99 on the same SQL", value: li.p99Ms / fl.p99Ms, unit: "×", target: "≤ 3", met: li.p99Ms / fl.p99Ms <= 3 },
        { label: "ListDeals p50 ÷ pgbench p50 on the same SQL", value: li.p50Ms / fl.p50Ms, unit: "×", target: "informational" },
        { label: "Search through the gateway, p99", value: se.p99Ms, unit: "ms", target: "≤ 30 ms", met: se.p99Ms <= 30 && se.errors === 0 },
        { label: "Search p99 ÷ pgbench p99 on the same SQL", value: se.p99Ms / fs.p99Ms, unit: "×", target: "informational" },
      );

      // --- writes: open loop at 1,000 req/s, each request its own values.
      const ca = readFileSync(bc.cluster.pki.ca);
      const auth: Interceptor = (next) => (req) => {
        req.header.set("authorization", `Bearer ${token}`);
        return next(req);
      };
      const transports = Array.from({ length: 4 }, () => createConnectTransport({ baseUrl: gw, httpVersion: "2", useBinaryFormat: true, nodeOptions: { ca }, interceptors: [auth] }));
      const clients: Client<typeof DealService>[] = transports.map((t) => createClient(DealService, t));
      const dealsOf = (i: number) => clients[i % clients.length]!;
      const { rows: stages } = await withDb(data.url, (c) => c.query<{ id: string }>("SELECT id FROM rec_stages WHERE pipeline_id = $1 AND kind = 'open' ORDER BY sort_order", [big.pipelineId]));
      const openStages = stages.rows.map((s) => s.id);
      // Deals to update and move: the newest open deals of the big tenant's bench pipeline, one per slot.
      const { rows: targets } = await withDb(data.url, (c) => c.query<{ id: string }>("SELECT id FROM rec_deals WHERE company_id = $1 AND pipeline_id = $2 AND status = 'open' AND deleted_at IS NULL ORDER BY created_at DESC LIMIT 2000", [big.companyId, big.pipelineId]));
      const ids = targets.rows.map((r) => r.id);
      const run = uniqueTag();
      const writes: { name: string; call: (i: number) => Promise<unknown> }[] = [
        { name: "CreateDeal", call: (i) => dealsOf(i).createDeal({ deal: { name: `Bench ${run} ${i}`, stageId: openStages[i % openStages.length]!, amountMinor: BigInt(1000 + i), currencyCode: "EUR" } }) },
        { name: "UpdateDeal", call: (i) => dealsOf(i).updateDeal({ deal: { id: ids[i % ids.length]!, amountMinor: BigInt(100_000 + i) }, updateMask: { paths: ["amount_minor"] } }) },
        { name: "MoveDeal", call: (i) => dealsOf(i).moveDeal({ id: ids[(i * 7) % ids.length]!, stageId: openStages[i % openStages.length]!, top: i % 2 === 0 }) },
      ];
      const verScript = `${beginSql(big)}\nINSERT INTO rec_versions AS v (company_id, version) VALUES ('${big.companyId}', 1) ON CONFLICT (company_id) DO UPDATE SET version = v.version + excluded.version RETURNING v.version, now() AS at;\nCOMMIT;\n`;
      const seconds = ctx.quick ? 2 : 10;
      for (const w of writes) {
        await openLoop({ rate: writeRate / 5, seconds: ctx.quick ? 1 : 2, maxInFlight: 900, call: (i) => w.call(1_000_000 + i) }); // warm-up
      }
      const floorV = await pgbench({ url: data.url, scripts: [verScript], clients: poolMax, threads: 2, mode: "simple", transactions: Math.ceil((writeRate * seconds) / poolMax), timeoutMs: 300_000 });
      rows.push({ label: "pgbench: the tenant's version bump alone (every write's serialising row lock)", floor: true, tool: floorV.tool, requests: floorV.requests, errors: floorV.errors, rps: floorV.rps, p50Ms: floorV.p50Ms, p99Ms: floorV.p99Ms });
      let offset = 0;
      for (const w of writes) {
        const s0 = sampleAll(serverPids()).cpuMs;
        const pgT = trackCpu(pgPids);
        const base = (offset += 100_000);
        const r = await openLoop({ rate: writeRate, seconds, maxInFlight: 900, call: (i) => w.call(base + i) });
        const cpu = sampleAll(serverPids()).cpuMs - s0;
        const pgCpu = pgT.stop();
        rows.push({ label: `${w.name} at ${writeRate} req/s (open loop) through the gateway`, tool: r.tool, requests: r.requests, errors: r.errors, rps: r.rps, p50Ms: r.p50Ms, p99Ms: r.p99Ms, cpuMsPerReq: r.ok ? cpu / r.ok : undefined, note: `PostgreSQL ${(pgCpu / Math.max(1, r.ok)).toFixed(3)} CPU ms/req; ${r.skipped} skipped (900 in flight)` });
        ctx.log(`${w.name}: ${r.rps.toFixed(0)} req/s p50 ${r.p50Ms.toFixed(1)} p99 ${r.p99Ms.toFixed(1)} ms, ${r.errors} failed`);
        if (r.errorSamples.length) notes.push(`${w.name} errors: ${r.errorSamples.join(" | ")}`);
        checks.push(
          { label: `${w.name} through the gateway at ${writeRate} req/s: served`, value: r.rps, unit: "req/s", target: `≥ ${writeRate} (open loop: ≥ 98 % of the offered rate, none failed)`, met: r.rps >= writeRate * 0.98 && r.errors === 0 },
          { label: `${w.name} through the gateway at ${writeRate} req/s: p99`, value: r.p99Ms, unit: "ms", target: "≤ 50 ms", met: r.p99Ms <= 50 && r.errors === 0 },
          { label: `${w.name} served ÷ pgbench version-bump throughput`, value: r.rps / floorV.rps, unit: "×", target: "informational" },
        );
      }
      notes.push(
        `data: ${data.counts.deals} deals, ${data.counts.people} people, ${data.counts.companies} companies in one tenant, 10 tenants of ${ctx.quick ? 100 : 1000} beside it; database ${dbNameOf(data.url)} (kept; BENCH_RECORDS_DB)`,
        `reads: ${rounds} rounds × ${n} calls per list variant and ${Math.ceil(n * 0.2)} per search variant, service and pgbench taking turns; h2load over TLS, 4 connections × 4 streams, Connect JSON; pgbench on ${poolMax} connections (dbservice's DB_POOL_MAX), -M simple, the parameters inlined as literals (the store sends them as parameters of unnamed statements: custom plans either way)`,
        `writes: ${seconds} s at ${writeRate} req/s each after a 2 s warm-up at a fifth of it, from this process (connect-node, 4 HTTP/2 TLS connections, binary Connect); UpdateDeal changes amount_minor of one of ${ids.length} open deals, MoveDeal moves one of them into one of the ${openStages.length} open stages (top or end), CreateDeal adds to one of them`,
        "cluster: dbservice, auth, records, logs, each its own process (from source, mTLS) behind NGINX; server CPU = NGINX + those processes; dbservice's DB_CONNECT_TIMEOUT_MS 15 s (opening a connection took over the 2 s default on the loaded box)",
      );
    } finally {
      await bc.stop();
    }
    return { rows, checks, notes };
  },
};

async function withDb<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<{ rows: T }> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return { rows: await fn(c) };
  } finally {
    await c.end();
  }
}

/** EXPLAIN (ANALYZE) of a statement as the app role in the tenant: its plan, one line. */
export async function explainAnalyze(url: string, t: Tenant, statement: string): Promise<string> {
  const { rows } = await withDb(url, async (c) => {
    await c.query(beginSql(t));
    try {
      return (await c.query<{ "QUERY PLAN": string }>(`EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) ${statement}`)).rows;
    } finally {
      await c.query("ROLLBACK");
    }
  });
  return rows.map((r) => r["QUERY PLAN"].trim()).filter((l) => !/^(Planning|Buffers: shared hit=\d+$)/.test(l)).slice(0, 14).join(" · ");
}

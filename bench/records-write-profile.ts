/**
 * Issue 16, the writes: where a deal write's PostgreSQL time goes, statement by statement.
 *
 *   node --import tsx bench/records-write-profile.ts [DATABASE_URL] [WRITES]
 *
 * On a records bench database (bench_records_meta: `npm run bench -- records` makes it; default
 * crm_bench_records on the test server), WRITES (default 200) CreateDeal, UpdateDeal and MoveDeal
 * in the big tenant, one after another on ONE connection, through the store's own code (deals.ts,
 * changes.ts) in dbservice's transaction (db.tenant: crm_app, the tenant, the acting owner). For
 * every statement (round trip) it adds up the wall time and the CPU the PostgreSQL backend spent
 * on it (/proc/<backend pid>/schedstat, nanoseconds: the database must run on this machine), and
 * prints per write kind: round trips per write, PostgreSQL CPU per write, and each statement's
 * share, costliest first. It writes real deals (named "Prof …") into the database.
 */
import { readFileSync } from "node:fs";
import pg from "pg";
import { createDb } from "@crm/dbservice/db";
import { createDeal, updateDeal, moveDeal } from "../services/records/store/deals.js";
import { publishChanges } from "../services/records/store/changes.js";
import { recordReaders } from "../services/records/store/readers.js";
import type { Acting } from "../services/records/store/acting.js";
import { benchDbUrl } from "./scenarios/records.js";
import { create } from "@bufbuild/protobuf";
import { DealSchema, MoveDealRequestSchema } from "@crm/gen/crm/records/v1/deal_pb";

const url = process.argv[2] ?? benchDbUrl(false);
const n = Number(process.argv[3] ?? 200);
const pool = new pg.Pool({ connectionString: url, max: 1 });
const db = createDb(pool);
const meta = (await pool.query("SELECT value FROM bench_records_meta WHERE key = 'data'")).rows[0].value;
const t = meta.big;
const pid = (await pool.query("SELECT pg_backend_pid() AS p")).rows[0].p as number;
const cpu = () => Number(readFileSync(`/proc/${pid}/schedstat`, "utf8").split(" ")[0]) / 1e6;
const stats = new Map<string, { n: number; wall: number; cpu: number }>();
let current = "";
const shape = (text: string) => text.replace(/'[^']*'/g, "?").replace(/\b\d+\b/g, "N").replace(/\s+/g, " ").slice(0, 90);
const origQuery = pg.Client.prototype.query;
(pg.Client.prototype as any).query = function (this: pg.Client, ...args: any[]) {
  const text = typeof args[0] === "string" ? args[0] : args[0].text;
  const c0 = cpu(), w0 = performance.now();
  const p = (origQuery as any).apply(this, args);
  if (!p || typeof p.then !== "function") return p;
  return p.then((r: unknown) => {
    const k = `${current} | ${shape(text)}`;
    const s = stats.get(k) ?? { n: 0, wall: 0, cpu: 0 };
    s.n++; s.wall += performance.now() - w0; s.cpu += cpu() - c0;
    stats.set(k, s);
    return r;
  });
};
const stages = (await pool.query("SELECT id FROM rec_stages s WHERE company_id = $1 AND kind = 'open' AND pipeline_id = $2 ORDER BY sort_order", [t.companyId, t.pipelineId])).rows.map((r) => r.id as string);
const ids = (await pool.query("SELECT id FROM rec_deals WHERE company_id = $1 AND status = 'open' AND deleted_at IS NULL LIMIT 2000", [t.companyId])).rows.map((r) => r.id as string);
const tx = (fn: (sql: pg.PoolClient, a: Acting) => Promise<unknown>) =>
  db.tenant(t.companyId, async (sql, start) => {
    const a: Acting = { companyId: t.companyId, userId: t.userId, role: start.role as "owner", pending: [] };
    await fn(sql, a);
    await publishChanges(db, sql, a, recordReaders, start.at);
  }, { actingUser: t.userId });
const run = Date.now().toString(36);
const totals = new Map<string, { cpu: number; wall: number }>();
for (const [name, call] of [
  ["CreateDeal", (i: number) => tx((sql, a) => createDeal(sql, a, create(DealSchema, { name: `Prof ${run} ${i}`, stageId: stages[i % stages.length]!, amountMinor: BigInt(1000 + i), currencyCode: "EUR" })))],
  ["UpdateDeal", (i: number) => tx((sql, a) => updateDeal(sql, a, ids[i % ids.length]!, create(DealSchema, { amountMinor: BigInt(100_000 + i + Date.now() % 1000) }), ["amount_minor"], undefined))],
  ["MoveDeal", (i: number) => tx((sql, a) => moveDeal(sql, a, create(MoveDealRequestSchema, { id: ids[(i * 7) % ids.length]!, stageId: stages[i % stages.length]!, top: i % 2 === 0 })))],
] as const) {
  current = name;
  for (let i = 0; i < 20; i++) await call(i + 100_000); // warm-up
  for (const k of [...stats.keys()]) if (k.startsWith(name)) stats.delete(k);
  const c0 = cpu(), w0 = performance.now();
  for (let i = 0; i < n; i++) await call(i);
  totals.set(name, { cpu: (cpu() - c0) / n, wall: (performance.now() - w0) / n });
}
for (const [name, tot] of totals) {
  const rows = [...stats].filter(([k]) => k.startsWith(name));
  console.log(`\n${name}: ${(rows.reduce((s, [, v]) => s + v.n, 0) / n).toFixed(1)} statements (round trips) per write, PostgreSQL CPU ${tot.cpu.toFixed(2)} ms/write, wall ${tot.wall.toFixed(1)} ms/write`);
  for (const [k, v] of rows.sort((a, b) => b[1].cpu - a[1].cpu)) console.log(`  ${(v.cpu / n).toFixed(3)} ms cpu  ${(v.wall / n).toFixed(2)} ms wall  ${(v.n / n).toFixed(1)}x  ${k.split(" | ")[1]}`);
}
await pool.end();

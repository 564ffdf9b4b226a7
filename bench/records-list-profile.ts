/**
 * Issue 16, the reads: where a list page's Node CPU goes, layer by layer.
 *
 *   node --import tsx bench/records-list-profile.ts [--calls 300] [--rounds 3] [--deals 3000] [--only deals] [--db NAME] [--drop]
 *   node --cpu-prof --import tsx bench/records-list-profile.ts --only deals --layer peer   # a profile of one layer
 *
 * On a small database of its own on the test server (NAME, default crm_list_profile: made, migrated
 * and filled by the COPY generator, demo/bulk.ts, on first use and kept for the next run; `--drop`
 * drops it at the end), one tenant with DEALS deals (people and companies in proportion, two
 * custom fields on deals), it calls ListDeals (the bench's page: open EUR deals over 10,000.00,
 * biggest first, 50), ListPeople and ListCompanies CALLS times each, one after another on ONE
 * connection, through four layers in turn:
 *   sql      the store's list (lists.ts runList) in dbservice's tenant transaction, rows as pg gives them;
 *   store    the DbRecordsService implementation (records-store.ts: the transaction as the caller, rows to messages);
 *   peer     the same through the kit's in-process peer into dbservice's module (the all-in-one's path:
 *            interceptors, the messages across as bytes);
 *   handler  the records service's handler over that peer, and the answer written as Connect JSON
 *            (what the gateway's client receives).
 * The layers run in turn ROUNDS times, the order reversed every round (a load swing on the shared
 * box falls on all of them); it prints, per list and layer, the median over the rounds of the Node
 * CPU per call (process.cpuUsage, user + system: the process's every thread, GC helpers included)
 * and of the wall time per call. The difference between two layers is what the outer one adds.
 */
import { randomUUID } from "node:crypto";
import { parseArgs } from "node:util";
import pg from "pg";
import { toJsonString } from "@bufbuild/protobuf";
import { createClient, createContextValues, type HandlerContext } from "@connectrpc/connect";
import { DbRecordsService } from "@crm/gen/crm/db/v1/db_records_pb";
import { Operator, type Filter } from "@crm/gen/crm/records/v1/common_pb";
import { ListDealsResponseSchema, type ListDealsRequest } from "@crm/gen/crm/records/v1/deal_pb";
import { ListPeopleResponseSchema, type ListPeopleRequest } from "@crm/gen/crm/records/v1/person_pb";
import { ListCompaniesResponseSchema, type ListCompaniesRequest } from "@crm/gen/crm/records/v1/company_pb";
import { callContext, createLogger, inProcessPeer, newInternalIdentity, principalKey, type Principal, type TokenVerifier } from "@crm/kit";
import { TEST_PG_URL } from "@crm/testkit";
import { createDb } from "@crm/dbservice/db";
import { migrate, migrationDirs } from "@crm/dbservice/migrate";
import { createDbModule } from "../services/dbservice/src/module.js";
import { generate } from "../services/records/demo/bulk.js";
import { recordsStore } from "../services/records/store/records-store.js";
import { runList, type ListSpec } from "../services/records/store/lists.js";
import { dealList } from "../services/records/store/deals.js";
import { personList } from "../services/records/store/people.js";
import { companyList } from "../services/records/store/companies.js";
import { recordsServices } from "../services/records/src/records-service.js";

const { values: o } = parseArgs({
  options: {
    calls: { type: "string", default: "300" },
    rounds: { type: "string", default: "3" },
    deals: { type: "string", default: "3000" },
    only: { type: "string" },
    layer: { type: "string" },
    db: { type: "string", default: "crm_list_profile" },
    drop: { type: "boolean", default: false },
  },
});
const calls = Number(o.calls);
const rounds = Number(o.rounds);
const dbName = o.db!;
if (!/^[a-z_][a-z0-9_]*$/.test(dbName)) throw new Error(`--db ${dbName}: a plain lower-case name`);
const url = new URL(TEST_PG_URL);
url.pathname = `/${dbName}`;
const log = createLogger("list-profile", "silent");

// The database: made and filled once, then reused (the same data for every tree compared).
const admin = new pg.Client({ connectionString: TEST_PG_URL });
await admin.connect();
const exists = (await admin.query("SELECT 1 FROM pg_database WHERE datname = $1", [dbName])).rowCount;
if (!exists) await admin.query(`CREATE DATABASE ${dbName}`);
await admin.end();
const pool = new pg.Pool({ connectionString: url.toString(), max: 1 });
let meta = exists ? (await pool.query<{ company_id: string; user_id: string }>("SELECT company_id, user_id FROM list_profile_meta").catch(() => ({ rows: [] }))).rows[0] : undefined;
if (!meta) {
  await migrate(pool, log, migrationDirs);
  const companyId = randomUUID();
  await pool.query("INSERT INTO companies (id, name) VALUES ($1, 'List profile')", [companyId]);
  const userId = (await pool.query<{ id: string }>("INSERT INTO users (company_id, email, name, role) VALUES ($1, 'owner@list-profile.example', 'Owner', 'owner') RETURNING id", [companyId])).rows[0]!.id;
  const deals = Number(o.deals);
  await generate({ databaseUrl: url.toString(), companyId, companies: Math.ceil(deals / 10), people: deals, deals });
  await pool.query("ANALYZE");
  await pool.query("CREATE TABLE list_profile_meta AS SELECT $1::uuid AS company_id, $2::uuid AS user_id", [companyId, userId]);
  meta = { company_id: companyId, user_id: userId };
}
const db = createDb(pool);
const principal: Principal = { userId: meta.user_id, companyId: meta.company_id, role: "owner", sessionId: randomUUID(), expiresAt: 4_000_000_000, token: `profile-${randomUUID()}` };
const verifier: TokenVerifier = {
  async verify(token) {
    if (token !== principal.token) throw new Error("not the profile's token");
    return principal;
  },
};
const ctxValues = createContextValues();
ctxValues.set(principalKey, principal);
const ctx = { values: ctxValues, signal: new AbortController().signal } as HandlerContext;
const store = recordsStore(db);
const peer = createClient(DbRecordsService, inProcessPeer("records", createDbModule({ db }), { log, verifier, internal: newInternalIdentity() }));
const handlers = recordsServices({ db: peer });
const inCall = <T>(fn: () => Promise<T>) => callContext.run({ requestId: "profile", authorization: `Bearer ${principal.token}`, principal }, fn);

const cond = (field: string, operator: Operator, ...values: string[]) => ({ node: { case: "condition" as const, value: { field, operator, values } } });
const page = { pageSize: 50, pageToken: "", showDeleted: false, exactTotal: false };
const dealReq = {
  filter: { node: { case: "and" as const, value: { filters: [cond("status", Operator.EQUALS, "open"), cond("amount_minor", Operator.GREATER_THAN, "1000000"), cond("currency_code", Operator.EQUALS, "EUR")] } } } as unknown as Filter,
  orderBy: "amount_minor desc",
  ...page,
} as ListDealsRequest;
const personReq = { filter: cond("job_title", Operator.EQUALS, "buyer") as unknown as Filter, orderBy: "last_name, first_name", ...page } as ListPeopleRequest;
const companyReq = { filter: cond("size", Operator.GREATER_THAN, "1000") as unknown as Filter, orderBy: "name", ...page } as ListCompaniesRequest;

interface Target {
  name: string;
  spec: ListSpec;
  req: ListDealsRequest | ListPeopleRequest | ListCompaniesRequest;
  layers: Record<string, () => Promise<unknown>>;
}
const targets: Target[] = [
  {
    name: "ListDeals", spec: dealList, req: dealReq,
    layers: {
      store: () => store.listDealsDB({ request: dealReq } as never, ctx) as Promise<unknown>,
      peer: () => inCall(() => peer.listDealsDB({ request: dealReq })),
      handler: () => inCall(async () => toJsonString(ListDealsResponseSchema, await handlers.deals.listDeals(dealReq, ctx) as never)),
    },
  },
  {
    name: "ListPeople", spec: personList, req: personReq,
    layers: {
      store: () => store.listPeopleDB({ request: personReq } as never, ctx) as Promise<unknown>,
      peer: () => inCall(() => peer.listPeopleDB({ request: personReq })),
      handler: () => inCall(async () => toJsonString(ListPeopleResponseSchema, await handlers.people.listPeople(personReq, ctx) as never)),
    },
  },
  {
    name: "ListCompanies", spec: companyList, req: companyReq,
    layers: {
      store: () => store.listCompaniesDB({ request: companyReq } as never, ctx) as Promise<unknown>,
      peer: () => inCall(() => peer.listCompaniesDB({ request: companyReq })),
      handler: () => inCall(async () => toJsonString(ListCompaniesResponseSchema, await handlers.companies.listCompanies(companyReq, ctx) as never)),
    },
  },
];

console.log(`${dbName}: ${calls} calls per list and layer, ${rounds} rounds, one connection; Node CPU (user + system) and wall per call, medians`);
for (const t of targets) {
  if (o.only && !t.name.toLowerCase().includes(o.only.toLowerCase())) continue;
  const layers: [string, () => Promise<unknown>][] = [
    ["sql", () => db.tenant(principal.companyId, (sql) => runList(sql, t.spec, t.req), { actingUser: principal.userId })],
    ...Object.entries(t.layers),
  ];
  const first = (await t.layers.peer!()) as { response?: Record<string, unknown> };
  const rows = Object.values(first.response ?? {}).find(Array.isArray)?.length ?? 0;
  const measured = layers.filter(([layer]) => !o.layer || layer === o.layer);
  for (const [, call] of measured) for (let i = 0; i < Math.min(50, calls); i++) await call(); // warm-up (JIT, the connection)
  const cpu = new Map<string, number[]>();
  const wall = new Map<string, number[]>();
  for (let r = 0; r < rounds; r++) {
    for (const [layer, call] of r % 2 ? [...measured].reverse() : measured) {
      const c0 = process.cpuUsage();
      const w0 = performance.now();
      for (let i = 0; i < calls; i++) await call();
      const c = process.cpuUsage(c0);
      cpu.set(layer, [...(cpu.get(layer) ?? []), (c.user + c.system) / 1000 / calls]);
      wall.set(layer, [...(wall.get(layer) ?? []), (performance.now() - w0) / calls]);
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const parts = measured.map(([layer]) => `${layer} ${median(cpu.get(layer)!).toFixed(2)} ms cpu / ${median(wall.get(layer)!).toFixed(2)} ms wall`);
  console.log(`${t.name} (${rows} rows a page): ${parts.join(" · ")}`);
}
await pool.end();
if (o.drop) {
  const c = new pg.Client({ connectionString: TEST_PG_URL });
  await c.connect();
  await c.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
  await c.end();
}

/**
 * Writes a large CRM into one tenant of a PostgreSQL database for benchmarks, with COPY
 * (pg-copy-streams), not RPC by RPC: companies, people (with their e-mail addresses and a company
 * each), and deals spread over a pipeline's stages (in kanban order, with their stage history, a
 * company and a person each, and custom values for two custom fields, "segment" and "score").
 *
 *   npm run demo:bulk -- --database-url postgres://postgres@127.0.0.1:5432/crm --company <tenant id> \
 *     [--companies 100000] [--people 1000000] [--deals 1000000]
 *
 * The tenant (companies.id) must exist with at least one active user (register one through the
 * API first); its users own the records in turn. COPY FROM is refused for rows under row-level
 * security, so the connection's role must bypass it: a superuser or a role WITH BYPASSRLS.
 * Records written this way have no timeline entries, as after an import. It may run again: every
 * run adds its own records.
 */
import { randomUUID } from "node:crypto";
import { Readable } from "node:stream";
import { pipeline as streamPipeline } from "node:stream/promises";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import pg from "pg";
import { from as copyFrom } from "pg-copy-streams";
import { generateNKeysBetween } from "fractional-indexing";

export interface BulkOptions {
  databaseUrl: string;
  /** The tenant: companies.id. */
  companyId: string;
  companies: number;
  people: number;
  deals: number;
  /** Progress lines (default: none). */
  log?: (line: string) => void;
}

export interface BulkResult {
  companies: number;
  people: number;
  deals: number;
  pipelineId: string;
  seconds: number;
}

/** A value in COPY's text format. */
function cell(v: unknown): string {
  if (v === null || v === undefined) return "\\N";
  const s = v instanceof Date ? v.toISOString() : typeof v === "object" ? JSON.stringify(v) : String(v);
  return s.replace(/\\/g, "\\\\").replace(/\t/g, "\\t").replace(/\n/g, "\\n").replace(/\r/g, "\\r");
}
const row = (values: unknown[]) => `${values.map(cell).join("\t")}\n`;
/** A text[] literal of plain words (no quotes or commas in them). */
const textArray = (xs: readonly string[]) => `{${xs.map((x) => `"${x}"`).join(",")}}`;

/** COPY `rows` into `table (columns)`, 2,000 rows a chunk. */
async function copy(client: pg.ClientBase, table: string, columns: string[], rows: Iterable<unknown[]>): Promise<void> {
  function* chunks() {
    let buf = "";
    let n = 0;
    for (const r of rows) {
      buf += row(r);
      if (++n % 2000 === 0) {
        yield buf;
        buf = "";
      }
    }
    if (buf) yield buf;
  }
  await streamPipeline(Readable.from(chunks()), client.query(copyFrom(`COPY ${table} (${columns.join(", ")}) FROM STDIN`)));
}

const FIRST = ["Ann", "Ben", "Chloe", "Dmitri", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonas", "Kemi", "Lars", "Maya", "Nikolai", "Olga", "Pedro", "Rosa", "Sven", "Tara", "Yuki"];
const LAST = ["Lee", "Mueller", "Novak", "Okafor", "Petrov", "Rossi", "Sato", "Schmidt", "Silva", "Tanaka", "Walsh", "Ivanova", "Garcia", "Chen", "Dubois", "Kowalski"];
const INDUSTRIES = ["Software", "Retail", "Manufacturing", "Healthcare", "Logistics", "Energy", "Finance", "Travel"];
const SEGMENTS = ["Enterprise", "Mid-market", "SMB"];
const STAGES: [name: string, probability: number, kind: "open" | "won" | "lost"][] = [
  ["Lead", 10, "open"], ["Qualified", 25, "open"], ["Proposal", 50, "open"], ["Negotiation", 75, "open"], ["Won", 100, "won"], ["Lost", 0, "lost"],
];

export async function generate(o: BulkOptions): Promise<BulkResult> {
  const started = performance.now();
  const log = o.log ?? (() => {});
  // One connection of its own, ended (socket closed) before this returns: a pool's end() resolves
  // before its sockets close, and a DROP DATABASE ... WITH (FORCE) right after (a test's teardown)
  // then killed the closing connection, whose error nobody was listening for.
  const client = new pg.Client({ connectionString: o.databaseUrl });
  await client.connect();
  try {
    const { rows: me } = await client.query<{ ok: boolean }>("SELECT rolsuper OR rolbypassrls AS ok FROM pg_roles WHERE rolname = current_user");
    if (!me[0]?.ok) throw new Error("COPY FROM is refused for rows under row-level security: connect as a superuser or a role WITH BYPASSRLS");
    const { rows: users } = await client.query<{ id: string }>("SELECT id FROM users WHERE company_id = $1 AND status = 'active' ORDER BY created_at, id", [o.companyId]);
    if (!users.length) throw new Error(`no tenant ${o.companyId} with an active user in this database (register one through the API first)`);
    const owners = users.map((u) => u.id);
    const run = randomUUID().slice(0, 8);
    const now = Date.now();
    const t = (i: number, n: number) => new Date(now - Math.floor(((n - i) / Math.max(n, 1)) * 365 * 86_400_000));

    await client.query("BEGIN");
    // A pipeline of its own, and the two custom fields (made once per tenant).
    const pipelineId = randomUUID();
    await client.query("INSERT INTO rec_pipelines (id, company_id, name) VALUES ($1, $2, $3)", [pipelineId, o.companyId, `Bench ${run}`]);
    const stages = STAGES.map(([name, probability, kind], i) => ({ id: randomUUID(), name, probability, kind, i }));
    for (const s of stages) {
      await client.query("INSERT INTO rec_stages (id, company_id, pipeline_id, name, probability, kind, sort_order) VALUES ($1, $2, $3, $4, $5, $6, $7)", [s.id, o.companyId, pipelineId, s.name, s.probability, s.kind, s.i]);
    }
    await client.query(
      `INSERT INTO rec_fields (company_id, object_type, key, label, type, options) VALUES
         ($1, 'deal', 'segment', 'Segment', 'select', $2), ($1, 'deal', 'score', 'Score', 'number', '[]')
       ON CONFLICT (company_id, object_type, key) DO NOTHING`,
      [o.companyId, JSON.stringify(SEGMENTS.map((value) => ({ value, label: "", archived: false })))],
    );

    const companyIds = Array.from({ length: o.companies }, () => randomUUID());
    await copy(
      client,
      "rec_companies",
      ["id", "company_id", "name", "domain", "industry", "size", "owner_id", "tags", "created_at", "updated_at"],
      (function* () {
        for (let i = 0; i < o.companies; i++) {
          const at = t(i, o.companies);
          yield [companyIds[i], o.companyId, `${LAST[i % LAST.length]} ${INDUSTRIES[i % INDUSTRIES.length]} ${i}`, `c${i}-${run}.bench.example`, INDUSTRIES[i % INDUSTRIES.length], (i * 37) % 20_000, owners[i % owners.length], i % 10 === 0 ? textArray(["key account"]) : "{}", at, at];
        }
      })(),
    );
    log(`${o.companies} companies`);

    const personIds = Array.from({ length: o.people }, () => randomUUID());
    const email = (i: number) => `${FIRST[i % FIRST.length]!.toLowerCase()}.${LAST[(i * 7) % LAST.length]!.toLowerCase()}.${i}-${run}@bench.example`;
    await copy(
      client,
      "rec_people",
      ["id", "company_id", "first_name", "last_name", "emails", "phones", "job_title", "owner_id", "created_at", "updated_at"],
      (function* () {
        for (let i = 0; i < o.people; i++) {
          const at = t(i, o.people);
          yield [personIds[i], o.companyId, FIRST[i % FIRST.length], LAST[(i * 7) % LAST.length], textArray([email(i)]), textArray([`+1${String(2_000_000_000 + i).slice(0, 10)}`]), i % 3 ? "Buyer" : "CTO", owners[i % owners.length], at, at];
        }
      })(),
    );
    await copy(client, "rec_person_emails", ["company_id", "address_lower", "person_id"], (function* () {
      for (let i = 0; i < o.people; i++) yield [o.companyId, email(i), personIds[i]];
    })());
    if (o.companies) {
      await copy(client, "rec_person_companies", ["company_id", "person_id", "rec_company_id", "role", "ord"], (function* () {
        for (let i = 0; i < o.people; i++) yield [o.companyId, personIds[i], companyIds[i % o.companies], i % 5 ? "" : "decision maker", 0];
      })());
    }
    log(`${o.people} people`);

    // Deals: a stage each (in turn), in kanban order within it.
    const perStage = stages.map((s) => ({ ...s, n: 0 }));
    for (let i = 0; i < o.deals; i++) perStage[i % stages.length]!.n++;
    const positions = new Map(perStage.map((s) => [s.id, generateNKeysBetween(null, null, s.n)]));
    const next = new Map(perStage.map((s) => [s.id, 0]));
    const dealIds = Array.from({ length: o.deals }, () => randomUUID());
    const dealStage = (i: number) => stages[i % stages.length]!;
    await copy(
      client,
      "rec_deals",
      ["id", "company_id", "name", "pipeline_id", "stage_id", "position", "amount_minor", "currency_code", "expected_close_date", "status", "lost_reason", "rec_company_id", "owner_id", "custom", "stage_entered_at", "closed_at", "created_at", "updated_at"],
      (function* () {
        for (let i = 0; i < o.deals; i++) {
          const s = dealStage(i);
          const k = next.get(s.id)!;
          next.set(s.id, k + 1);
          const at = t(i, o.deals);
          const close = new Date(at.getTime() + 60 * 86_400_000).toISOString().slice(0, 10);
          yield [
            dealIds[i], o.companyId, `Deal ${i} ${run}`, pipelineId, s.id, positions.get(s.id)![k], ((i * 7919) % 500_000) * 100, i % 4 ? "USD" : "EUR", close, s.kind,
            s.kind === "lost" ? "price" : "", o.companies ? companyIds[i % o.companies] : null, owners[i % owners.length],
            { segment: SEGMENTS[i % SEGMENTS.length], score: (i * 31) % 101 }, at, s.kind === "open" ? null : at, at, at,
          ];
        }
      })(),
    );
    await copy(client, "rec_deal_stage_history", ["company_id", "deal_id", "stage_id", "entered_at", "actor_id"], (function* () {
      for (let i = 0; i < o.deals; i++) yield [o.companyId, dealIds[i], dealStage(i).id, t(i, o.deals), owners[i % owners.length]];
    })());
    if (o.people) {
      await copy(client, "rec_deal_people", ["company_id", "deal_id", "person_id", "ord"], (function* () {
        for (let i = 0; i < o.deals; i++) yield [o.companyId, dealIds[i], personIds[(i * 13) % o.people], 0];
      })());
    }
    log(`${o.deals} deals`);
    await client.query("COMMIT");
    // Fresh statistics, so the planner's estimates (list totals) and plans fit the new rows.
    await client.query("ANALYZE rec_companies, rec_people, rec_person_emails, rec_person_companies, rec_deals, rec_deal_people, rec_deal_stage_history");
    return { companies: o.companies, people: o.people, deals: o.deals, pipelineId, seconds: Math.round((performance.now() - started) / 100) / 10 };
  } catch (err) {
    await client.query("ROLLBACK").catch(() => {});
    throw err;
  } finally {
    await client.end();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { values: a } = parseArgs({
    options: {
      "database-url": { type: "string", default: process.env.DATABASE_URL },
      company: { type: "string" },
      companies: { type: "string", default: "100000" },
      people: { type: "string", default: "1000000" },
      deals: { type: "string", default: "1000000" },
    },
  });
  const count = (name: string, v: string | undefined) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0 || n > 50_000_000) throw new Error(`--${name} must be a whole number 0..50000000`);
    return n;
  };
  if (!a["database-url"] || !a.company) {
    console.error("usage: npm run demo:bulk -- --database-url postgres://… --company <tenant id> [--companies 100000] [--people 1000000] [--deals 1000000]");
    process.exit(2);
  }
  generate({
    databaseUrl: a["database-url"],
    companyId: a.company,
    companies: count("companies", a.companies),
    people: count("people", a.people),
    deals: count("deals", a.deals),
    log: (line) => console.log(line),
  }).then(
    (r) => console.log(`wrote ${r.companies} companies, ${r.people} people and ${r.deals} deals (pipeline ${r.pipelineId}) in ${r.seconds} s`),
    (err: unknown) => {
      console.error(`demo:bulk failed: ${err instanceof Error ? err.message : String(err)}`);
      process.exit(1);
    },
  );
}

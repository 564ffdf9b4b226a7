/**
 * Search across companies, people and deals (SearchService), on the generated search_tsv columns,
 * their GIN indexes and the tenant's vocabulary (migration 121):
 *
 * 1. the query's words (lower case, unaccented, as the records' are made) each match as a prefix
 *    ("glob" finds "globex"), or as one of the few vocabulary words pg_trgm finds like it (a typo:
 *    "globx" finds "globex"); every word must match (AND), in any field of the record;
 * 2. a query that reads as a phone number matches by its digits (a tail of 7+ digits of a number);
 * 3. the candidates of each object type are ranked where they are found (crm_search_best,
 *    migration 210: each candidate read once): the query being like the record's title (its name)
 *    counts most, then every word matching as typed rather than as a typo, then the words in its
 *    title; the best of all three types are returned.
 *
 * A big tenant is searched on the text index, a small one by its id (the lookup is planned with
 * the tenant's id as a value); records in the trash are outside the indexes; at most CANDIDATES
 * per type are ranked, so a query that matches half a million records still answers at once
 * (with a rougher order).
 */
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { invalid, type Violation } from "@crm/kit";
import type { DbRecordsService } from "@crm/gen/crm/db/v1/db_records_pb";
import { ObjectType } from "@crm/gen/crm/records/v1/common_pb";
import type { SearchResultSchema } from "@crm/gen/crm/records/v1/search_pb";
import { RecordSnapshotSchema, type RecordSnapshot } from "@crm/gen/crm/records/v1/stream_pb";
import type { Sql } from "@crm/dbservice/db";
import { checkSearch, type SearchInput, type SearchKind } from "../src/rules.js";
import type { Acting } from "./acting.js";
import type { RecordReaders } from "./changes.js";

/** Candidates ranked per object type at most. */
const CANDIDATES = 200;
/** Vocabulary words tried for one misspelt word at most. */
const ALTERNATIVES = 5;

const objectTypes: Record<SearchKind, ObjectType> = { company: ObjectType.COMPANY, person: ObjectType.PERSON, deal: ObjectType.DEAL };

/**
 * One object type's best matches, ranked where they are found (crm_search_best, migrations 210
 * and 211: records holding every word whole first, the prefixes and typos only when those are
 * fewer than CANDIDATES; $3 page size; q: the query's forms).
 */
function perKind(kind: SearchKind): string {
  return `(SELECT '${kind}' AS kind, b.id, b.score FROM q, crm_search_best('${kind}', q.whole, q.tsq, q.exact, q.norm, ${CANDIDATES}, $3) AS b)`;
}

export interface Found {
  kind: SearchKind;
  id: string;
  score: number;
}

/** The best matches of the query, best first (ids and scores). One statement. */
export async function searchRecords(sql: Sql, input: SearchInput): Promise<Found[]> {
  const { rows } = await sql.query<{ kind: SearchKind; id: string; score: number }>(
    `WITH words AS (
       -- The query's words as the records' are made ('simple': the words as they are).
       SELECT w FROM unnest(tsvector_to_array(to_tsvector('simple'::regconfig, crm_search_text(ARRAY[$1::text])))) AS w
     ), alternatives AS (
       -- Each word as a prefix, or one of the tenant's words like it (pg_trgm: a typo).
       SELECT words.w, '(' || quote_literal(words.w) || ':*' || coalesce(' | ' || (
                 SELECT string_agg(quote_literal(a), ' | ') FROM crm_search_similar(words.w, ${ALTERNATIVES}) AS a WHERE words.w ~ '^[[:alpha:]]{3,40}$'), '') || ')' AS term
       FROM words
     ), q AS MATERIALIZED (
       SELECT crm_search_text(ARRAY[$1::text]) AS norm,
              CASE WHEN $2::text <> '' THEN (quote_literal($2::text) || ':*')::tsquery ELSE (SELECT string_agg(term, ' & ') FROM alternatives)::tsquery END AS tsq,
              CASE WHEN $2::text <> '' THEN (quote_literal($2::text) || ':*')::tsquery ELSE (SELECT string_agg(quote_literal(w) || ':*', ' & ') FROM words)::tsquery END AS exact,
              -- Every word as a whole word: the first candidates (the index's fast path; migration 211).
              CASE WHEN $2::text <> '' THEN quote_literal($2::text)::tsquery ELSE (SELECT string_agg(quote_literal(w), ' & ') FROM words)::tsquery END AS whole
     )
     SELECT kind, id, score::float8 AS score FROM (${input.kinds.map(perKind).join(" UNION ALL ")}) found
     ORDER BY score DESC, id LIMIT $3`,
    [input.query, input.digits, input.pageSize],
  );
  return rows.map((r) => ({ kind: r.kind, id: r.id, score: Number(r.score) }));
}

/** "€12,500.00" from 1250000 minor units of EUR ("" without an amount). */
/**
 * A formatter per currency, made once: `new Intl.NumberFormat` costs ~0.1 ms, which per deal of a
 * search's results was a sixth of dbservice's CPU per search. Only ISO 4217 codes get in (a bad
 * code throws and is not kept), so the map stays small.
 */
const moneyFormats = new Map<string, { format: Intl.NumberFormat; scale: number }>();

function money(minor: bigint | undefined, currency: string): string {
  if (minor === undefined || !currency) return "";
  let f = moneyFormats.get(currency);
  if (!f) {
    try {
      const format = new Intl.NumberFormat("en", { style: "currency", currency });
      f = { format, scale: 10 ** (format.resolvedOptions().maximumFractionDigits ?? 2) };
    } catch {
      return `${minor} ${currency}`;
    }
    moneyFormats.set(currency, f);
  }
  return f.format.format(Number(minor) / f.scale);
}

/** What a result shows: its title and a second line. */
function label(snap: RecordSnapshot): { title: string; subtitle: string } {
  const r = snap.record;
  switch (r.case) {
    case "company":
      return { title: r.value.name, subtitle: r.value.domain || r.value.industry };
    case "person":
      return { title: [r.value.firstName, r.value.lastName].filter(Boolean).join(" "), subtitle: r.value.emails[0] ?? r.value.jobTitle };
    case "deal":
      return { title: r.value.name, subtitle: money(r.value.amountMinor, r.value.currencyCode) };
    default:
      return { title: "", subtitle: "" };
  }
}

/** The results with their records (read in one query per type). */
export async function searchResults(sql: Sql, readers: RecordReaders, found: Found[]): Promise<MessageInitShape<typeof SearchResultSchema>[]> {
  const snaps = new Map<string, RecordSnapshot>();
  for (const kind of new Set(found.map((f) => f.kind))) {
    const read = readers[kind];
    if (!read) continue;
    for (const [id, s] of await read(sql, found.filter((f) => f.kind === kind).map((f) => f.id))) snaps.set(`${kind}:${id}`, s);
  }
  return found.flatMap((f) => {
    const snap = snaps.get(`${f.kind}:${f.id}`);
    if (!snap) return [];
    return [{ objectType: objectTypes[f.kind], recordId: f.id, score: f.score, ...label(snap), record: create(RecordSnapshotSchema, snap) }];
  });
}

type Tx = <T>(ctx: HandlerContext, fn: (sql: Sql, a: Acting) => Promise<T>) => Promise<T>;

/** DbRecordsService's SearchDB. */
export function searchStore(readers: RecordReaders, tx: Tx): Pick<ServiceImpl<typeof DbRecordsService>, "searchDB"> {
  return {
    async searchDB({ request: r }, ctx) {
      if (!r) throw invalid([{ field: "request", description: "is required" }]);
      const v: Violation[] = [];
      const input = checkSearch(r, v);
      if (v.length) throw invalid(v);
      const results = await tx(ctx, async (sql, a) => searchResults(sql, readers, await searchRecords(sql, input)));
      return { response: { results } };
    },
  };
}

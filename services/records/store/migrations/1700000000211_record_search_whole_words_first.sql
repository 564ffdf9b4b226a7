-- Up Migration

-- Search looks for the query's words as whole words first (issue 16: Search at 1,000,000 people
-- in one tenant). A prefix (`petrov:*`) is a partial match for the GIN index: it collects every
-- record holding a word that starts so into a bitmap of heap pages and sorts it before it returns
-- a single id, whatever the LIMIT, so "Elena Petrov" built bitmaps of 50,000 and 63,000 pages
-- to find 12,600 people (0.9 s of CPU as crm_definer on the loaded box; the same words as whole
-- words, 'elena & petrov', 20 ms: the index walks the two posting lists side by side). Now
-- crm_search_best takes the candidates in two tiers, in one statement:
--
--   1. records holding every word of the query as a whole word (p_whole: 'elena & petrov');
--   2. only when those are fewer than p_candidates, the rest of the records the full query finds
--      (p_query: each word as a prefix, or a typo's vocabulary words).
--
-- The second tier is planned but not run when the first fills the candidates (Append under a
-- LIMIT), so a query whose words are common as whole words never walks their prefixes; one that
-- is still being typed ("elena petr") or has a typo does, as before. Whole-word matches are also
-- the better candidates: they all match as typed, which the score counts. Ranking as in 210.
--
-- Bitmap scans only (enable_seqscan and enable_indexscan off for the function): under a LIMIT the
-- planner may bet on a scan that stops at the first p_candidates matches it expects, and a word
-- it overestimates makes that bet read a whole table (a typo's words, which no deal holds: a
-- sequential scan of the million deals, 1.7 s). A bitmap scan costs what it reads, so the choice
-- left is the right one: the text index for a big tenant, an index on the tenant's id for a small.
DROP FUNCTION crm_search_best(text, tsquery, tsquery, text, integer, integer);

CREATE FUNCTION crm_search_best(p_kind text, p_whole tsquery, p_query tsquery, p_exact tsquery, p_norm text, p_candidates integer, p_limit integer)
RETURNS TABLE (id uuid, score double precision)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp SET jit = off SET enable_seqscan = off SET enable_indexscan = off AS $$
DECLARE
  t text := CASE p_kind WHEN 'company' THEN 'rec_companies' WHEN 'person' THEN 'rec_people' WHEN 'deal' THEN 'rec_deals' END;
  name_sql text := CASE p_kind WHEN 'person' THEN 'ARRAY[r.first_name, r.last_name]' ELSE 'ARRAY[r.name]' END;
  found text := format('SELECT r.id, crm_search_text(%s) AS name, r.search_tsv @@ $3 AS exact FROM %I r WHERE r.company_id = $1 AND r.deleted_at IS NULL', name_sql, t);
BEGIN
  IF t IS NULL OR crm_company() IS NULL OR crm_role() IS NULL OR p_query IS NULL THEN RETURN; END IF;
  RETURN QUERY EXECUTE format(
    $q$SELECT c.id,
              (2 * word_similarity($4, c.name)
                 + CASE WHEN NOT c.exact THEN 0 WHEN to_tsvector('simple'::regconfig, c.name) @@ $3 THEN 3 ELSE 2 END)::double precision AS score
       FROM ((%1$s AND r.search_tsv @@ $7 LIMIT $5)
             UNION ALL
             (%1$s AND r.search_tsv @@ $2 AND NOT r.search_tsv @@ $7 LIMIT $5)
             LIMIT $5) c
       ORDER BY score DESC, c.id LIMIT $6$q$, found)
    USING crm_company(), p_query, coalesce(p_exact, p_query), coalesce(p_norm, ''), p_candidates, p_limit, coalesce(p_whole, p_query);
END $$;

ALTER FUNCTION crm_search_best(text, tsquery, tsquery, tsquery, text, integer, integer) OWNER TO crm_definer;
REVOKE ALL ON FUNCTION crm_search_best(text, tsquery, tsquery, tsquery, text, integer, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION crm_search_best(text, tsquery, tsquery, tsquery, text, integer, integer) TO crm_app;

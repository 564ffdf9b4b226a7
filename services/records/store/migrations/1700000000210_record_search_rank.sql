-- Up Migration

-- Search ranks its candidates where it finds them (issue 16: Search at 1,000,000 people in one
-- tenant). Before, crm_search_ids (121_record_search.sql) returned up to 1,000 ids per object
-- type and the search then read those records again by their ids (1,000 primary-key probes and
-- heap fetches) to rank them, unaccenting each record's name twice (word_similarity, and the
-- name's tsvector). Now one narrow SECURITY DEFINER function reads each candidate once and
-- returns only the best p_limit ids with their scores:
--
--   score = 2 × word_similarity(query, name)            -- the query is like the name
--         + 2 if every word matches as typed (p_exact)  -- not only as a typo
--         + 1 if the name holds those words too         -- only tested when the record matched
--                                                          as typed: the name's words are a part
--                                                          of the record's words
--
-- the name made searchable (crm_search_text: unaccent, lower case) once per candidate. Like
-- crm_search_ids it names the tenant (crm_company()) and requires an active acting user
-- (crm_role()) itself, plans with the tenant's id as a value (a big tenant on the text index, a
-- small one by its id) and returns ids and scores only: the records are read back under the
-- policies. JIT is off for its statement: its plans are small and a JIT compile (tens of ms)
-- would cost more than the query.
CREATE FUNCTION crm_search_best(p_kind text, p_query tsquery, p_exact tsquery, p_norm text, p_candidates integer, p_limit integer)
RETURNS TABLE (id uuid, score double precision)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp SET jit = off AS $$
DECLARE
  t text := CASE p_kind WHEN 'company' THEN 'rec_companies' WHEN 'person' THEN 'rec_people' WHEN 'deal' THEN 'rec_deals' END;
  name_sql text := CASE p_kind WHEN 'person' THEN 'ARRAY[r.first_name, r.last_name]' ELSE 'ARRAY[r.name]' END;
BEGIN
  IF t IS NULL OR crm_company() IS NULL OR crm_role() IS NULL OR p_query IS NULL THEN RETURN; END IF;
  RETURN QUERY EXECUTE format(
    $q$SELECT c.id,
              (2 * word_similarity($4, c.name)
                 + CASE WHEN NOT c.exact THEN 0 WHEN to_tsvector('simple'::regconfig, c.name) @@ $3 THEN 3 ELSE 2 END)::double precision AS score
       FROM (SELECT r.id, crm_search_text(%s) AS name, r.search_tsv @@ $3 AS exact
             FROM %I r WHERE r.company_id = $1 AND r.deleted_at IS NULL AND r.search_tsv @@ $2 LIMIT $5) c
       ORDER BY score DESC, c.id LIMIT $6$q$, name_sql, t)
    USING crm_company(), p_query, coalesce(p_exact, p_query), coalesce(p_norm, ''), p_candidates, p_limit;
END $$;

ALTER FUNCTION crm_search_best(text, tsquery, tsquery, text, integer, integer) OWNER TO crm_definer;
REVOKE ALL ON FUNCTION crm_search_best(text, tsquery, tsquery, text, integer, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION crm_search_best(text, tsquery, tsquery, text, integer, integer) TO crm_app;

-- The ids-only lookup is not used any more.
DROP FUNCTION crm_search_ids(text, tsquery, integer);

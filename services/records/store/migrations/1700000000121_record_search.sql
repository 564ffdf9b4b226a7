-- Up Migration

-- Search across companies, people and deals (SearchService), built to stay fast with a million
-- records in one tenant beside small ones:
--
-- * Each record keeps its searchable words in a generated tsvector (search_tsv: 'simple', so no
--   stemming and any language, Latin and Cyrillic alike), made from its text lower-cased and
--   without accents (unaccent: "Zürich" → "zurich", "Ёлка" → "елка"), e-mail addresses split at
--   "@" (so "globex.example" is a word of ann@globex.example), and for people every tail of 7 or
--   more digits of each phone number ("+14155550100" → 14155550100, 4155550100, ..., 5550100), so
--   a number is found however much of it is typed. A search matches its words as prefixes on a
--   GIN index of the records outside the trash (the search leaves the trash out). The tenant's id
--   is not in that index: in a tenant with a million records it would make every lookup walk the
--   tenant's whole entry. A small tenant's records are found by its id instead (the planner knows
--   from the statistics how many records a tenant has, and picks), so it never walks a big one's.
-- * Typos are matched on the tenant's vocabulary, not on every record: rec_search_words keeps each
--   distinct word (letters only) the tenant's records ever held, kept by a trigger as records are
--   written; pg_trgm finds the words like a misspelt one ("globx" → "globex") on a small trigram
--   index, and the search then looks those words up in the records' tsvectors like any other.
--
-- Row-level security and these indexes: a policy's condition must hold before any condition that
-- is not LEAKPROOF, so PostgreSQL will not use a GIN index for a text-search or trigram operator
-- (@@, %) on a table with row-level security. The two lookups that need the indexes therefore run
-- in narrow SECURITY DEFINER functions below, which name the tenant (crm_company()) and require an
-- active acting user (crm_role()) themselves and return only ids and words; everything else,
-- reading the records found included, runs as the caller under the policies.
--
-- Both extensions ship with PostgreSQL (contrib) and with PGlite, and are "trusted": the
-- database's owner may create them.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE EXTENSION IF NOT EXISTS unaccent;

-- The searchable form of some text: unaccented, lower case, "@" and "+" as spaces. IMMUTABLE (the
-- unaccent dictionary is fixed for us), so generated columns and indexes may use it.
CREATE FUNCTION crm_search_text(p_parts text[]) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT AS
$$ SELECT lower(translate(public.unaccent('public.unaccent'::regdictionary, array_to_string(p_parts, ' ')), '@+', '  ')) $$;

-- Every tail of 7 or more digits of each phone number, as words.
CREATE FUNCTION crm_search_phones(p_phones text[]) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT AS
$$ SELECT coalesce(string_agg(right(d, n), ' '), '')
   FROM (SELECT regexp_replace(p, '[^0-9]', '', 'g') AS d FROM unnest(p_phones) AS p) AS x, generate_series(7, length(d)) AS n $$;

ALTER TABLE rec_companies ADD COLUMN search_tsv tsvector
  GENERATED ALWAYS AS (to_tsvector('simple'::regconfig, crm_search_text(ARRAY[name, domain, industry] || tags))) STORED;
ALTER TABLE rec_people ADD COLUMN search_tsv tsvector
  GENERATED ALWAYS AS (to_tsvector('simple'::regconfig, crm_search_text(ARRAY[first_name, last_name, job_title] || emails) || ' ' || crm_search_phones(phones))) STORED;
ALTER TABLE rec_deals ADD COLUMN search_tsv tsvector
  GENERATED ALWAYS AS (to_tsvector('simple'::regconfig, crm_search_text(ARRAY[name]))) STORED;

CREATE INDEX rec_companies_search_idx ON rec_companies USING gin (search_tsv) WHERE deleted_at IS NULL;
CREATE INDEX rec_people_search_idx ON rec_people USING gin (search_tsv) WHERE deleted_at IS NULL;
CREATE INDEX rec_deals_search_idx ON rec_deals USING gin (search_tsv) WHERE deleted_at IS NULL;

-- The words of a tenant's records (letters only, 3..40 of them), for typo tolerance. Words are
-- added, never removed: a word no record holds any more only costs a lookup that finds nothing.
CREATE TABLE rec_search_words (
  company_id uuid NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
  word       text NOT NULL CHECK (length(word) BETWEEN 3 AND 40),
  PRIMARY KEY (company_id, word)
);
CREATE INDEX rec_search_words_trgm_idx ON rec_search_words USING gin (word gin_trgm_ops);
ALTER TABLE rec_search_words ENABLE ROW LEVEL SECURITY;
ALTER TABLE rec_search_words FORCE ROW LEVEL SECURITY;
CREATE POLICY read ON rec_search_words FOR SELECT TO crm_app USING (company_id = crm_company() AND crm_role() IS NOT NULL);
CREATE POLICY add ON rec_search_words FOR INSERT TO crm_app WITH CHECK (company_id = crm_company() AND crm_role() IS NOT NULL);
CREATE POLICY definer ON rec_search_words TO crm_definer USING (true) WITH CHECK (true);
GRANT SELECT, INSERT ON rec_search_words TO crm_app;
GRANT SELECT, INSERT, DELETE ON rec_search_words TO crm_definer;

-- A record's new words join its tenant's vocabulary in the same transaction (as the writer: the policies apply).
CREATE FUNCTION crm_search_words_add() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'UPDATE' AND NEW.search_tsv = OLD.search_tsv THEN RETURN NULL; END IF;
  INSERT INTO rec_search_words (company_id, word)
  SELECT NEW.company_id, w FROM unnest(tsvector_to_array(NEW.search_tsv)) AS w
  WHERE w ~ '^[[:alpha:]]{3,40}$'
  ON CONFLICT DO NOTHING;
  RETURN NULL;
END $$;
CREATE TRIGGER search_words AFTER INSERT OR UPDATE ON rec_companies FOR EACH ROW EXECUTE FUNCTION crm_search_words_add();
CREATE TRIGGER search_words AFTER INSERT OR UPDATE ON rec_people FOR EACH ROW EXECUTE FUNCTION crm_search_words_add();
CREATE TRIGGER search_words AFTER INSERT OR UPDATE ON rec_deals FOR EACH ROW EXECUTE FUNCTION crm_search_words_add();

-- The ids of the tenant's records of one type (company, person, deal) outside the trash whose
-- words match p_query, at most p_limit of them. Planned for each call with the tenant's id as a
-- value (EXECUTE): the statistics then tell a tenant of a million records, searched on the text
-- index, from a small one, whose few records are reached by its id.
CREATE FUNCTION crm_search_ids(p_kind text, p_query tsquery, p_limit integer) RETURNS SETOF uuid
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  t text := CASE p_kind WHEN 'company' THEN 'rec_companies' WHEN 'person' THEN 'rec_people' WHEN 'deal' THEN 'rec_deals' END;
BEGIN
  IF t IS NULL OR crm_company() IS NULL OR crm_role() IS NULL OR p_query IS NULL THEN RETURN; END IF;
  RETURN QUERY EXECUTE format('SELECT r.id FROM %I r WHERE r.company_id = $1 AND r.deleted_at IS NULL AND r.search_tsv @@ $2 LIMIT $3', t)
    USING crm_company(), p_query, p_limit;
END $$;

-- The tenant's words most like p_word (pg_trgm similarity, its default threshold 0.3), best first.
CREATE FUNCTION crm_search_similar(p_word text, p_limit integer) RETURNS SETOF text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
  SELECT w.word FROM rec_search_words w
  WHERE crm_role() IS NOT NULL AND w.company_id = crm_company() AND w.word % p_word AND w.word <> p_word
  ORDER BY similarity(w.word, p_word) DESC, w.word LIMIT p_limit
$$;

ALTER FUNCTION crm_search_ids(text, tsquery, integer) OWNER TO crm_definer;
ALTER FUNCTION crm_search_similar(text, integer) OWNER TO crm_definer;
REVOKE ALL ON FUNCTION crm_search_ids(text, tsquery, integer), crm_search_similar(text, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION crm_search_ids(text, tsquery, integer), crm_search_similar(text, integer) TO crm_app;

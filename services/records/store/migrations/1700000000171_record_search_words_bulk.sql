-- Up Migration

-- The tenant's vocabulary for typo-tolerant search (rec_search_words, 121_record_search.sql) is
-- kept by a trigger as records are written. It fired FOR EACH ROW: one INSERT per written record,
-- which dominated a bulk import (a million rows: a million trigger calls and INSERTs). Now it
-- fires once per statement with the statement's rows (transition tables), so a set-based write of
-- 5,000 records adds their words with one INSERT; a single-record write does what it did. As
-- before, an UPDATE that leaves a record's words alone adds nothing.
CREATE FUNCTION crm_search_words_add_rows() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO rec_search_words (company_id, word)
    SELECT DISTINCT n.company_id, w FROM new_rows n, unnest(tsvector_to_array(n.search_tsv)) AS w
    WHERE w ~ '^[[:alpha:]]{3,40}$'
    ON CONFLICT DO NOTHING;
  ELSE
    INSERT INTO rec_search_words (company_id, word)
    SELECT DISTINCT n.company_id, w FROM new_rows n JOIN old_rows o ON o.id = n.id, unnest(tsvector_to_array(n.search_tsv)) AS w
    WHERE n.search_tsv IS DISTINCT FROM o.search_tsv AND w ~ '^[[:alpha:]]{3,40}$'
    ON CONFLICT DO NOTHING;
  END IF;
  RETURN NULL;
END $$;

DO $$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['rec_companies', 'rec_people', 'rec_deals'] LOOP
    EXECUTE format('DROP TRIGGER search_words ON %I', t);
    EXECUTE format('CREATE TRIGGER search_words_insert AFTER INSERT ON %I REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION crm_search_words_add_rows()', t);
    EXECUTE format('CREATE TRIGGER search_words_update AFTER UPDATE ON %I REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION crm_search_words_add_rows()', t);
  END LOOP;
END $$;
DROP FUNCTION crm_search_words_add();

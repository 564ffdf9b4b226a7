-- Up Migration

-- What a deal's write (CreateDeal, UpdateDeal, MoveDeal) costs PostgreSQL besides its own row,
-- measured as crm_app in the tenant (bench/README.md, issue 16, the writes):
--
-- * Two indexes that nothing reads. rec_deals_custom_idx (GIN on custom): under row-level
--   security the planner may not use it, because `@>` is not LEAKPROOF and the policies' conditions
--   must run first (as for search's `@@`, 121_record_search.sql); EXPLAIN as crm_app with
--   enable_seqscan off still picks an index on company_id and filters. A list filtered on a custom
--   field reads the tenant's deals through the other indexes whether it exists or not, so every
--   insert and every update that moves the row paid a GIN insertion for nothing.
--   rec_deals_stage_idx (company_id, stage_id, position): the unique rec_deals_position_key
--   (stage_id, position) answers every lookup by stage (a kanban column, the neighbours of a
--   move, a stage's last key) as well.
-- * The vocabulary trigger on UPDATE (171): it fired for every updated deal, built its transition
--   tables and ran its query to find that nothing changed; a move or an amount never changes a
--   deal's words. On rec_deals it is now a row trigger on `UPDATE OF name` with a WHEN condition,
--   which PostgreSQL checks without calling the function: it runs only when the deal's words
--   change. Imports (which write companies and people in bulk) keep the statement triggers there;
--   deals are written one at a time. INSERT keeps the statement trigger.
-- * The search index's pending list: a GIN index with fastupdate collects new entries in a list
--   that the insert which finds it over gin_pending_list_limit (4 MB) merges into the index, in
--   that insert's transaction: at a thousand deals a second, one CreateDeal every minute or so
--   took seconds. Without fastupdate each insert adds its few words directly.
DROP INDEX IF EXISTS rec_deals_custom_idx;
DROP INDEX IF EXISTS rec_deals_stage_idx;
ALTER INDEX IF EXISTS rec_deals_search_idx SET (fastupdate = off);

-- One record's new words, as crm_search_words_add_rows does for a statement's.
CREATE FUNCTION crm_search_words_add_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO rec_search_words (company_id, word)
  SELECT DISTINCT NEW.company_id, w FROM unnest(tsvector_to_array(NEW.search_tsv)) AS w
  WHERE w ~ '^[[:alpha:]]{3,40}$'
  ON CONFLICT DO NOTHING;
  RETURN NULL;
END $$;

DROP TRIGGER search_words_update ON rec_deals;
CREATE TRIGGER search_words_update AFTER UPDATE OF name ON rec_deals
  FOR EACH ROW WHEN (OLD.search_tsv IS DISTINCT FROM NEW.search_tsv) EXECUTE FUNCTION crm_search_words_add_row();

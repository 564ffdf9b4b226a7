-- Up Migration

-- An import fills its tenant's tables far faster than autovacuum's ANALYZE follows them. Statistics
-- taken while the tenant had no records (or while it was one of many small ones) say that the
-- tenant has about one row, and PostgreSQL then plans the row-level security check of each new
-- e-mail address ("its person is one the user may edit") as a walk over every person of the
-- tenant by another index, per address: at 10,000 people a 5,000-row batch outran the query
-- timeout and the job stopped moving. The import now brings the statistics of the tables it
-- writes up to date as its rows pass 1,000, 2,000, 4,000, … (store/import-store.ts runBatch):
-- about a dozen times for a million rows, ~0.1–0.3 s each. ANALYZE needs the tables' owner, hence
-- SECURITY DEFINER; it only refreshes statistics, it reads and returns nothing to the caller.
CREATE FUNCTION crm_import_analyze(p_kind text) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  IF p_kind = 'person' THEN
    ANALYZE rec_people, rec_person_emails, rec_person_companies;
  ELSIF p_kind = 'company' THEN
    ANALYZE rec_companies;
  ELSIF p_kind = 'deal' THEN
    ANALYZE rec_deals, rec_deal_people;
  ELSE
    RAISE EXCEPTION 'crm_import_analyze: no object type %', p_kind USING ERRCODE = '22023';
  END IF;
END $$;
REVOKE ALL ON FUNCTION crm_import_analyze(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION crm_import_analyze(text) TO crm_app;

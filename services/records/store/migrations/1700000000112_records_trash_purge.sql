-- Up Migration

-- The trash's 30-day purge (issue 16): a periodic job of the records service erases records that
-- went to the trash longer ago than p_older, in every tenant, with their timelines (and, for a
-- task or note, the entries it wrote on linked records). It runs before any tenant is known, so
-- it is one narrow SECURITY DEFINER function, as the timers' forgotten-timer job. Safe on several
-- replicas at once: rows another transaction holds are skipped (SKIP LOCKED), and the DELETE
-- re-checks that the row is still in the trash and old enough (an undelete meanwhile wins).
-- Up to p_limit rows of each kind per call; the job calls again while a kind comes back full.

-- The job's scan: the trash, oldest first.
CREATE INDEX rec_companies_trash_idx ON rec_companies (deleted_at) WHERE deleted_at IS NOT NULL;
CREATE INDEX rec_people_trash_idx ON rec_people (deleted_at) WHERE deleted_at IS NOT NULL;
CREATE INDEX rec_deals_trash_idx ON rec_deals (deleted_at) WHERE deleted_at IS NOT NULL;
CREATE INDEX rec_tasks_trash_idx ON rec_tasks (deleted_at) WHERE deleted_at IS NOT NULL;
CREATE INDEX rec_notes_trash_idx ON rec_notes (deleted_at) WHERE deleted_at IS NOT NULL;

CREATE FUNCTION crm_purge_trash(p_older interval, p_limit integer)
RETURNS TABLE (object_type text, id uuid, company_id uuid)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  k record;
BEGIN
  -- Deals before companies and people: a purged company leaves deals without it (SET NULL) anyway.
  FOR k IN SELECT * FROM (VALUES ('deal', 'rec_deals'), ('task', 'rec_tasks'), ('note', 'rec_notes'),
                                 ('person', 'rec_people'), ('company', 'rec_companies')) AS v (kind, tbl) LOOP
    RETURN QUERY EXECUTE format(
      $q$WITH due AS (
           SELECT r.id FROM %1$I r WHERE r.deleted_at < now() - $1 ORDER BY r.deleted_at LIMIT $2 FOR UPDATE SKIP LOCKED
         ), gone AS (
           DELETE FROM %1$I r USING due WHERE r.id = due.id AND r.deleted_at < now() - $1 RETURNING r.id, r.company_id
         ), own AS (
           DELETE FROM rec_timeline t USING gone WHERE t.record_id = gone.id AND t.object_type = %2$L
         ), written AS (
           DELETE FROM rec_timeline t USING gone WHERE t.subject_id = gone.id
         )
         SELECT %2$L::text, gone.id, gone.company_id FROM gone$q$, k.tbl, k.kind)
      USING p_older, p_limit;
  END LOOP;
END
$$;
ALTER FUNCTION crm_purge_trash(interval, integer) OWNER TO crm_definer;
REVOKE ALL ON FUNCTION crm_purge_trash(interval, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION crm_purge_trash(interval, integer) TO crm_app;

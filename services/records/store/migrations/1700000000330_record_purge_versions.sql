-- Up Migration

-- A record that loses a link to a purged one (migration 300: a purged company's deals and people,
-- a purged person's deals) changed: it got a version in the change log and an UPDATED event, but
-- its own `version`, its etag, stayed as it was, so a client holding the old etag could write over
-- the change and caches keyed by the etag kept the old record. Such a record's `version` now moves
-- with `updated_at`, as every ordinary update moves them, in the statement that purges (the
-- foreign keys' actions then run on the row it updated). A user's purge does the same
-- (store/shared.ts purge); the 30-day job's is this function, as only the definer writes there.
-- Otherwise as migration 300.
CREATE OR REPLACE FUNCTION crm_purge_trash(p_older interval, p_limit integer)
RETURNS TABLE (object_type text, id uuid, company_id uuid, action text, changes jsonb)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  k record;
BEGIN
  -- Deals before people before companies: a record purged in this call is gone before the
  -- purge of what it linked to is looked at, so it is not reported as changed too.
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
         ), cascades AS (
           SELECT * FROM crm_purge_cascades(%2$L, ARRAY(SELECT id FROM gone))
         ), noted AS (
           INSERT INTO rec_timeline (company_id, object_type, record_id, action, actor_type, actor_id, actor_name, changes)
           SELECT c.company_id, c.object_type, c.id, 'updated', 'system', NULL, 'trash purge', c.changes FROM cascades c
         ), deals_bumped AS (
           UPDATE rec_deals d SET version = d.version + 1, updated_at = now()
           FROM cascades c WHERE c.object_type = 'deal' AND d.company_id = c.company_id AND d.id = c.id
         ), people_bumped AS (
           UPDATE rec_people p SET version = p.version + 1, updated_at = now()
           FROM cascades c WHERE c.object_type = 'person' AND p.company_id = c.company_id AND p.id = c.id
         )
         SELECT %2$L::text, gone.id, gone.company_id, 'purged'::text, '[]'::jsonb FROM gone
         UNION ALL
         SELECT c.object_type, c.id, c.company_id, 'updated'::text, c.changes FROM cascades c$q$,
      k.tbl, k.kind)
      USING p_older, p_limit;
  END LOOP;
END
$$;

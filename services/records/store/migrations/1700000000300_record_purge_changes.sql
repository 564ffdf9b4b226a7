-- Up Migration

-- A purge changes more than the record it erases: the foreign keys' actions take a purged
-- company off its deals (SET NULL) and off its people's company links, and a purged person off
-- the deals naming them (CASCADE). Those records changed, so, like any change, they get a version
-- and an event (store/changes.ts); so does every record the trash's 30-day job erases.
--
-- crm_purge_cascades says, for records about to be purged, which other records lose a link and
-- how, as timeline diffs (proto field names, JSON values, empty as null). It reads the links as
-- the calling statement's snapshot shows them: called in the statement that deletes (a STABLE
-- function sees that statement's snapshot), it sees them before the foreign keys' actions. It is
-- the caller's: a user's purge reads under the policies, the job's definer function as definer.
CREATE FUNCTION crm_purge_cascades(p_kind text, p_ids uuid[])
RETURNS TABLE (company_id uuid, object_type text, id uuid, changes jsonb)
LANGUAGE sql STABLE SET search_path = public, pg_temp AS $$
  -- A purged company: its deals lose it.
  SELECT d.company_id, 'deal', d.id, jsonb_build_array(jsonb_build_object('field', 'company_id', 'before', d.rec_company_id, 'after', NULL))
  FROM rec_deals d WHERE p_kind = 'company' AND d.rec_company_id = ANY (p_ids)
  UNION ALL
  -- ... and its people their link to it.
  SELECT p.company_id, 'person', p.person_id, jsonb_build_array(jsonb_build_object('field', 'companies', 'before', p.links, 'after', p.kept))
  FROM (
    SELECT l.company_id, l.person_id,
           jsonb_agg(jsonb_build_object('company_id', l.rec_company_id, 'role', l.role) ORDER BY l.ord) AS links,
           jsonb_agg(jsonb_build_object('company_id', l.rec_company_id, 'role', l.role) ORDER BY l.ord) FILTER (WHERE l.rec_company_id <> ALL (p_ids)) AS kept
    FROM rec_person_companies l
    WHERE p_kind = 'company' AND l.person_id IN (SELECT x.person_id FROM rec_person_companies x WHERE x.rec_company_id = ANY (p_ids))
    GROUP BY l.company_id, l.person_id
  ) p
  UNION ALL
  -- A purged person: the deals naming them lose them.
  SELECT d.company_id, 'deal', d.deal_id, jsonb_build_array(jsonb_build_object('field', 'person_ids', 'before', d.ids, 'after', d.kept))
  FROM (
    SELECT dp.company_id, dp.deal_id,
           jsonb_agg(dp.person_id ORDER BY dp.ord) AS ids,
           jsonb_agg(dp.person_id ORDER BY dp.ord) FILTER (WHERE dp.person_id <> ALL (p_ids)) AS kept
    FROM rec_deal_people dp
    WHERE p_kind = 'person' AND dp.deal_id IN (SELECT x.deal_id FROM rec_deal_people x WHERE x.person_id = ANY (p_ids))
    GROUP BY dp.company_id, dp.deal_id
  ) d
$$;
GRANT EXECUTE ON FUNCTION crm_purge_cascades(text, uuid[]) TO crm_app, crm_definer;

-- The 30-day purge (migration 112) now also answers what the purge changed besides: a row per
-- erased record (action 'purged', changes []) and per record that lost a link ('updated', its
-- diff, also written on that record's timeline as the system's, "trash purge"). The job (store/trash-purge.ts) versions and publishes them in the same transaction, as
-- a user's purge does. Otherwise as before: claimed with SKIP LOCKED, re-checked, deals first.
DROP FUNCTION crm_purge_trash(interval, integer);
CREATE FUNCTION crm_purge_trash(p_older interval, p_limit integer)
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
         )
         SELECT %2$L::text, gone.id, gone.company_id, 'purged'::text, '[]'::jsonb FROM gone
         UNION ALL
         SELECT c.object_type, c.id, c.company_id, 'updated'::text, c.changes FROM cascades c$q$,
      k.tbl, k.kind)
      USING p_older, p_limit;
  END LOOP;
END
$$;
ALTER FUNCTION crm_purge_trash(interval, integer) OWNER TO crm_definer;
REVOKE ALL ON FUNCTION crm_purge_trash(interval, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION crm_purge_trash(interval, integer) TO crm_app;

-- Up Migration

-- A purged company, person or deal also leaves the tasks and notes linking it: the foreign keys'
-- actions delete their rows in rec_task_links / rec_note_links (ON DELETE CASCADE, migration
-- 111). Those tasks and notes changed, like the deals and people of migration 300, but got no
-- event and kept their etag. crm_purge_cascades now also answers them, with their `links` diff
-- (as a task's or note's update writes it: [{object_type, id}] in order, none as null), and its
-- callers move their `version` and `updated_at` in the purging statement, as for deals and
-- people (migration 330): a user's purge and a person's erasure (store/shared.ts
-- eraseWithCascades), and the 30-day job (crm_purge_trash below). Otherwise as migration 300.
CREATE OR REPLACE FUNCTION crm_purge_cascades(p_kind text, p_ids uuid[])
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
  UNION ALL
  -- A purged company, person or deal: the tasks linking it lose the link ...
  SELECT t.company_id, 'task', t.task_id, jsonb_build_array(jsonb_build_object('field', 'links', 'before', t.links, 'after', t.kept))
  FROM (
    SELECT l.company_id, l.task_id,
           jsonb_agg(jsonb_build_object('object_type', l.object_type, 'id', l.record_id) ORDER BY l.ord) AS links,
           jsonb_agg(jsonb_build_object('object_type', l.object_type, 'id', l.record_id) ORDER BY l.ord) FILTER (WHERE l.record_id <> ALL (p_ids)) AS kept
    FROM rec_task_links l
    WHERE l.task_id IN (SELECT x.task_id FROM rec_task_links x WHERE x.object_type = p_kind AND x.record_id = ANY (p_ids))
    GROUP BY l.company_id, l.task_id
  ) t
  UNION ALL
  -- ... and so do the notes.
  SELECT n.company_id, 'note', n.note_id, jsonb_build_array(jsonb_build_object('field', 'links', 'before', n.links, 'after', n.kept))
  FROM (
    SELECT l.company_id, l.note_id,
           jsonb_agg(jsonb_build_object('object_type', l.object_type, 'id', l.record_id) ORDER BY l.ord) AS links,
           jsonb_agg(jsonb_build_object('object_type', l.object_type, 'id', l.record_id) ORDER BY l.ord) FILTER (WHERE l.record_id <> ALL (p_ids)) AS kept
    FROM rec_note_links l
    WHERE l.note_id IN (SELECT x.note_id FROM rec_note_links x WHERE x.object_type = p_kind AND x.record_id = ANY (p_ids))
    GROUP BY l.company_id, l.note_id
  ) n
$$;

-- The 30-day purge (migration 330) with the tasks and notes that lose a link: their version and
-- update time move with the purging statement, as the deals' and people's do, and their diff is
-- written on their own timeline as the system's. Tasks and notes are now purged first: one purged
-- in this call is gone before the records it linked are purged, so it is not reported as changed
-- too (as deals go before people and companies). Otherwise as migration 330.
CREATE OR REPLACE FUNCTION crm_purge_trash(p_older interval, p_limit integer)
RETURNS TABLE (object_type text, id uuid, company_id uuid, action text, changes jsonb)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  k record;
BEGIN
  FOR k IN SELECT * FROM (VALUES ('task', 'rec_tasks'), ('note', 'rec_notes'), ('deal', 'rec_deals'),
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
         ), tasks_bumped AS (
           UPDATE rec_tasks t SET version = t.version + 1, updated_at = now()
           FROM cascades c WHERE c.object_type = 'task' AND t.company_id = c.company_id AND t.id = c.id
         ), notes_bumped AS (
           UPDATE rec_notes n SET version = n.version + 1, updated_at = now()
           FROM cascades c WHERE c.object_type = 'note' AND n.company_id = c.company_id AND n.id = c.id
         )
         SELECT %2$L::text, gone.id, gone.company_id, 'purged'::text, '[]'::jsonb FROM gone
         UNION ALL
         SELECT c.object_type, c.id, c.company_id, 'updated'::text, c.changes FROM cascades c$q$,
      k.tbl, k.kind)
      USING p_older, p_limit;
  END LOOP;
END
$$;

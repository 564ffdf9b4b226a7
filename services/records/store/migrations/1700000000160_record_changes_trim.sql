-- Up Migration

-- The change log (rec_changes, WatchRecords' replay) no longer grows forever: a periodic job of
-- the records service erases, in every tenant, the oldest changes that are older than the
-- retention (RECORDS_CHANGES_RETENTION_DAYS) and not among the tenant's newest versions
-- (RECORDS_CHANGES_KEEP_VERSIONS). What is kept is always one unbroken run of versions up to the
-- tenant's current one; trimmed_through is the highest version erased, so a replay asking for
-- changes after an older version is refused (ListChangesDB: failed_precondition, re-list and
-- watch again) instead of silently missing changes. It reads in the same statement as the
-- changes, so the refusal and the replay agree.

ALTER TABLE rec_versions ADD COLUMN trimmed_through bigint NOT NULL DEFAULT 0 CHECK (trimmed_through >= 0);

-- One narrow SECURITY DEFINER function, as the trash purge (it runs for no tenant). Per tenant, up
-- to p_limit of the oldest changes above trimmed_through and at most version - p_keep; erased up to
-- the first one that is still young (change times follow versions only roughly: a transaction's
-- time is its start, its version is taken at its end), so the kept changes stay gap-free. Several
-- replicas at once are safe: the DELETE erases what is there, trimmed_through only grows.
CREATE FUNCTION crm_trim_changes(p_older interval, p_keep bigint, p_limit integer)
RETURNS TABLE (company_id uuid, trimmed bigint, full_batch boolean)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  t record;
  v_cut bigint;
  v_young bigint;
  v_seen integer;
  v_gone bigint;
BEGIN
  FOR t IN SELECT rv.company_id, rv.version, rv.trimmed_through FROM rec_versions rv
           WHERE rv.version - p_keep > rv.trimmed_through LOOP
    SELECT max(b.version), min(b.version) FILTER (WHERE b.created_at >= now() - p_older), count(*)
      INTO v_cut, v_young, v_seen
      FROM (SELECT c.version, c.created_at FROM rec_changes c
            WHERE c.company_id = t.company_id AND c.version > t.trimmed_through AND c.version <= t.version - p_keep
            ORDER BY c.version LIMIT p_limit) b;
    IF v_young IS NOT NULL THEN
      v_cut := v_young - 1;
    END IF;
    CONTINUE WHEN v_cut IS NULL OR v_cut <= t.trimmed_through;
    DELETE FROM rec_changes c WHERE c.company_id = t.company_id AND c.version > t.trimmed_through AND c.version <= v_cut;
    GET DIAGNOSTICS v_gone = ROW_COUNT;
    UPDATE rec_versions rv SET trimmed_through = greatest(rv.trimmed_through, v_cut) WHERE rv.company_id = t.company_id;
    company_id := t.company_id;
    trimmed := v_gone;
    full_batch := v_young IS NULL AND v_seen >= p_limit;
    RETURN NEXT;
  END LOOP;
END
$$;
ALTER FUNCTION crm_trim_changes(interval, bigint, integer) OWNER TO crm_definer;
REVOKE ALL ON FUNCTION crm_trim_changes(interval, bigint, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION crm_trim_changes(interval, bigint, integer) TO crm_app;

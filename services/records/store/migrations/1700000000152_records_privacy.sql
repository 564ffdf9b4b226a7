-- Up Migration

-- Erasing a person (PrivacyService.ErasePerson, store/privacy.ts). The timeline and the change log
-- are append-only for the application role (no UPDATE grant), and erasure is the one exception:
-- these narrow SECURITY DEFINER functions rewrite them, only in the caller's tenant
-- (crm_company(), set by the transaction) and only for an owner or admin (crm_is_admin(), the
-- caller's current role) — anyone else gets insufficient_privilege.

-- p_text with every occurrence of each of p_words (compared without regard to case) replaced by
-- "[erased]". Words are matched literally (regular-expression characters escaped).
CREATE FUNCTION crm_privacy_scrub(p_text text, p_words text[]) RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE w text;
BEGIN
  FOREACH w IN ARRAY coalesce(p_words, '{}') LOOP
    IF length(w) > 0 THEN
      p_text := regexp_replace(p_text, regexp_replace(w, '([.^$*+?()\[\]{}|\\-])', '\\\1', 'g'), '[erased]', 'gi');
    END IF;
  END LOOP;
  RETURN p_text;
END $$;

-- The timeline after a person's erasure: the person's own entries keep who did what when, their
-- values become "[erased]" (empty ones stay null); entries of the given notes and tasks (their
-- own and those they wrote on linked records) have the words replaced. Returns the entries changed.
CREATE FUNCTION crm_privacy_erase_timeline(p_person uuid, p_subjects uuid[], p_words text[]) RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE n integer; m integer;
BEGIN
  IF NOT crm_is_admin() THEN
    RAISE EXCEPTION 'only owners and admins may erase a person' USING ERRCODE = 'insufficient_privilege';
  END IF;
  UPDATE rec_timeline t SET changes = coalesce((
      SELECT jsonb_agg(jsonb_build_object(
               'field', c->>'field',
               'before', CASE WHEN c->'before' IS NULL OR c->'before' = 'null'::jsonb THEN 'null'::jsonb ELSE '"[erased]"'::jsonb END,
               'after', CASE WHEN c->'after' IS NULL OR c->'after' = 'null'::jsonb THEN 'null'::jsonb ELSE '"[erased]"'::jsonb END)
             ORDER BY o)
      FROM jsonb_array_elements(t.changes) WITH ORDINALITY AS x(c, o)), '[]'::jsonb)
  WHERE t.company_id = crm_company() AND t.object_type = 'person' AND t.record_id = p_person;
  GET DIAGNOSTICS n = ROW_COUNT;
  UPDATE rec_timeline t SET changes = crm_privacy_scrub(t.changes::text, p_words)::jsonb
  WHERE t.company_id = crm_company() AND NOT (t.object_type = 'person' AND t.record_id = p_person)
    AND ((t.object_type IN ('note', 'task') AND t.record_id = ANY(p_subjects)) OR t.subject_id = ANY(p_subjects))
    AND crm_privacy_scrub(t.changes::text, p_words) <> t.changes::text;
  GET DIAGNOSTICS m = ROW_COUNT;
  RETURN n + m;
END $$;

-- Replaces kept change events (WatchRecords' replay) by their anonymized encodings, by version.
CREATE FUNCTION crm_privacy_rewrite_changes(p_versions bigint[], p_events bytea[]) RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE n integer;
BEGIN
  IF NOT crm_is_admin() THEN
    RAISE EXCEPTION 'only owners and admins may erase a person' USING ERRCODE = 'insufficient_privilege';
  END IF;
  UPDATE rec_changes c SET event = x.event
  FROM unnest(p_versions, p_events) AS x(version, event)
  WHERE c.company_id = crm_company() AND c.version = x.version;
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n;
END $$;

-- Drops words from the tenant's search vocabulary that no company, person or deal of the tenant
-- holds any more (trashed ones included).
CREATE FUNCTION crm_privacy_forget_words(p_words text[]) RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE n integer;
BEGIN
  IF NOT crm_is_admin() THEN
    RAISE EXCEPTION 'only owners and admins may erase a person' USING ERRCODE = 'insufficient_privilege';
  END IF;
  DELETE FROM rec_search_words w
  WHERE w.company_id = crm_company() AND w.word = ANY(p_words)
    AND NOT EXISTS (SELECT 1 FROM rec_people p WHERE p.company_id = w.company_id AND p.search_tsv @@ to_tsquery('simple', quote_literal(w.word)))
    AND NOT EXISTS (SELECT 1 FROM rec_companies c WHERE c.company_id = w.company_id AND c.search_tsv @@ to_tsquery('simple', quote_literal(w.word)))
    AND NOT EXISTS (SELECT 1 FROM rec_deals d WHERE d.company_id = w.company_id AND d.search_tsv @@ to_tsquery('simple', quote_literal(w.word)));
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n;
END $$;

-- The functions' owner rewrites the timeline (crm_app still may not).
GRANT UPDATE ON rec_timeline TO crm_definer;

DO $$
DECLARE f text;
BEGIN
  FOREACH f IN ARRAY ARRAY['crm_privacy_erase_timeline(uuid, uuid[], text[])', 'crm_privacy_rewrite_changes(bigint[], bytea[])', 'crm_privacy_forget_words(text[])'] LOOP
    EXECUTE format('ALTER FUNCTION %s OWNER TO crm_definer', f);
    EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
    EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO crm_app', f);
  END LOOP;
END $$;

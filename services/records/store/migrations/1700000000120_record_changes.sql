-- Up Migration

-- Every change of a record gets the tenant's next version (1, 2, 3, ... without gaps, in commit
-- order), and its event (crm.records.v1.RecordChange, built by the store in TypeScript) is kept
-- here by version, for WatchRecords to replay, and written to the outbox in the same transaction.
--
-- The version comes from ONE row per tenant, bumped once per transaction by as many changes as it
-- made (INSERT ... ON CONFLICT DO UPDATE: the row appears with the tenant's first change). Its row
-- lock orders the tenant's writers: version N commits only after N-1 did, so whoever sees N sees
-- every version below it. That lock is held until COMMIT, so the store takes it last, right
-- before the commit (store/changes.ts): the tenant's writers wait on each other only for that
-- last round trip and the commit, not for the rest of their work.

CREATE TABLE rec_versions (
  company_id uuid PRIMARY KEY REFERENCES companies (id) ON DELETE CASCADE,
  version    bigint NOT NULL CHECK (version >= 0)
);

CREATE TABLE rec_changes (
  company_id  uuid NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
  version     bigint NOT NULL CHECK (version >= 1),
  object_type text NOT NULL CHECK (object_type IN ('company', 'person', 'deal', 'task', 'note')),
  record_id   uuid NOT NULL,
  -- The encoded crm.records.v1.RecordChange, exactly as published.
  event       bytea NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (company_id, version)
);
-- A replay of one object type (WatchRecords watches one).
CREATE INDEX rec_changes_type_idx ON rec_changes (company_id, object_type, version);

DO $$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['rec_versions', 'rec_changes'] LOOP
    EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
    -- Every active user of the tenant reads them (WatchRecords is open to all who read records).
    EXECUTE format('CREATE POLICY read ON %I FOR SELECT TO crm_app USING (company_id = crm_company() AND crm_role() IS NOT NULL)', t);
    -- Whoever changes a record of the tenant writes its version and event.
    EXECUTE format('CREATE POLICY add ON %I FOR INSERT TO crm_app WITH CHECK (company_id = crm_company() AND crm_role() IS NOT NULL)', t);
    EXECUTE format('CREATE POLICY definer ON %I TO crm_definer USING (true) WITH CHECK (true)', t);
  END LOOP;
END $$;
CREATE POLICY bump ON rec_versions FOR UPDATE TO crm_app
  USING (company_id = crm_company() AND crm_role() IS NOT NULL) WITH CHECK (company_id = crm_company() AND crm_role() IS NOT NULL);
-- The version only goes up, and changes are never rewritten (crm_app has no UPDATE or DELETE on them).
GRANT SELECT, INSERT, UPDATE ON rec_versions TO crm_app;
GRANT SELECT, INSERT ON rec_changes TO crm_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON rec_versions, rec_changes TO crm_definer;

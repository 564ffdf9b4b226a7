-- Up Migration

-- Imports (ImportService): a job per uploaded file. The file's rows are kept in rec_import_rows
-- (so any replica can run or resume the job), the records the job created or updated in
-- rec_import_records (with their values before, for UndoImport), mappings kept for reuse in
-- rec_import_mappings. Job state lives here: a replica leases a job (lease_token, lease_until,
-- claimed with FOR UPDATE SKIP LOCKED by crm_claim_import) and runs it batch by batch; each batch
-- commits its records, its row results and next_row together, so a replica killed mid-import
-- leaves nothing half done and the next lease resumes at next_row.
CREATE TABLE rec_imports (
  id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  company_id      uuid NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
  creator_id      uuid NOT NULL,
  object_type     text NOT NULL CHECK (object_type IN ('company', 'person')),
  file_name       text NOT NULL DEFAULT '' CHECK (length(file_name) <= 255),
  mode            text NOT NULL DEFAULT 'upsert' CHECK (mode IN ('create', 'update', 'upsert')),
  match_by        text NOT NULL CHECK (length(match_by) BETWEEN 1 AND 60),
  state           text NOT NULL DEFAULT 'awaiting_upload'
                    CHECK (state IN ('awaiting_upload', 'ready', 'queued', 'running', 'succeeded', 'failed', 'cancelled', 'undone')),
  dry_run         boolean NOT NULL DEFAULT false,
  -- Whether a real (not dry) run has started: then it cannot run again.
  applied         boolean NOT NULL DEFAULT false,
  cancel_requested boolean NOT NULL DEFAULT false,
  mapping         jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(mapping) = 'array'),
  columns         text[] NOT NULL DEFAULT '{}',
  suggested       jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(suggested) = 'array'),
  encoding        text NOT NULL DEFAULT '',
  delimiter       text NOT NULL DEFAULT '',
  size_bytes      bigint NOT NULL DEFAULT 0,
  total_rows      bigint NOT NULL DEFAULT 0,
  staged_rows     bigint NOT NULL DEFAULT 0,
  -- The run: the next row to handle (rows before it are done), its counts.
  next_row        bigint NOT NULL DEFAULT 0,
  created_count   bigint NOT NULL DEFAULT 0,
  updated_count   bigint NOT NULL DEFAULT 0,
  merged_count    bigint NOT NULL DEFAULT 0,
  unchanged_count bigint NOT NULL DEFAULT 0,
  failed_count    bigint NOT NULL DEFAULT 0,
  error           text NOT NULL DEFAULT '',
  lease_owner     text NOT NULL DEFAULT '',
  lease_token     uuid,
  lease_until     timestamptz,
  created_at      timestamptz NOT NULL DEFAULT now(),
  started_at      timestamptz,
  ended_at        timestamptz,
  UNIQUE (company_id, id),
  FOREIGN KEY (company_id, creator_id) REFERENCES users (company_id, id)
);
CREATE INDEX rec_imports_list_idx ON rec_imports (company_id, created_at DESC, id DESC);
-- The jobs waiting for a replica.
CREATE INDEX rec_imports_jobs_idx ON rec_imports (lease_until NULLS FIRST) WHERE state IN ('queued', 'running');

-- The file's data rows (row_no from 0), with each row's result once handled: '' pending,
-- 'created', 'updated', 'merged', 'unchanged', 'failed' (reason says why).
CREATE TABLE rec_import_rows (
  company_id uuid NOT NULL,
  import_id  uuid NOT NULL,
  row_no     bigint NOT NULL,
  cells      text[] NOT NULL,
  result     text NOT NULL DEFAULT '',
  reason     text NOT NULL DEFAULT '',
  -- On a dry run: the row's match value (nothing is written, so later rows find earlier ones here).
  match_key  text NOT NULL DEFAULT '',
  PRIMARY KEY (import_id, row_no),
  FOREIGN KEY (company_id, import_id) REFERENCES rec_imports (company_id, id) ON DELETE CASCADE
);
CREATE INDEX rec_import_rows_failed_idx ON rec_import_rows (import_id, row_no) WHERE result = 'failed';
CREATE INDEX rec_import_rows_key_idx ON rec_import_rows (import_id, match_key) WHERE match_key <> '';

-- What a real run did to each record: created, or updated (with its values before, and the
-- record's version after the import's last change: UndoImport skips a record changed since).
CREATE TABLE rec_import_records (
  company_id    uuid NOT NULL,
  import_id     uuid NOT NULL,
  record_id     uuid NOT NULL,
  action        text NOT NULL CHECK (action IN ('created', 'updated')),
  before        jsonb,
  version_after bigint NOT NULL,
  PRIMARY KEY (import_id, record_id),
  FOREIGN KEY (company_id, import_id) REFERENCES rec_imports (company_id, id) ON DELETE CASCADE
);

CREATE TABLE rec_import_mappings (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  company_id  uuid NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
  object_type text NOT NULL CHECK (object_type IN ('company', 'person')),
  name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
  mapping     jsonb NOT NULL CHECK (jsonb_typeof(mapping) = 'array'),
  match_by    text NOT NULL DEFAULT '',
  updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX rec_import_mappings_name_key ON rec_import_mappings (company_id, object_type, lower(name));

-- Every active user of the tenant sees the tenant's imports and mappings; a job is changed by the
-- user who started it or an owner or admin.
DO $$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['rec_imports', 'rec_import_rows', 'rec_import_records', 'rec_import_mappings'] LOOP
    EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
    EXECUTE format('CREATE POLICY read ON %I FOR SELECT TO crm_app USING (company_id = crm_company() AND crm_role() IS NOT NULL)', t);
    EXECUTE format('CREATE POLICY definer ON %I TO crm_definer USING (true) WITH CHECK (true)', t);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %I TO crm_app, crm_definer', t);
  END LOOP;
END $$;
CREATE POLICY add ON rec_imports FOR INSERT TO crm_app
  WITH CHECK (company_id = crm_company() AND crm_role() IS NOT NULL AND creator_id = crm_user());
CREATE POLICY change ON rec_imports FOR UPDATE TO crm_app
  USING (company_id = crm_company() AND (creator_id = crm_user() OR crm_is_admin()))
  WITH CHECK (company_id = crm_company() AND (creator_id = crm_user() OR crm_is_admin()));
-- A job's rows and records: written by the job's batches (as the user who started it), in the
-- tenant; the handlers check who may act on which job (rec_imports' policies).
CREATE POLICY job ON rec_import_rows FOR ALL TO crm_app
  USING (company_id = crm_company() AND crm_role() IS NOT NULL) WITH CHECK (company_id = crm_company() AND crm_role() IS NOT NULL);
CREATE POLICY job ON rec_import_records FOR ALL TO crm_app
  USING (company_id = crm_company() AND crm_role() IS NOT NULL) WITH CHECK (company_id = crm_company() AND crm_role() IS NOT NULL);
CREATE POLICY change ON rec_import_mappings FOR ALL TO crm_app
  USING (company_id = crm_company() AND crm_role() IS NOT NULL) WITH CHECK (company_id = crm_company() AND crm_role() IS NOT NULL);

-- Timeline entries of an import carry its id as the actor; only the user running it writes them.
CREATE POLICY import_add ON rec_timeline FOR INSERT TO crm_app
  WITH CHECK (company_id = crm_company() AND crm_role() IS NOT NULL AND actor_type = 'import'
              AND EXISTS (SELECT 1 FROM rec_imports i WHERE i.id = actor_id AND i.creator_id = crm_user()));

-- A replica leases the next job waiting (or one whose lease ran out: its replica died), before a
-- tenant is known: the job id, its tenant and user, and a new lease token.
CREATE FUNCTION crm_claim_import(p_owner text, p_lease interval)
RETURNS TABLE (import_id uuid, company_id uuid, creator_id uuid, lease_token uuid)
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
  UPDATE rec_imports i SET lease_owner = p_owner, lease_token = gen_random_uuid(), lease_until = now() + p_lease,
         state = 'running', started_at = coalesce(i.started_at, now())
  WHERE i.id = (SELECT j.id FROM rec_imports j
                WHERE j.state IN ('queued', 'running') AND (j.lease_until IS NULL OR j.lease_until < now())
                ORDER BY j.lease_until NULLS FIRST, j.created_at LIMIT 1 FOR UPDATE SKIP LOCKED)
  RETURNING i.id, i.company_id, i.creator_id, i.lease_token
$$;
-- A leased job's tenant and user (the batch then runs as that user).
CREATE FUNCTION crm_import_job(p_id uuid)
RETURNS TABLE (company_id uuid, creator_id uuid)
LANGUAGE sql SECURITY DEFINER STABLE SET search_path = public, pg_temp AS $$
  SELECT i.company_id, i.creator_id FROM rec_imports i WHERE i.id = p_id
$$;
ALTER FUNCTION crm_claim_import(text, interval) OWNER TO crm_definer;
ALTER FUNCTION crm_import_job(uuid) OWNER TO crm_definer;
REVOKE ALL ON FUNCTION crm_claim_import(text, interval), crm_import_job(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION crm_claim_import(text, interval), crm_import_job(uuid) TO crm_app;

-- A value as one CSV cell (RFC 4180): quoted when it holds a quote, a comma, a line break or
-- leading or trailing space; '' for none. Exports build their lines with it (export-store.ts).
CREATE FUNCTION crm_csv_cell(v text) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
$$ SELECT CASE WHEN v IS NULL THEN '' WHEN v ~ '[",\r\n]|^\s|\s$' THEN '"' || replace(v, '"', '""') || '"' ELSE v END $$;

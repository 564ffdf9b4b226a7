-- Up Migration

-- Retry-safe creates (request_id on CreateCompany/Person/Deal/Task/Note, store/request-ids.ts):
-- the record a user's create with a request id made, kept 24 hours. The row is written with the
-- create's COMMIT; a second create with the same id finds it and answers with that record. Two
-- creates racing with one id: the second's COMMIT fails on the primary key and it is run again.
CREATE TABLE rec_request_ids (
  company_id  uuid NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
  user_id     uuid NOT NULL,
  request_id  uuid NOT NULL,
  object_type text NOT NULL CHECK (object_type IN ('company', 'person', 'deal', 'task', 'note')),
  record_id   uuid NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (company_id, user_id, request_id)
);
CREATE INDEX rec_request_ids_created_at ON rec_request_ids (created_at);

-- A user sees and writes only their own request ids, in their tenant, while active.
ALTER TABLE rec_request_ids ENABLE ROW LEVEL SECURITY;
ALTER TABLE rec_request_ids FORCE ROW LEVEL SECURITY;
CREATE POLICY own ON rec_request_ids FOR ALL TO crm_app
  USING (company_id = crm_company() AND crm_role() IS NOT NULL AND user_id = crm_user())
  WITH CHECK (company_id = crm_company() AND crm_role() IS NOT NULL AND user_id = crm_user());
CREATE POLICY definer ON rec_request_ids TO crm_definer USING (true) WITH CHECK (true);
GRANT SELECT, INSERT, DELETE ON rec_request_ids TO crm_app;
GRANT SELECT, DELETE ON rec_request_ids TO crm_definer;

-- Request ids older than p_older, at most p_limit of them (the records service's change-log
-- trimming pass calls it). Returns how many went.
CREATE FUNCTION crm_forget_request_ids(p_older interval, p_limit integer) RETURNS bigint
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp AS $$
  WITH gone AS (
    DELETE FROM rec_request_ids r USING (
      SELECT company_id, user_id, request_id FROM rec_request_ids WHERE created_at < now() - p_older ORDER BY created_at LIMIT p_limit
    ) o
    WHERE r.company_id = o.company_id AND r.user_id = o.user_id AND r.request_id = o.request_id
    RETURNING 1
  )
  SELECT count(*) FROM gone
$$;
ALTER FUNCTION crm_forget_request_ids(interval, integer) OWNER TO crm_definer;
REVOKE ALL ON FUNCTION crm_forget_request_ids(interval, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION crm_forget_request_ids(interval, integer) TO crm_app;

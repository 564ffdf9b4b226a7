-- Up Migration

-- The audit log: append-only. Requests (crm_app) may INSERT rows of their tenant and SELECT
-- them, never UPDATE or DELETE them: no grant, and no policy that would allow it. Old rows are
-- deleted only by the retention job (services/admin/store/audit-store.ts purgeAuditEvents),
-- which runs on dbservice's own connection (the database owner) as crm_retention, a role
-- crm_app is not a member of.
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'crm_retention') THEN CREATE ROLE crm_retention NOLOGIN; END IF;
END $$;
DO $$
BEGIN
  IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
    EXECUTE format('GRANT crm_retention TO %I', current_user);
  END IF;
END $$;
GRANT USAGE ON SCHEMA public TO crm_retention;

CREATE TABLE audit_events (
  -- The order events were written in: keyset pages follow it.
  seq         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  id          uuid NOT NULL DEFAULT gen_random_uuid() UNIQUE,
  company_id  uuid NOT NULL,
  occurred_at timestamptz NOT NULL DEFAULT now(),
  action      text NOT NULL CHECK (action ~ '^[a-z][a-z_]*\.[a-z][a-z_]*$' AND length(action) <= 64),
  actor_type  text NOT NULL CHECK (actor_type IN ('user', 'api_key', 'system', 'anonymous')),
  actor_id    text NOT NULL DEFAULT '' CHECK (length(actor_id) <= 64),
  actor_name  text NOT NULL DEFAULT '' CHECK (length(actor_name) <= 300),
  -- The user the actor acts for (an API key's creator), when there is one.
  user_id     uuid,
  target_type text NOT NULL DEFAULT '' CHECK (length(target_type) <= 64),
  target_id   text NOT NULL DEFAULT '' CHECK (length(target_id) <= 64),
  ip          text NOT NULL DEFAULT '' CHECK (length(ip) <= 64),
  details     jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(details) = 'object')
);
CREATE INDEX audit_events_company_idx ON audit_events (company_id, seq DESC);
CREATE INDEX audit_events_actor_idx ON audit_events (company_id, actor_id, seq DESC);
CREATE INDEX audit_events_time_idx ON audit_events (company_id, occurred_at);
-- The retention job's scan, across tenants.
CREATE INDEX audit_events_occurred_idx ON audit_events (occurred_at);

ALTER TABLE audit_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_events FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_read ON audit_events FOR SELECT TO crm_app USING (company_id = crm_company());
CREATE POLICY tenant_append ON audit_events FOR INSERT TO crm_app WITH CHECK (company_id = crm_company());
CREATE POLICY retention_read ON audit_events FOR SELECT TO crm_retention USING (true);
CREATE POLICY retention_delete ON audit_events FOR DELETE TO crm_retention USING (true);

REVOKE ALL ON audit_events FROM PUBLIC;
GRANT SELECT, INSERT ON audit_events TO crm_app;
GRANT SELECT, DELETE ON audit_events TO crm_retention;

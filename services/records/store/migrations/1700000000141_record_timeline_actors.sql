-- Up Migration

-- The timeline names who made a change (issue 16): a user, an API key acting for its creator, or an
-- import job. actor_name is how to show a non-user actor ("API key Zapier sync"), kept as it was
-- when written. A call made with an API key sets app.api_key_id in its transaction (the store,
-- from the verified token); the policy below admits entries naming that key, and only a key of the
-- acting user's. Entries naming the user keep the first policy (migration 100); an import's its
-- own (rec_imports).
ALTER TABLE rec_timeline ADD COLUMN actor_name text NOT NULL DEFAULT '' CONSTRAINT rec_timeline_actor_name_check CHECK (length(actor_name) <= 200);

CREATE FUNCTION crm_api_key() RETURNS uuid LANGUAGE sql STABLE AS
$$ SELECT nullif(current_setting('app.api_key_id', true), '')::uuid $$;

CREATE POLICY api_key_add ON rec_timeline FOR INSERT TO crm_app
  WITH CHECK (company_id = crm_company() AND crm_role() IS NOT NULL AND actor_type = 'api_key' AND actor_id = crm_api_key()
              AND EXISTS (SELECT 1 FROM api_keys k WHERE k.id = actor_id AND k.created_by = crm_user()));

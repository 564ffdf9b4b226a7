-- Up Migration

-- The CRM's records: companies (customers), people, pipelines with ordered stages, deals, and the
-- timeline of every change. Table names carry a rec_ prefix because `companies` and `company_id`
-- already mean the tenant everywhere: a customer company is a rec_companies row, referred to as
-- rec_company_id.
--
-- Who may do what is enforced here, not only in code. Every request runs in ONE transaction that
-- sets the tenant (app.company_id), the acting user (app.user_id) and that user's current role
-- (app.role, read from users, not from the token, so a demotion takes effect at once). The
-- policies then say: within the tenant, every active user reads everything; owners and admins
-- change everything; members add records they own and change only what they own; only owners and
-- admins erase (DELETE: the purge; moving to the trash is an UPDATE). So a query that forgets
-- its WHERE still sees only its tenant and changes only what the role may.
--
-- Invariants in the schema: lengths and formats (the service checks them first to name the
-- field), a domain unique per tenant, an e-mail address unique per tenant without regard to
-- case, a deal's stage belonging to its pipeline, references only within the tenant (composite
-- foreign keys on (company_id, id)), and one total order of deals per stage (a unique position).

-- The acting user and their role in the current transaction (set with set_config(..., true)).
CREATE FUNCTION crm_user() RETURNS uuid LANGUAGE sql STABLE AS
$$ SELECT nullif(current_setting('app.user_id', true), '')::uuid $$;
CREATE FUNCTION crm_role() RETURNS text LANGUAGE sql STABLE AS
$$ SELECT nullif(current_setting('app.role', true), '') $$;
CREATE FUNCTION crm_is_admin() RETURNS boolean LANGUAGE sql STABLE AS
$$ SELECT coalesce(crm_role() IN ('owner', 'admin'), false) $$;
-- May the acting user change a record owned by p_owner?
CREATE FUNCTION crm_may_edit(p_owner uuid) RETURNS boolean LANGUAGE sql STABLE AS
$$ SELECT coalesce(crm_role() IN ('owner', 'admin') OR (crm_role() = 'member' AND p_owner = crm_user()), false) $$;
-- Every element 1..max_len characters, no two equal.
CREATE FUNCTION crm_text_items_ok(p_items text[], p_max_len integer) RETURNS boolean LANGUAGE sql IMMUTABLE AS
$$ SELECT coalesce(bool_and(length(t) BETWEEN 1 AND p_max_len), true) AND count(DISTINCT t) = count(t) FROM unnest(p_items) AS t $$;
CREATE FUNCTION crm_phones_ok(p_items text[]) RETURNS boolean LANGUAGE sql IMMUTABLE AS
$$ SELECT coalesce(bool_and(t ~ '^\+[1-9][0-9]{6,14}$'), true) AND count(DISTINCT t) = count(t) FROM unnest(p_items) AS t $$;

CREATE TABLE rec_companies (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  company_id  uuid NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
  name        text NOT NULL CONSTRAINT rec_companies_name_check CHECK (length(name) BETWEEN 1 AND 200),
  -- Normalised by the service: lower case, no scheme, path or "www.", IDN in xn-- form.
  domain      text NOT NULL DEFAULT '' CONSTRAINT rec_companies_domain_check
                CHECK (domain = '' OR (length(domain) <= 253 AND domain ~ '^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}$')),
  address     text NOT NULL DEFAULT '' CONSTRAINT rec_companies_address_check CHECK (length(address) <= 500),
  industry    text NOT NULL DEFAULT '' CONSTRAINT rec_companies_industry_check CHECK (length(industry) <= 100),
  size        integer CONSTRAINT rec_companies_size_check CHECK (size BETWEEN 0 AND 10000000),
  owner_id    uuid NOT NULL,
  tags        text[] NOT NULL DEFAULT '{}' CONSTRAINT rec_companies_tags_check CHECK (cardinality(tags) <= 50 AND crm_text_items_ok(tags, 50)),
  -- Custom field values (a later slice validates them against per-tenant definitions).
  custom      jsonb NOT NULL DEFAULT '{}' CONSTRAINT rec_companies_custom_check CHECK (jsonb_typeof(custom) = 'object'),
  version     bigint NOT NULL DEFAULT 1 CHECK (version >= 1),
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now(),
  deleted_at  timestamptz,
  UNIQUE (company_id, id),
  FOREIGN KEY (company_id, owner_id) REFERENCES users (company_id, id)
);
-- Trashed companies keep their domain: undeleting one must not collide.
CREATE UNIQUE INDEX rec_companies_domain_key ON rec_companies (company_id, domain) WHERE domain <> '';
CREATE INDEX rec_companies_created_idx ON rec_companies (company_id, created_at DESC, id DESC) WHERE deleted_at IS NULL;
CREATE INDEX rec_companies_name_idx ON rec_companies (company_id, lower(name), id) WHERE deleted_at IS NULL;
CREATE INDEX rec_companies_owner_idx ON rec_companies (company_id, owner_id);
CREATE INDEX rec_companies_tags_idx ON rec_companies USING gin (tags);

CREATE TABLE rec_people (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  company_id  uuid NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
  first_name  text NOT NULL DEFAULT '' CONSTRAINT rec_people_first_name_check CHECK (length(first_name) <= 100),
  last_name   text NOT NULL DEFAULT '' CONSTRAINT rec_people_last_name_check CHECK (length(last_name) <= 100),
  -- As written, the first one primary; rec_person_emails holds them for uniqueness.
  emails      text[] NOT NULL DEFAULT '{}' CONSTRAINT rec_people_emails_check CHECK (cardinality(emails) <= 20 AND crm_text_items_ok(emails, 254)),
  phones      text[] NOT NULL DEFAULT '{}' CONSTRAINT rec_people_phones_check CHECK (cardinality(phones) <= 20 AND crm_phones_ok(phones)),
  job_title   text NOT NULL DEFAULT '' CONSTRAINT rec_people_job_title_check CHECK (length(job_title) <= 200),
  owner_id    uuid NOT NULL,
  custom      jsonb NOT NULL DEFAULT '{}' CONSTRAINT rec_people_custom_check CHECK (jsonb_typeof(custom) = 'object'),
  version     bigint NOT NULL DEFAULT 1 CHECK (version >= 1),
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now(),
  deleted_at  timestamptz,
  CONSTRAINT rec_people_name_check CHECK (first_name <> '' OR last_name <> ''),
  UNIQUE (company_id, id),
  FOREIGN KEY (company_id, owner_id) REFERENCES users (company_id, id)
);
CREATE INDEX rec_people_created_idx ON rec_people (company_id, created_at DESC, id DESC) WHERE deleted_at IS NULL;
CREATE INDEX rec_people_last_name_idx ON rec_people (company_id, lower(last_name), id) WHERE deleted_at IS NULL;
CREATE INDEX rec_people_owner_idx ON rec_people (company_id, owner_id);

-- Every e-mail address of every person, lower-cased: one person per address in a tenant.
CREATE TABLE rec_person_emails (
  company_id    uuid NOT NULL,
  address_lower text NOT NULL CHECK (address_lower = lower(address_lower) AND length(address_lower) BETWEEN 3 AND 254 AND position('@' IN address_lower) > 1),
  person_id     uuid NOT NULL,
  CONSTRAINT rec_person_emails_address_key PRIMARY KEY (company_id, address_lower),
  FOREIGN KEY (company_id, person_id) REFERENCES rec_people (company_id, id) ON DELETE CASCADE
);
CREATE INDEX rec_person_emails_person_idx ON rec_person_emails (person_id);

CREATE TABLE rec_person_companies (
  company_id     uuid NOT NULL,
  person_id      uuid NOT NULL,
  rec_company_id uuid NOT NULL,
  role           text NOT NULL DEFAULT '' CONSTRAINT rec_person_companies_role_check CHECK (length(role) <= 100),
  -- The link's place in the person's list.
  ord            integer NOT NULL,
  PRIMARY KEY (person_id, rec_company_id),
  FOREIGN KEY (company_id, person_id) REFERENCES rec_people (company_id, id) ON DELETE CASCADE,
  FOREIGN KEY (company_id, rec_company_id) REFERENCES rec_companies (company_id, id) ON DELETE CASCADE
);
CREATE INDEX rec_person_companies_company_idx ON rec_person_companies (rec_company_id);

CREATE TABLE rec_pipelines (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  company_id  uuid NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
  name        text NOT NULL CONSTRAINT rec_pipelines_name_check CHECK (length(name) BETWEEN 1 AND 100),
  version     bigint NOT NULL DEFAULT 1 CHECK (version >= 1),
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now(),
  UNIQUE (company_id, id)
);
CREATE UNIQUE INDEX rec_pipelines_name_key ON rec_pipelines (company_id, lower(name));
CREATE INDEX rec_pipelines_created_idx ON rec_pipelines (company_id, created_at, id);

CREATE TABLE rec_stages (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  company_id  uuid NOT NULL,
  pipeline_id uuid NOT NULL,
  name        text NOT NULL CONSTRAINT rec_stages_name_check CHECK (length(name) BETWEEN 1 AND 100),
  probability integer NOT NULL DEFAULT 0 CONSTRAINT rec_stages_probability_check CHECK (probability BETWEEN 0 AND 100),
  kind        text NOT NULL DEFAULT 'open' CONSTRAINT rec_stages_kind_check CHECK (kind IN ('open', 'won', 'lost')),
  -- 0, 1, 2, ... in the pipeline; deferrable so a reorder can swap places in one statement.
  sort_order  integer NOT NULL CHECK (sort_order >= 0),
  CONSTRAINT rec_stages_order_key UNIQUE (pipeline_id, sort_order) DEFERRABLE INITIALLY IMMEDIATE,
  UNIQUE (company_id, id),
  UNIQUE (pipeline_id, id),
  FOREIGN KEY (company_id, pipeline_id) REFERENCES rec_pipelines (company_id, id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX rec_stages_name_key ON rec_stages (pipeline_id, lower(name));

CREATE TABLE rec_deals (
  id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  company_id          uuid NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
  name                text NOT NULL CONSTRAINT rec_deals_name_check CHECK (length(name) BETWEEN 1 AND 200),
  pipeline_id         uuid NOT NULL,
  stage_id            uuid NOT NULL,
  -- The kanban order in the stage: fractional-indexing keys, compared as bytes.
  position            text COLLATE "C" NOT NULL CONSTRAINT rec_deals_position_check CHECK (length(position) BETWEEN 1 AND 200),
  amount_minor        bigint CONSTRAINT rec_deals_amount_minor_check CHECK (amount_minor >= 0),
  currency_code       text CONSTRAINT rec_deals_currency_code_check CHECK (currency_code ~ '^[A-Z]{3}$'),
  expected_close_date date,
  -- From the stage's kind, kept by the store with every move and stage change.
  status              text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'won', 'lost')),
  lost_reason         text NOT NULL DEFAULT '' CONSTRAINT rec_deals_lost_reason_check CHECK (length(lost_reason) <= 500),
  rec_company_id      uuid,
  owner_id            uuid NOT NULL,
  custom              jsonb NOT NULL DEFAULT '{}' CONSTRAINT rec_deals_custom_check CHECK (jsonb_typeof(custom) = 'object'),
  version             bigint NOT NULL DEFAULT 1 CHECK (version >= 1),
  stage_entered_at    timestamptz NOT NULL DEFAULT now(),
  closed_at           timestamptz,
  created_at          timestamptz NOT NULL DEFAULT now(),
  updated_at          timestamptz NOT NULL DEFAULT now(),
  deleted_at          timestamptz,
  CONSTRAINT rec_deals_amount_check CHECK ((amount_minor IS NULL) = (currency_code IS NULL)),
  UNIQUE (company_id, id),
  -- One total order per stage, trashed deals included (they keep their place for an undelete).
  CONSTRAINT rec_deals_position_key UNIQUE (stage_id, position),
  FOREIGN KEY (company_id, pipeline_id) REFERENCES rec_pipelines (company_id, id),
  -- The stage is one of the pipeline's.
  FOREIGN KEY (pipeline_id, stage_id) REFERENCES rec_stages (pipeline_id, id),
  FOREIGN KEY (company_id, rec_company_id) REFERENCES rec_companies (company_id, id) ON DELETE SET NULL (rec_company_id),
  FOREIGN KEY (company_id, owner_id) REFERENCES users (company_id, id)
);
CREATE INDEX rec_deals_created_idx ON rec_deals (company_id, created_at DESC, id DESC) WHERE deleted_at IS NULL;
CREATE INDEX rec_deals_stage_idx ON rec_deals (company_id, stage_id, position) WHERE deleted_at IS NULL;
CREATE INDEX rec_deals_pipeline_idx ON rec_deals (pipeline_id);
CREATE INDEX rec_deals_company_idx ON rec_deals (rec_company_id) WHERE rec_company_id IS NOT NULL;
CREATE INDEX rec_deals_owner_idx ON rec_deals (company_id, owner_id);

CREATE TABLE rec_deal_people (
  company_id uuid NOT NULL,
  deal_id    uuid NOT NULL,
  person_id  uuid NOT NULL,
  ord        integer NOT NULL,
  PRIMARY KEY (deal_id, person_id),
  FOREIGN KEY (company_id, deal_id) REFERENCES rec_deals (company_id, id) ON DELETE CASCADE,
  FOREIGN KEY (company_id, person_id) REFERENCES rec_people (company_id, id) ON DELETE CASCADE
);
CREATE INDEX rec_deal_people_person_idx ON rec_deal_people (person_id);

-- Every stage a deal was in, for win rates and time in stage. stage_id is kept after the stage
-- is removed (no foreign key), so history outlives pipeline edits.
CREATE TABLE rec_deal_stage_history (
  id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  company_id uuid NOT NULL,
  deal_id    uuid NOT NULL,
  stage_id   uuid NOT NULL,
  entered_at timestamptz NOT NULL,
  left_at    timestamptz,
  actor_id   uuid,
  CHECK (left_at IS NULL OR left_at >= entered_at),
  FOREIGN KEY (company_id, deal_id) REFERENCES rec_deals (company_id, id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX rec_deal_stage_history_open_key ON rec_deal_stage_history (deal_id) WHERE left_at IS NULL;
CREATE INDEX rec_deal_stage_history_deal_idx ON rec_deal_stage_history (deal_id, entered_at);

-- What happened to each record, newest last by id (a record's changes are serialised by its row
-- lock, so their ids follow their commit order).
CREATE TABLE rec_timeline (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  company_id  uuid NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
  object_type text NOT NULL CHECK (object_type IN ('company', 'person', 'deal')),
  record_id   uuid NOT NULL,
  action      text NOT NULL CHECK (action IN ('created', 'updated', 'deleted', 'restored', 'stage_changed')),
  actor_type  text NOT NULL CHECK (actor_type IN ('user', 'api_key', 'import', 'system')),
  actor_id    uuid,
  -- [{"field": "name", "before": ..., "after": ...}, ...]
  changes     jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(changes) = 'array'),
  created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX rec_timeline_record_idx ON rec_timeline (record_id, id DESC);

-- Row-level security, forced even on the tables' owner. Policies are permissive and each names
-- the tenant, so none can widen another.
DO $$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['rec_companies', 'rec_people', 'rec_person_emails', 'rec_person_companies', 'rec_pipelines', 'rec_stages',
                           'rec_deals', 'rec_deal_people', 'rec_deal_stage_history', 'rec_timeline'] LOOP
    EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
    -- Every active user of the tenant reads everything.
    EXECUTE format('CREATE POLICY read ON %I FOR SELECT TO crm_app USING (company_id = crm_company() AND crm_role() IS NOT NULL)', t);
    -- For the jobs of a later slice that run before a tenant is known (the trash''s 30-day purge),
    -- through narrow SECURITY DEFINER functions, as elsewhere.
    EXECUTE format('CREATE POLICY definer ON %I TO crm_definer USING (true) WITH CHECK (true)', t);
  END LOOP;
  -- Owned records: members add what they own and change only what they own; erasing is for
  -- owners and admins.
  FOREACH t IN ARRAY ARRAY['rec_companies', 'rec_people', 'rec_deals'] LOOP
    EXECUTE format('CREATE POLICY add ON %I FOR INSERT TO crm_app WITH CHECK (company_id = crm_company() AND crm_may_edit(owner_id))', t);
    EXECUTE format('CREATE POLICY change ON %I FOR UPDATE TO crm_app USING (company_id = crm_company() AND crm_may_edit(owner_id)) WITH CHECK (company_id = crm_company() AND crm_may_edit(owner_id))', t);
    EXECUTE format('CREATE POLICY purge ON %I FOR DELETE TO crm_app USING (company_id = crm_company() AND crm_is_admin())', t);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %I TO crm_app, crm_definer', t);
  END LOOP;
  -- Pipelines and stages: configuration, changed by owners and admins.
  FOREACH t IN ARRAY ARRAY['rec_pipelines', 'rec_stages'] LOOP
    EXECUTE format('CREATE POLICY admin ON %I FOR ALL TO crm_app USING (company_id = crm_company() AND crm_is_admin()) WITH CHECK (company_id = crm_company() AND crm_is_admin())', t);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %I TO crm_app, crm_definer', t);
  END LOOP;
END $$;

-- Parts of a record are changed by whoever may change the record.
CREATE POLICY write ON rec_person_emails FOR ALL TO crm_app
  USING (company_id = crm_company() AND EXISTS (SELECT 1 FROM rec_people p WHERE p.id = person_id AND crm_may_edit(p.owner_id)))
  WITH CHECK (company_id = crm_company() AND EXISTS (SELECT 1 FROM rec_people p WHERE p.id = person_id AND crm_may_edit(p.owner_id)));
CREATE POLICY write ON rec_person_companies FOR ALL TO crm_app
  USING (company_id = crm_company() AND EXISTS (SELECT 1 FROM rec_people p WHERE p.id = person_id AND crm_may_edit(p.owner_id)))
  WITH CHECK (company_id = crm_company() AND EXISTS (SELECT 1 FROM rec_people p WHERE p.id = person_id AND crm_may_edit(p.owner_id)));
CREATE POLICY write ON rec_deal_people FOR ALL TO crm_app
  USING (company_id = crm_company() AND EXISTS (SELECT 1 FROM rec_deals d WHERE d.id = deal_id AND crm_may_edit(d.owner_id)))
  WITH CHECK (company_id = crm_company() AND EXISTS (SELECT 1 FROM rec_deals d WHERE d.id = deal_id AND crm_may_edit(d.owner_id)));
CREATE POLICY write ON rec_deal_stage_history FOR ALL TO crm_app
  USING (company_id = crm_company() AND EXISTS (SELECT 1 FROM rec_deals d WHERE d.id = deal_id AND crm_may_edit(d.owner_id)))
  WITH CHECK (company_id = crm_company() AND EXISTS (SELECT 1 FROM rec_deals d WHERE d.id = deal_id AND crm_may_edit(d.owner_id)));
GRANT SELECT, INSERT, UPDATE, DELETE ON rec_person_emails, rec_person_companies, rec_deal_people, rec_deal_stage_history TO crm_app, crm_definer;

-- The timeline is written by the acting user only, under their own name, and never rewritten;
-- it is erased with its record (the purge: owners and admins).
CREATE POLICY add ON rec_timeline FOR INSERT TO crm_app
  WITH CHECK (company_id = crm_company() AND crm_role() IS NOT NULL AND actor_type = 'user' AND actor_id = crm_user());
CREATE POLICY purge ON rec_timeline FOR DELETE TO crm_app USING (company_id = crm_company() AND crm_is_admin());
GRANT SELECT, INSERT, DELETE ON rec_timeline TO crm_app, crm_definer;

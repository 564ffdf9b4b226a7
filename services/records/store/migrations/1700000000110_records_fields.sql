-- Up Migration

-- Custom fields (issue 16): definitions per tenant and object type. The values live in each
-- record's `custom` jsonb (key → value); the store checks them against these definitions on every
-- write, in the same transaction. Renaming a field changes only its label; archiving it sets
-- archived_at, and the store then leaves its values out of what it answers (they stay in the
-- rows and come back with an unarchive). A key is never reused (archived fields keep theirs), so
-- a value's type never changes under it.
CREATE TABLE rec_fields (
  id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  company_id    uuid NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
  object_type   text NOT NULL CHECK (object_type IN ('company', 'person', 'deal')),
  key           text NOT NULL CONSTRAINT rec_fields_key_check CHECK (key ~ '^[a-z][a-z0-9_]{0,49}$'),
  label         text NOT NULL CONSTRAINT rec_fields_label_check CHECK (length(label) BETWEEN 1 AND 100),
  type          text NOT NULL CHECK (type IN ('text', 'long_text', 'number', 'money', 'date', 'datetime', 'boolean',
                                                'select', 'multi_select', 'url', 'email', 'phone', 'user')),
  required      boolean NOT NULL DEFAULT false,
  -- [{"value": "gold", "label": "Gold", "archived": false}, ...]: select and multi_select only.
  options       jsonb NOT NULL DEFAULT '[]' CONSTRAINT rec_fields_options_check
                  CHECK (jsonb_typeof(options) = 'array' AND jsonb_array_length(options) <= 200
                         AND (jsonb_array_length(options) = 0 OR type IN ('select', 'multi_select'))),
  currency_code text CONSTRAINT rec_fields_currency_check
                  CHECK ((type = 'money') = (currency_code IS NOT NULL) AND (currency_code IS NULL OR currency_code ~ '^[A-Z]{3}$')),
  description   text NOT NULL DEFAULT '' CONSTRAINT rec_fields_description_check CHECK (length(description) <= 500),
  version       bigint NOT NULL DEFAULT 1 CHECK (version >= 1),
  created_at    timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now(),
  archived_at   timestamptz,
  UNIQUE (company_id, id)
);
CREATE UNIQUE INDEX rec_fields_key_key ON rec_fields (company_id, object_type, key);

ALTER TABLE rec_fields ENABLE ROW LEVEL SECURITY;
ALTER TABLE rec_fields FORCE ROW LEVEL SECURITY;
-- Every active user reads the definitions (the store checks values against them); owners and
-- admins change them, as pipelines.
CREATE POLICY read ON rec_fields FOR SELECT TO crm_app USING (company_id = crm_company() AND crm_role() IS NOT NULL);
CREATE POLICY admin ON rec_fields FOR ALL TO crm_app USING (company_id = crm_company() AND crm_is_admin()) WITH CHECK (company_id = crm_company() AND crm_is_admin());
CREATE POLICY definer ON rec_fields TO crm_definer USING (true) WITH CHECK (true);
GRANT SELECT, INSERT, UPDATE, DELETE ON rec_fields TO crm_app, crm_definer;

-- Filters on custom values: equality on a select, multi-select, boolean or user field is compiled
-- to containment (custom @> '{"key": value}'), which this index answers for any key; other
-- conditions and sorts on custom fields read the tenant's rows through its other indexes.
CREATE INDEX rec_companies_custom_idx ON rec_companies USING gin (custom jsonb_path_ops) WHERE deleted_at IS NULL;
CREATE INDEX rec_people_custom_idx ON rec_people USING gin (custom jsonb_path_ops) WHERE deleted_at IS NULL;
CREATE INDEX rec_deals_custom_idx ON rec_deals USING gin (custom jsonb_path_ops) WHERE deleted_at IS NULL;

-- Up Migration

-- Saved views (ViewService): a name, a filter, a sort and columns for one object type. A personal
-- view belongs to the user who made it (nobody else sees it); a shared view is seen by the whole
-- tenant and made or changed by owners and admins. Enforced by the policies below, not only in code.
CREATE TABLE rec_views (
  id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  company_id   uuid NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
  owner_id     uuid NOT NULL,
  object_type  text NOT NULL CHECK (object_type IN ('company', 'person', 'deal')),
  name         text NOT NULL CONSTRAINT rec_views_name_check CHECK (length(name) BETWEEN 1 AND 100),
  -- The filter tree as proto JSON (crm.records.v1.Filter), checked by the store; null: none.
  filter       jsonb CONSTRAINT rec_views_filter_check CHECK (filter IS NULL OR jsonb_typeof(filter) = 'object'),
  order_by     text NOT NULL DEFAULT '' CONSTRAINT rec_views_order_by_check CHECK (length(order_by) <= 200),
  columns      text[] NOT NULL DEFAULT '{}' CONSTRAINT rec_views_columns_check CHECK (cardinality(columns) <= 50 AND crm_text_items_ok(columns, 100)),
  shared       boolean NOT NULL DEFAULT false,
  show_deleted boolean NOT NULL DEFAULT false,
  version      bigint NOT NULL DEFAULT 1 CHECK (version >= 1),
  created_at   timestamptz NOT NULL DEFAULT now(),
  updated_at   timestamptz NOT NULL DEFAULT now(),
  FOREIGN KEY (company_id, owner_id) REFERENCES users (company_id, id) ON DELETE CASCADE
);
-- Names are unique among the shared views of a type, and among one user's personal views of a type.
CREATE UNIQUE INDEX rec_views_shared_name_key ON rec_views (company_id, object_type, lower(name)) WHERE shared;
CREATE UNIQUE INDEX rec_views_personal_name_key ON rec_views (owner_id, object_type, lower(name)) WHERE NOT shared;
CREATE INDEX rec_views_list_idx ON rec_views (company_id, object_type, lower(name), id);

ALTER TABLE rec_views ENABLE ROW LEVEL SECURITY;
ALTER TABLE rec_views FORCE ROW LEVEL SECURITY;
-- Seen: the shared views, and one's own personal ones.
CREATE POLICY read ON rec_views FOR SELECT TO crm_app
  USING (company_id = crm_company() AND crm_role() IS NOT NULL AND (shared OR owner_id = crm_user()));
-- Made: personal ones by anyone (as themself), shared ones by owners and admins.
CREATE POLICY add ON rec_views FOR INSERT TO crm_app
  WITH CHECK (company_id = crm_company() AND crm_role() IS NOT NULL AND owner_id = crm_user() AND (NOT shared OR crm_is_admin()));
-- Changed and deleted: one's own personal views; shared ones by owners and admins.
CREATE POLICY change ON rec_views FOR UPDATE TO crm_app
  USING (company_id = crm_company() AND crm_role() IS NOT NULL AND ((NOT shared AND owner_id = crm_user()) OR (shared AND crm_is_admin())))
  WITH CHECK (company_id = crm_company() AND crm_role() IS NOT NULL AND ((NOT shared AND owner_id = crm_user()) OR (shared AND crm_is_admin())));
CREATE POLICY remove ON rec_views FOR DELETE TO crm_app
  USING (company_id = crm_company() AND crm_role() IS NOT NULL AND ((NOT shared AND owner_id = crm_user()) OR (shared AND crm_is_admin())));
CREATE POLICY definer ON rec_views TO crm_definer USING (true) WITH CHECK (true);
GRANT SELECT, INSERT, UPDATE, DELETE ON rec_views TO crm_app, crm_definer;

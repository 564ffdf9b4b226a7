-- Up Migration

-- Issue 16's permissions: members read all and edit what they own or are assigned, "or everything
-- where an admin allows it per object type". An owner or admin allows it with a row here (one per
-- object type; none: members edit their own only). Enforced by the write policies below, so a
-- query that forgets its WHERE still changes only what the role may.
CREATE TABLE rec_member_grants (
  company_id  uuid NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
  object_type text NOT NULL CHECK (object_type IN ('company', 'person', 'deal', 'task', 'note')),
  updated_at  timestamptz NOT NULL DEFAULT now(),
  updated_by  uuid,
  PRIMARY KEY (company_id, object_type)
);
ALTER TABLE rec_member_grants ENABLE ROW LEVEL SECURITY;
ALTER TABLE rec_member_grants FORCE ROW LEVEL SECURITY;
CREATE POLICY read ON rec_member_grants FOR SELECT TO crm_app USING (company_id = crm_company() AND crm_role() IS NOT NULL);
CREATE POLICY admin ON rec_member_grants FOR ALL TO crm_app USING (company_id = crm_company() AND crm_is_admin()) WITH CHECK (company_id = crm_company() AND crm_is_admin());
CREATE POLICY definer ON rec_member_grants TO crm_definer USING (true) WITH CHECK (true);
GRANT SELECT, INSERT, UPDATE, DELETE ON rec_member_grants TO crm_app, crm_definer;

-- May the acting member change every record of this type? (Owners and admins may anyway.)
CREATE FUNCTION crm_members_edit_all(p_kind text) RETURNS boolean LANGUAGE sql STABLE AS
$$ SELECT coalesce(crm_role() = 'member', false) AND EXISTS (SELECT 1 FROM rec_member_grants g WHERE g.company_id = crm_company() AND g.object_type = p_kind) $$;
-- crm_may_edit(owner) widened by the object type's grant.
CREATE FUNCTION crm_may_edit_kind(p_kind text, p_owner uuid) RETURNS boolean LANGUAGE sql STABLE AS
$$ SELECT crm_may_edit(p_owner) OR crm_members_edit_all(p_kind) $$;
-- Tasks: the owner, the assignee, or every member where tasks are allowed (the task policies call it).
CREATE OR REPLACE FUNCTION crm_may_edit_task(p_owner uuid, p_assignee uuid) RETURNS boolean LANGUAGE sql STABLE AS
$$ SELECT crm_may_edit(p_owner) OR coalesce(crm_role() = 'member' AND p_assignee = crm_user(), false) OR crm_members_edit_all('task') $$;

-- Records and their parts: changed by whoever may change the record, now per type. INSERT stays
-- "members add what they own" (add policies unchanged).
DROP POLICY change ON rec_companies;
CREATE POLICY change ON rec_companies FOR UPDATE TO crm_app
  USING (company_id = crm_company() AND crm_may_edit_kind('company', owner_id)) WITH CHECK (company_id = crm_company() AND crm_may_edit_kind('company', owner_id));
DROP POLICY change ON rec_people;
CREATE POLICY change ON rec_people FOR UPDATE TO crm_app
  USING (company_id = crm_company() AND crm_may_edit_kind('person', owner_id)) WITH CHECK (company_id = crm_company() AND crm_may_edit_kind('person', owner_id));
DROP POLICY change ON rec_deals;
CREATE POLICY change ON rec_deals FOR UPDATE TO crm_app
  USING (company_id = crm_company() AND crm_may_edit_kind('deal', owner_id)) WITH CHECK (company_id = crm_company() AND crm_may_edit_kind('deal', owner_id));
DROP POLICY change ON rec_notes;
CREATE POLICY change ON rec_notes FOR UPDATE TO crm_app
  USING (company_id = crm_company() AND crm_may_edit_kind('note', author_id)) WITH CHECK (company_id = crm_company() AND crm_may_edit_kind('note', author_id));

DROP POLICY write ON rec_person_emails;
CREATE POLICY write ON rec_person_emails FOR ALL TO crm_app
  USING (company_id = crm_company() AND EXISTS (SELECT 1 FROM rec_people p WHERE p.id = person_id AND crm_may_edit_kind('person', p.owner_id)))
  WITH CHECK (company_id = crm_company() AND EXISTS (SELECT 1 FROM rec_people p WHERE p.id = person_id AND crm_may_edit_kind('person', p.owner_id)));
DROP POLICY write ON rec_person_companies;
CREATE POLICY write ON rec_person_companies FOR ALL TO crm_app
  USING (company_id = crm_company() AND EXISTS (SELECT 1 FROM rec_people p WHERE p.id = person_id AND crm_may_edit_kind('person', p.owner_id)))
  WITH CHECK (company_id = crm_company() AND EXISTS (SELECT 1 FROM rec_people p WHERE p.id = person_id AND crm_may_edit_kind('person', p.owner_id)));
DROP POLICY write ON rec_deal_people;
CREATE POLICY write ON rec_deal_people FOR ALL TO crm_app
  USING (company_id = crm_company() AND EXISTS (SELECT 1 FROM rec_deals d WHERE d.id = deal_id AND crm_may_edit_kind('deal', d.owner_id)))
  WITH CHECK (company_id = crm_company() AND EXISTS (SELECT 1 FROM rec_deals d WHERE d.id = deal_id AND crm_may_edit_kind('deal', d.owner_id)));
DROP POLICY write ON rec_deal_stage_history;
CREATE POLICY write ON rec_deal_stage_history FOR ALL TO crm_app
  USING (company_id = crm_company() AND EXISTS (SELECT 1 FROM rec_deals d WHERE d.id = deal_id AND crm_may_edit_kind('deal', d.owner_id)))
  WITH CHECK (company_id = crm_company() AND EXISTS (SELECT 1 FROM rec_deals d WHERE d.id = deal_id AND crm_may_edit_kind('deal', d.owner_id)));
DROP POLICY write ON rec_note_links;
CREATE POLICY write ON rec_note_links FOR ALL TO crm_app
  USING (company_id = crm_company() AND EXISTS (SELECT 1 FROM rec_notes n WHERE n.id = note_id AND crm_may_edit_kind('note', n.author_id)))
  WITH CHECK (company_id = crm_company() AND EXISTS (SELECT 1 FROM rec_notes n WHERE n.id = note_id AND crm_may_edit_kind('note', n.author_id)));

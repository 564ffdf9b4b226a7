-- Up Migration

-- Issue 16: members edit what they own "or are assigned". Tasks have had an assignee since
-- migration 111; companies and deals get one here (a user of the tenant, or none). A member may
-- change the companies and deals they own or are assigned (or every one where an admin allows
-- the type: migration 142); USING and WITH CHECK are the same, so an assignee cannot hand the
-- record to a third user (its owner, owners and admins can).
ALTER TABLE rec_companies ADD COLUMN assignee_id uuid;
ALTER TABLE rec_companies ADD CONSTRAINT rec_companies_assignee_fkey FOREIGN KEY (company_id, assignee_id) REFERENCES users (company_id, id);
CREATE INDEX rec_companies_assignee_idx ON rec_companies (company_id, assignee_id) WHERE assignee_id IS NOT NULL;
ALTER TABLE rec_deals ADD COLUMN assignee_id uuid;
ALTER TABLE rec_deals ADD CONSTRAINT rec_deals_assignee_fkey FOREIGN KEY (company_id, assignee_id) REFERENCES users (company_id, id);
CREATE INDEX rec_deals_assignee_idx ON rec_deals (company_id, assignee_id) WHERE assignee_id IS NOT NULL;

-- May the acting user change a record of this type owned by p_owner and assigned to p_assignee?
CREATE FUNCTION crm_may_edit_record(p_kind text, p_owner uuid, p_assignee uuid) RETURNS boolean LANGUAGE sql STABLE AS
$$ SELECT crm_may_edit_kind(p_kind, p_owner) OR coalesce(crm_role() = 'member' AND p_assignee = crm_user(), false) $$;

DROP POLICY change ON rec_companies;
CREATE POLICY change ON rec_companies FOR UPDATE TO crm_app
  USING (company_id = crm_company() AND crm_may_edit_record('company', owner_id, assignee_id))
  WITH CHECK (company_id = crm_company() AND crm_may_edit_record('company', owner_id, assignee_id));
DROP POLICY change ON rec_deals;
CREATE POLICY change ON rec_deals FOR UPDATE TO crm_app
  USING (company_id = crm_company() AND crm_may_edit_record('deal', owner_id, assignee_id))
  WITH CHECK (company_id = crm_company() AND crm_may_edit_record('deal', owner_id, assignee_id));
DROP POLICY write ON rec_deal_people;
CREATE POLICY write ON rec_deal_people FOR ALL TO crm_app
  USING (company_id = crm_company() AND EXISTS (SELECT 1 FROM rec_deals d WHERE d.id = deal_id AND crm_may_edit_record('deal', d.owner_id, d.assignee_id)))
  WITH CHECK (company_id = crm_company() AND EXISTS (SELECT 1 FROM rec_deals d WHERE d.id = deal_id AND crm_may_edit_record('deal', d.owner_id, d.assignee_id)));
DROP POLICY write ON rec_deal_stage_history;
CREATE POLICY write ON rec_deal_stage_history FOR ALL TO crm_app
  USING (company_id = crm_company() AND EXISTS (SELECT 1 FROM rec_deals d WHERE d.id = deal_id AND crm_may_edit_record('deal', d.owner_id, d.assignee_id)))
  WITH CHECK (company_id = crm_company() AND EXISTS (SELECT 1 FROM rec_deals d WHERE d.id = deal_id AND crm_may_edit_record('deal', d.owner_id, d.assignee_id)));

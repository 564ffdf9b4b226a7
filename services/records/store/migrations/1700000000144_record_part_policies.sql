-- Up Migration

-- A record's parts (e-mails, company links, deal people, stage history, task and note links) had one FOR ALL
-- `write` policy each, which applies to SELECT too: every row read was also checked against its
-- record's edit rule (a subquery per row, OR'ed with `read`), e.g. 13 s for the time-in-stage report
-- over 200,000 stays. Writing them is split into INSERT, UPDATE and DELETE policies with the same
-- rules, so reading is `read` alone (every active user of the tenant, as before).
DO $$
DECLARE
  t record;
BEGIN
  FOR t IN SELECT * FROM (VALUES
    ('rec_person_emails', 'EXISTS (SELECT 1 FROM rec_people p WHERE p.id = person_id AND crm_may_edit_kind(''person'', p.owner_id))'),
    ('rec_person_companies', 'EXISTS (SELECT 1 FROM rec_people p WHERE p.id = person_id AND crm_may_edit_kind(''person'', p.owner_id))'),
    ('rec_deal_people', 'EXISTS (SELECT 1 FROM rec_deals d WHERE d.id = deal_id AND crm_may_edit_record(''deal'', d.owner_id, d.assignee_id))'),
    ('rec_deal_stage_history', 'EXISTS (SELECT 1 FROM rec_deals d WHERE d.id = deal_id AND crm_may_edit_record(''deal'', d.owner_id, d.assignee_id))'),
    ('rec_note_links', 'EXISTS (SELECT 1 FROM rec_notes n WHERE n.id = note_id AND crm_may_edit_kind(''note'', n.author_id))'),
    ('rec_task_links', 'EXISTS (SELECT 1 FROM rec_tasks t WHERE t.id = task_id AND crm_may_edit_task(t.owner_id, t.assignee_id))')
  ) AS v (tab, rule) LOOP
    EXECUTE format('DROP POLICY write ON %I', t.tab);
    EXECUTE format('CREATE POLICY write_add ON %I FOR INSERT TO crm_app WITH CHECK (company_id = crm_company() AND %s)', t.tab, t.rule);
    EXECUTE format('CREATE POLICY write_change ON %I FOR UPDATE TO crm_app USING (company_id = crm_company() AND %s) WITH CHECK (company_id = crm_company() AND %s)', t.tab, t.rule, t.rule);
    EXECUTE format('CREATE POLICY write_remove ON %I FOR DELETE TO crm_app USING (company_id = crm_company() AND %s)', t.tab, t.rule);
  END LOOP;
END $$;

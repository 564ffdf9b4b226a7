-- Up Migration

-- A chat may be attached to one customer record of the records domain: a company, a person or a
-- deal (the record's page lists its chats). Composite foreign keys on (company_id, id) make the
-- record and the chat belong to the row's own tenant: another tenant's id is refused by the
-- database itself (foreign key checks see every row, row-level security or not; the store turns
-- the refusal into not_found). Exactly one record per row; no row: not attached. Purging the
-- record (the trash's purge) detaches its chats; the chat and its messages stay.
CREATE TABLE chat_records (
  chat_id        uuid PRIMARY KEY,
  company_id     uuid NOT NULL,
  rec_company_id uuid,
  rec_person_id  uuid,
  rec_deal_id    uuid,
  attached_by    uuid NOT NULL,
  attached_at    timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT chat_records_one_record CHECK (num_nonnulls(rec_company_id, rec_person_id, rec_deal_id) = 1),
  CONSTRAINT chat_records_chat_fkey FOREIGN KEY (company_id, chat_id) REFERENCES chats (company_id, id) ON DELETE CASCADE,
  CONSTRAINT chat_records_rec_company_fkey FOREIGN KEY (company_id, rec_company_id) REFERENCES rec_companies (company_id, id) ON DELETE CASCADE,
  CONSTRAINT chat_records_rec_person_fkey FOREIGN KEY (company_id, rec_person_id) REFERENCES rec_people (company_id, id) ON DELETE CASCADE,
  CONSTRAINT chat_records_rec_deal_fkey FOREIGN KEY (company_id, rec_deal_id) REFERENCES rec_deals (company_id, id) ON DELETE CASCADE
);
-- A record's chats (and what the foreign keys' ON DELETE needs).
CREATE INDEX chat_records_company_idx ON chat_records (rec_company_id) WHERE rec_company_id IS NOT NULL;
CREATE INDEX chat_records_person_idx ON chat_records (rec_person_id) WHERE rec_person_id IS NOT NULL;
CREATE INDEX chat_records_deal_idx ON chat_records (rec_deal_id) WHERE rec_deal_id IS NOT NULL;

ALTER TABLE chat_records ENABLE ROW LEVEL SECURITY;
ALTER TABLE chat_records FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant ON chat_records USING (company_id = crm_company()) WITH CHECK (company_id = crm_company());
CREATE POLICY definer ON chat_records TO crm_definer USING (true) WITH CHECK (true);
GRANT SELECT, INSERT, UPDATE, DELETE ON chat_records TO crm_app, crm_definer;

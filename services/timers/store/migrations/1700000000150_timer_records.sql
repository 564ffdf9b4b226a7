-- Up Migration

-- A time entry may be about a customer record — a deal or a company of the records domain — and
-- may be billable. The reference is a composite foreign key on (company_id, id), so the record must
-- exist in the entry's own tenant: another tenant's id is refused by the database itself (foreign
-- key checks see every row, row-level security or not; the store turns the refusal into not_found).
-- At most one of the two is set. Purging the record (the trash's purge) keeps the time and drops
-- the reference, so reports stay whole. Moving a record to the trash keeps the reference: it can
-- be restored.
ALTER TABLE timers
  ADD COLUMN rec_deal_id    uuid,
  ADD COLUMN rec_company_id uuid,
  ADD COLUMN billable       boolean NOT NULL DEFAULT false,
  ADD CONSTRAINT timers_one_record CHECK (num_nonnulls(rec_deal_id, rec_company_id) <= 1),
  ADD CONSTRAINT timers_rec_deal_fkey FOREIGN KEY (company_id, rec_deal_id)
    REFERENCES rec_deals (company_id, id) ON DELETE SET NULL (rec_deal_id),
  ADD CONSTRAINT timers_rec_company_fkey FOREIGN KEY (company_id, rec_company_id)
    REFERENCES rec_companies (company_id, id) ON DELETE SET NULL (rec_company_id);

-- A record's time entries (the record page), newest first; also what the foreign keys' ON DELETE needs.
CREATE INDEX timers_rec_deal_idx ON timers (rec_deal_id, start_time DESC, id DESC) WHERE rec_deal_id IS NOT NULL;
CREATE INDEX timers_rec_company_idx ON timers (rec_company_id, start_time DESC, id DESC) WHERE rec_company_id IS NOT NULL;

-- Up Migration

-- Indexes that the lists' first pages can walk (issue 16's target: a first page of 50 at a
-- million records of a tenant). The lists (store/lists.ts) sort empty values last in both
-- directions and break ties by the id in the direction of the last key, e.g.
--   ORDER BY d.created_at DESC NULLS LAST, d.id DESC NULLS LAST
-- PostgreSQL matches an index to an ORDER BY only when the NULLS placement matches too (a NOT
-- NULL column does not count), so the original "(company_id, created_at DESC, id DESC)" indexes
-- (NULLS FIRST, the default for DESC) were never used for the default order ("create_time
-- desc"): every default first page sorted the whole tenant. The same for sorting by a name: the
-- lists sort by nullif(lower(name), ''), which "(company_id, lower(name), id)" does not match.
-- Measured in bench/scenarios/records.ts (bench/README.md has the numbers).

-- The new indexes first, the old ones dropped last: building an index blocks the table's writes
-- (not its reads) while it runs, but DROP INDEX locks the table entirely until the migration
-- commits, so it comes at the very end.
CREATE INDEX rec_companies_list_created_idx ON rec_companies (company_id, created_at DESC NULLS LAST, id DESC NULLS LAST) WHERE deleted_at IS NULL;
CREATE INDEX rec_people_list_created_idx ON rec_people (company_id, created_at DESC NULLS LAST, id DESC NULLS LAST) WHERE deleted_at IS NULL;
CREATE INDEX rec_deals_list_created_idx ON rec_deals (company_id, created_at DESC NULLS LAST, id DESC NULLS LAST) WHERE deleted_at IS NULL;
CREATE INDEX rec_companies_list_name_idx ON rec_companies (company_id, nullif(lower(name), ''), id) WHERE deleted_at IS NULL;
CREATE INDEX rec_people_list_last_name_idx ON rec_people (company_id, nullif(lower(last_name), ''), id) WHERE deleted_at IS NULL;
-- Deals by value, biggest first (the pipeline's usual view), and by expected close date, soonest first.
CREATE INDEX rec_deals_list_amount_idx ON rec_deals (company_id, amount_minor DESC NULLS LAST, id DESC NULLS LAST) WHERE deleted_at IS NULL;
CREATE INDEX rec_deals_list_close_date_idx ON rec_deals (company_id, expected_close_date, id) WHERE deleted_at IS NULL;

DROP INDEX rec_companies_created_idx, rec_people_created_idx, rec_deals_created_idx, rec_companies_name_idx, rec_people_last_name_idx;

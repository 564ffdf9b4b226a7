-- Up Migration

-- Reports in the company's base currency (ReportService): the base currency and the exchange rates
-- per tenant, set by owners and admins and read by everyone (the policies below). A rate says what
-- ONE unit of a currency is worth in the base currency; `digits` is each currency's number of minor
-- unit digits (ISO 4217: JPY 0, EUR 2, BHD 3), stored with it so a report converts minor units to
-- minor units in one set-based query: base_minor = amount_minor × rate × 10^(base digits − digits).

CREATE TABLE rec_currency_settings (
  company_id    uuid PRIMARY KEY REFERENCES companies (id) ON DELETE CASCADE,
  base_currency text NOT NULL CHECK (base_currency ~ '^[A-Z]{3}$'),
  base_digits   smallint NOT NULL CHECK (base_digits BETWEEN 0 AND 4),
  updated_at    timestamptz NOT NULL DEFAULT now(),
  updated_by    uuid
);

CREATE TABLE rec_exchange_rates (
  company_id    uuid NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
  currency_code text NOT NULL CHECK (currency_code ~ '^[A-Z]{3}$'),
  -- One unit of currency_code in the base currency.
  rate          numeric(30, 12) NOT NULL CONSTRAINT rec_exchange_rates_rate_check CHECK (rate > 0),
  digits        smallint NOT NULL CHECK (digits BETWEEN 0 AND 4),
  updated_at    timestamptz NOT NULL DEFAULT now(),
  updated_by    uuid,
  PRIMARY KEY (company_id, currency_code)
);

DO $$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['rec_currency_settings', 'rec_exchange_rates'] LOOP
    EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
    -- Every active user of the tenant reads them (reports are open to all who read deals).
    EXECUTE format('CREATE POLICY read ON %I FOR SELECT TO crm_app USING (company_id = crm_company() AND crm_role() IS NOT NULL)', t);
    -- Owners and admins set them.
    EXECUTE format('CREATE POLICY admin ON %I FOR ALL TO crm_app USING (company_id = crm_company() AND crm_is_admin()) WITH CHECK (company_id = crm_company() AND crm_is_admin())', t);
    EXECUTE format('CREATE POLICY definer ON %I TO crm_definer USING (true) WITH CHECK (true)', t);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %I TO crm_app, crm_definer', t);
  END LOOP;
END $$;

-- Win rates read deals closed in a period; time in stage reads stays that ended in one.
CREATE INDEX rec_deals_closed_idx ON rec_deals (company_id, pipeline_id, closed_at) WHERE closed_at IS NOT NULL AND deleted_at IS NULL;
CREATE INDEX rec_deal_stage_history_left_idx ON rec_deal_stage_history (company_id, stage_id, left_at) WHERE left_at IS NOT NULL;

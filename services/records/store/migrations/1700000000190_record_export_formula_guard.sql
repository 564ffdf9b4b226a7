-- Up Migration

-- A text cell of an export that a spreadsheet would run as a formula (CSV injection, OWASP): one
-- starting with = + - @ tab or carriage return gets a leading apostrophe, which Excel, LibreOffice
-- and Google Sheets show as text. Values typed as numbers (a company's size, a deal's amount, a
-- number custom field) are not passed through it, so "-5" stays a number where it is one.
-- export-store.ts wraps every text column in it.
CREATE FUNCTION crm_csv_guard(v text) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
$$ SELECT CASE WHEN v ~ '^[=+@\t\r-]' THEN '''' || v ELSE v END $$;


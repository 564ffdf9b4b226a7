-- Up Migration

-- crm_csv_guard (1700000000190) on every text cell of an export without a regular expression: the first
-- character compared to the six that start a formula. Same answers, cheaper per cell.
CREATE OR REPLACE FUNCTION crm_csv_guard(v text) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
$$ SELECT CASE WHEN left(v, 1) IN ('=', '+', '-', '@', E'\t', E'\r') THEN '''' || v ELSE v END $$;

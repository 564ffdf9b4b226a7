-- Up Migration

-- The per-row functions of every write to rec_people and rec_companies, made cheaper with the same
-- results: the CHECKs on e-mail, phone and tag lists (crm_text_items_ok, crm_phones_ok) and the
-- phone tails of the people's search vector (crm_search_phones, in the generated search_tsv).
-- As SQL functions over unnest() they cannot be inlined, so PostgreSQL ran each as a query of its
-- own, per row (an aggregate with a sort for count(DISTINCT), a generate_series): 5,000 people
-- spent ~120 ms in the two CHECKs and ~120 ms in the phone tails, a third of the INSERT's own
-- cost (an import writes thousands of rows a statement). PL/pgSQL loops over the array and asks
-- for distinct values only when there are two or more: ~40 and ~30 ms. The answers are the same
-- (NULL elements are ignored as the aggregates ignored them; store/row-functions.test.ts checks
-- old against new on edge cases); the generated column and the constraints need no rewrite.
CREATE OR REPLACE FUNCTION crm_text_items_ok(p_items text[], p_max_len integer) RETURNS boolean LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE t text; n integer := 0;
BEGIN
  IF p_items IS NULL THEN RETURN true; END IF;
  FOREACH t IN ARRAY p_items LOOP
    IF t IS NOT NULL THEN
      IF length(t) NOT BETWEEN 1 AND p_max_len THEN RETURN false; END IF;
      n := n + 1;
    END IF;
  END LOOP;
  RETURN n <= 1 OR (SELECT count(DISTINCT x) FROM unnest(p_items) AS x) = n;
END $$;

CREATE OR REPLACE FUNCTION crm_phones_ok(p_items text[]) RETURNS boolean LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE t text; n integer := 0;
BEGIN
  IF p_items IS NULL THEN RETURN true; END IF;
  FOREACH t IN ARRAY p_items LOOP
    IF t IS NOT NULL THEN
      IF t !~ '^\+[1-9][0-9]{6,14}$' THEN RETURN false; END IF;
      n := n + 1;
    END IF;
  END LOOP;
  RETURN n <= 1 OR (SELECT count(DISTINCT x) FROM unnest(p_items) AS x) = n;
END $$;

-- Every tail of 7 or more digits of each phone number, as words (121_record_search.sql).
CREATE OR REPLACE FUNCTION crm_search_phones(p_phones text[]) RETURNS text LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE STRICT AS $$
DECLARE p text; d text; o text := ''; k integer;
BEGIN
  FOREACH p IN ARRAY p_phones LOOP
    CONTINUE WHEN p IS NULL;
    d := regexp_replace(p, '[^0-9]', '', 'g');
    FOR k IN 7..length(d) LOOP
      IF o <> '' THEN o := o || ' '; END IF;
      o := o || right(d, k);
    END LOOP;
  END LOOP;
  RETURN o;
END $$;

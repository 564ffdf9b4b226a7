-- Up Migration

-- API keys: only the SHA-256 of the whole key is stored (a 256-bit random secret needs no slow
-- hash), with its visible prefix. A key acts for its creator; a revoked key keeps its row.
CREATE TABLE api_keys (
  id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  company_id          uuid NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
  name                text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
  prefix              text NOT NULL UNIQUE CHECK (prefix ~ '^[0-9a-f]{12}$'),
  key_hash            bytea NOT NULL UNIQUE CHECK (length(key_hash) = 32),
  scopes              text[] NOT NULL CHECK (cardinality(scopes) BETWEEN 1 AND 32),
  requests_per_minute integer NOT NULL CHECK (requests_per_minute BETWEEN 1 AND 100000),
  created_by          uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  created_at          timestamptz NOT NULL DEFAULT now(),
  expires_at          timestamptz,
  last_used_at        timestamptz,
  last_used_ip        text NOT NULL DEFAULT '' CHECK (length(last_used_ip) <= 64),
  revoked_at          timestamptz
);
CREATE INDEX api_keys_company_idx ON api_keys (company_id, created_at DESC);
CREATE INDEX api_keys_creator_idx ON api_keys (created_by) WHERE revoked_at IS NULL;
CREATE INDEX api_keys_revoked_at_idx ON api_keys (revoked_at) WHERE revoked_at IS NOT NULL;

ALTER TABLE api_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE api_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant ON api_keys USING (company_id = crm_company()) WITH CHECK (company_id = crm_company());
CREATE POLICY definer ON api_keys TO crm_definer USING (true) WITH CHECK (true);
-- No DELETE: a key is revoked, never removed (its id stays in the audit log).
GRANT SELECT, INSERT, UPDATE ON api_keys TO crm_app;
GRANT SELECT, UPDATE ON api_keys TO crm_definer;

-- A key's use, before the tenant is known: finds the key by its hash, tells whether it may be
-- used, and records the use (time and address at most once a minute). first_use_today is true
-- for the one call that moved last_used_at into a new UTC day.
CREATE FUNCTION crm_use_api_key(p_hash bytea, p_ip text)
RETURNS TABLE (outcome text, id uuid, company_id uuid, name text, prefix text, scopes text[], requests_per_minute integer,
               created_by uuid, created_at timestamptz, expires_at timestamptz, last_used_at timestamptz, last_used_ip text,
               revoked_at timestamptz, creator_role text, creator_status text, first_use_today boolean)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
#variable_conflict use_column
DECLARE
  k api_keys%ROWTYPE;
  u users%ROWTYPE;
  verdict text := 'valid';
  touched boolean := false;
BEGIN
  SELECT * INTO k FROM api_keys WHERE key_hash = p_hash;
  IF NOT FOUND THEN
    RETURN QUERY SELECT 'unknown'::text, NULL::uuid, NULL::uuid, NULL::text, NULL::text, NULL::text[], NULL::integer, NULL::uuid,
      NULL::timestamptz, NULL::timestamptz, NULL::timestamptz, NULL::text, NULL::timestamptz, NULL::text, NULL::text, false;
    RETURN;
  END IF;
  SELECT * INTO u FROM users WHERE users.id = k.created_by;
  IF k.revoked_at IS NOT NULL THEN verdict := 'revoked';
  ELSIF k.expires_at IS NOT NULL AND k.expires_at <= now() THEN verdict := 'expired';
  ELSIF u.status IS DISTINCT FROM 'active' THEN verdict := 'creator_inactive';
  ELSE
    -- The row lock makes one of two simultaneous first uses the one that moves the time.
    UPDATE api_keys SET last_used_at = now(), last_used_ip = left(coalesce(p_ip, ''), 64)
    WHERE api_keys.id = k.id AND (api_keys.last_used_at IS NULL OR api_keys.last_used_at < now() - interval '1 minute');
    touched := FOUND;
  END IF;
  RETURN QUERY SELECT verdict, k.id, k.company_id, k.name, k.prefix, k.scopes, k.requests_per_minute, k.created_by, k.created_at,
    k.expires_at, CASE WHEN touched THEN now() ELSE k.last_used_at END, CASE WHEN touched THEN left(coalesce(p_ip, ''), 64) ELSE k.last_used_ip END,
    k.revoked_at, u.role, u.status,
    touched AND (k.last_used_at IS NULL OR k.last_used_at < date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC');
END $$;

ALTER FUNCTION crm_use_api_key(bytea, text) OWNER TO crm_definer;
REVOKE ALL ON FUNCTION crm_use_api_key(bytea, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION crm_use_api_key(bytea, text) TO crm_app;

-- The revocation list mirrors revoked API keys too (their id is their access tokens' session id),
-- so a list Redis lost is rebuilt with them (dbservice's keeper, migration 0050).
CREATE OR REPLACE FUNCTION crm_recently_revoked_sessions(p_window_seconds double precision)
RETURNS TABLE (session_id uuid, ttl_seconds double precision)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
  SELECT s.id, p_window_seconds - extract(epoch FROM now() - s.revoked_at)::float8
  FROM sessions s
  WHERE s.revoked_at IS NOT NULL AND s.revoked_at > now() - make_interval(secs => p_window_seconds)
  UNION ALL
  SELECT k.id, p_window_seconds - extract(epoch FROM now() - k.revoked_at)::float8
  FROM api_keys k
  WHERE k.revoked_at IS NOT NULL AND k.revoked_at > now() - make_interval(secs => p_window_seconds)
$$;

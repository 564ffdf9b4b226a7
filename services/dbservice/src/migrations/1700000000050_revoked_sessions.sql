-- Up Migration

-- The revocation list in Redis mirrors sessions.revoked_at. When Redis loses its data, dbservice
-- lists again every session revoked recently enough that its access tokens may still be alive
-- (packages/kit/src/revocations.ts keepRevocationList). Before a tenant is known, so through one
-- narrow SECURITY DEFINER function, never with row-level security switched off.
CREATE INDEX sessions_revoked_at_idx ON sessions (revoked_at) WHERE revoked_at IS NOT NULL;

-- Sessions revoked within the last p_window_seconds, with the seconds left of that window (the
-- age comes from the database's clock, as revoked_at does).
CREATE FUNCTION crm_recently_revoked_sessions(p_window_seconds double precision)
RETURNS TABLE (session_id uuid, ttl_seconds double precision)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
  SELECT s.id, p_window_seconds - extract(epoch FROM now() - s.revoked_at)::float8
  FROM sessions s
  WHERE s.revoked_at IS NOT NULL AND s.revoked_at > now() - make_interval(secs => p_window_seconds)
$$;

ALTER FUNCTION crm_recently_revoked_sessions(double precision) OWNER TO crm_definer;
REVOKE ALL ON FUNCTION crm_recently_revoked_sessions(double precision) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION crm_recently_revoked_sessions(double precision) TO crm_app;

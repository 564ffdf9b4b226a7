-- Up Migration

-- Time entries. Invariants live here, not only in code:
--  * at most one running timer per user: a partial unique index on end_time IS NULL;
--  * a finished entry ends after it starts (so no entry is an empty range);
--  * no two entries of one user overlap, half-open [start_time, end_time) — ending at 10:00 and
--    starting at 10:00 is fine; the running timer counts as [start_time, infinity), so nothing can
--    be added after its start while it runs. An exclusion constraint needs btree_gist for the
--    uuid equality part; it is a trusted extension (PostgreSQL 13+), and PGlite ships it.
-- Times are stored with millisecond precision (dbservice truncates), the precision of the API.
CREATE EXTENSION IF NOT EXISTS btree_gist;

CREATE TABLE timers (
  id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  company_id   uuid NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
  user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  description  text NOT NULL DEFAULT '' CHECK (length(description) <= 1000),
  start_time   timestamptz NOT NULL,
  end_time     timestamptz,
  -- Set when the forgotten-timer job stopped it at the maximum running time.
  auto_stopped boolean NOT NULL DEFAULT false,
  created_at   timestamptz NOT NULL DEFAULT now(),
  updated_at   timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT timers_end_after_start CHECK (end_time IS NULL OR end_time > start_time)
);
-- Created before the exclusion constraint so that a second running timer is reported as exactly
-- that (indexes are checked in creation order), although two open ranges would overlap anyway.
CREATE UNIQUE INDEX timers_one_running ON timers (user_id) WHERE end_time IS NULL;
ALTER TABLE timers ADD CONSTRAINT timers_no_overlap EXCLUDE USING gist (user_id WITH =, tstzrange(start_time, end_time, '[)') WITH &&);
-- Listing (newest first, keyset) and reports by user and time.
CREATE INDEX timers_user_start_idx ON timers (user_id, start_time DESC, id DESC);
-- The forgotten-timer job: running timers, oldest first.
CREATE INDEX timers_running_since_idx ON timers (start_time) WHERE end_time IS NULL;

ALTER TABLE timers ENABLE ROW LEVEL SECURITY;
ALTER TABLE timers FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant ON timers USING (company_id = crm_company()) WITH CHECK (company_id = crm_company());
CREATE POLICY definer ON timers TO crm_definer USING (true) WITH CHECK (true);
GRANT SELECT, INSERT, UPDATE, DELETE ON timers TO crm_app, crm_definer;

-- Stops timers of every company that have run longer than p_max, at start_time + p_max.
-- Runs before any tenant is known (a periodic job), so it is one narrow SECURITY DEFINER function.
-- Safe on several replicas at once: rows another transaction holds are skipped (SKIP LOCKED), and
-- the UPDATE re-checks that the timer still runs and is still overdue.
CREATE FUNCTION crm_stop_forgotten_timers(p_max interval, p_limit integer)
RETURNS TABLE (id uuid, company_id uuid, user_id uuid, description text, start_time timestamptz, end_time timestamptz)
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp AS $$
  WITH due AS (
    SELECT t.id FROM timers t
    WHERE t.end_time IS NULL AND t.start_time < now() - p_max
    ORDER BY t.start_time
    LIMIT p_limit
    FOR UPDATE SKIP LOCKED
  )
  UPDATE timers t SET end_time = t.start_time + p_max, auto_stopped = true, updated_at = now()
  FROM due
  WHERE t.id = due.id AND t.end_time IS NULL AND t.start_time < now() - p_max
  RETURNING t.id, t.company_id, t.user_id, t.description, t.start_time, t.end_time
$$;
ALTER FUNCTION crm_stop_forgotten_timers(interval, integer) OWNER TO crm_definer;
REVOKE ALL ON FUNCTION crm_stop_forgotten_timers(interval, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION crm_stop_forgotten_timers(interval, integer) TO crm_app;

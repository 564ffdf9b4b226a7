-- Up Migration

-- crm_wh_claim without scanning the due backlog (issue 18). Measured with 51 endpoints and 51,000
-- pending deliveries (services/webhooks/test/pg-cost.ts): 53 ms of PostgreSQL per claim of 64, of
-- which the candidate endpoints' `SELECT DISTINCT endpoint_id` was a sequential scan of every due
-- delivery (17 ms), each endpoint's in-flight count read all its pending rows (1.7 ms × endpoints),
-- and the leased rows were found again by `lease`, which no index covers (a sequential scan).
--
-- Now: the endpoints that have pending deliveries are found by a skip scan of an index of pending
-- deliveries by (endpoint, due time), one seek per endpoint, starting at a random endpoint and
-- wrapping once (no endpoint is always last); each endpoint's in-flight deliveries are counted
-- from an index of leased pending ones; its due deliveries are leased oldest first from the same
-- (endpoint, due time) index with LIMIT; the leased rows are returned by id. The rules are those
-- of migration 240: at most p_per_endpoint in flight per endpoint (leased and not expired), an
-- ordered endpoint one at a time and only its oldest pending version, rows counted as leased.

CREATE INDEX wh_deliveries_queue_idx ON wh_deliveries (endpoint_id, next_at) WHERE status = 'pending';
CREATE INDEX wh_deliveries_leased_idx ON wh_deliveries (endpoint_id) WHERE status = 'pending' AND lease IS NOT NULL;
-- Served by wh_deliveries_queue_idx now; nothing else read pending deliveries by due time alone.
DROP INDEX wh_deliveries_due_idx;

CREATE OR REPLACE FUNCTION crm_wh_claim(p_limit integer, p_per_endpoint integer, p_lease interval, p_now timestamptz)
RETURNS TABLE (id uuid, company_id uuid, endpoint_id uuid, url text, secrets text[], event_id text, body text,
               attempts integer, queued_at timestamptz, lease uuid)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  v_lease uuid := gen_random_uuid();
  v_start uuid := gen_random_uuid();
  v_after uuid := v_start;
  v_wrapped boolean := false;
  v_ep uuid;
  v_ordered boolean;
  v_slots integer;
  v_got uuid[];
  v_ids uuid[] := '{}';
  v_seen integer := 0;
BEGIN
  WHILE cardinality(v_ids) < p_limit AND v_seen < 10000 LOOP
    -- The next endpoint with pending deliveries after v_after (from v_start to the end, then from
    -- the beginning up to v_start): one index seek. (Two statements: an OR of the two ranges
    -- would not be an index range.)
    IF v_wrapped THEN
      SELECT d.endpoint_id INTO v_ep FROM wh_deliveries d
       WHERE d.status = 'pending' AND d.endpoint_id > v_after AND d.endpoint_id <= v_start ORDER BY d.endpoint_id LIMIT 1;
    ELSE
      SELECT d.endpoint_id INTO v_ep FROM wh_deliveries d
       WHERE d.status = 'pending' AND d.endpoint_id > v_after ORDER BY d.endpoint_id LIMIT 1;
    END IF;
    IF v_ep IS NULL THEN
      EXIT WHEN v_wrapped;
      v_wrapped := true;
      v_after := '00000000-0000-0000-0000-000000000000';
      CONTINUE;
    END IF;
    v_after := v_ep;
    v_seen := v_seen + 1;
    -- Two workers never count one endpoint's in-flight deliveries at once.
    SELECT en.ordered INTO v_ordered FROM wh_endpoints en WHERE en.id = v_ep AND en.active FOR UPDATE SKIP LOCKED;
    CONTINUE WHEN NOT FOUND;
    SELECT CASE WHEN v_ordered THEN 1 ELSE p_per_endpoint END - count(*) INTO v_slots
      FROM wh_deliveries d WHERE d.endpoint_id = v_ep AND d.status = 'pending' AND d.lease IS NOT NULL AND d.lease_until > p_now;
    CONTINUE WHEN v_slots <= 0;
    v_slots := least(v_slots, p_limit - cardinality(v_ids));
    IF v_ordered THEN
      -- Only the oldest pending version, and only once it is due.
      WITH u AS (
        UPDATE wh_deliveries d SET lease = v_lease, lease_until = p_now + p_lease
         WHERE d.id = (SELECT o.id FROM wh_deliveries o WHERE o.endpoint_id = v_ep AND o.status = 'pending'
                       ORDER BY o.version, o.created_at LIMIT 1)
           AND d.next_at <= p_now AND (d.lease_until IS NULL OR d.lease_until <= p_now)
        RETURNING d.id)
      SELECT array_agg(u.id) INTO v_got FROM u;
    ELSE
      WITH u AS (
        UPDATE wh_deliveries d SET lease = v_lease, lease_until = p_now + p_lease
         WHERE d.id IN (SELECT o.id FROM wh_deliveries o WHERE o.endpoint_id = v_ep AND o.status = 'pending' AND o.next_at <= p_now
                          AND (o.lease_until IS NULL OR o.lease_until <= p_now)
                        ORDER BY o.next_at LIMIT v_slots FOR UPDATE SKIP LOCKED)
        RETURNING d.id)
      SELECT array_agg(u.id) INTO v_got FROM u;
    END IF;
    v_ids := v_ids || coalesce(v_got, '{}');
  END LOOP;
  RETURN QUERY
    SELECT d.id, d.company_id, d.endpoint_id, en.url,
           CASE WHEN en.prev_secret IS NOT NULL AND en.prev_until > p_now THEN ARRAY[en.secret, en.prev_secret] ELSE ARRAY[en.secret] END,
           d.event_id, d.body, d.attempts, d.queued_at, d.lease
      FROM wh_deliveries d JOIN wh_endpoints en ON en.id = d.endpoint_id
     WHERE d.id = ANY (v_ids);
END
$$;

-- Up Migration

-- crm_wh_claim leases up to p_limit deliveries, counted as ROWS leased. Before, it subtracted each
-- endpoint's free slots from what was left to lease whatever it leased there, so with one due
-- delivery per endpoint a claim for 64 leased about 16 and a claim for 8 over 10 endpoints 2.
-- The per-endpoint limits are unchanged: at most p_per_endpoint in flight per endpoint (leased and
-- not expired), an ordered endpoint one at a time and only its oldest pending version, so a slow
-- endpoint holds its own slots and never the others'.
CREATE OR REPLACE FUNCTION crm_wh_claim(p_limit integer, p_per_endpoint integer, p_lease interval, p_now timestamptz)
RETURNS TABLE (id uuid, company_id uuid, endpoint_id uuid, url text, secrets text[], event_id text, body text,
               attempts integer, queued_at timestamptz, lease uuid)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  v_lease uuid := gen_random_uuid();
  e record;
  v_left integer := p_limit;
  v_slots integer;
  v_leased integer;
BEGIN
  FOR e IN
    SELECT en.id, en.ordered FROM wh_endpoints en
    WHERE en.active AND en.id IN (SELECT DISTINCT d.endpoint_id FROM wh_deliveries d
                                  WHERE d.status = 'pending' AND d.next_at <= p_now AND (d.lease_until IS NULL OR d.lease_until <= p_now)
                                  LIMIT 1000)
    ORDER BY random()
    FOR UPDATE OF en SKIP LOCKED
  LOOP
    EXIT WHEN v_left <= 0;
    SELECT CASE WHEN e.ordered THEN 1 ELSE p_per_endpoint END - count(*) INTO v_slots
      FROM wh_deliveries d WHERE d.endpoint_id = e.id AND d.status = 'pending' AND d.lease_until > p_now;
    CONTINUE WHEN v_slots <= 0;
    v_slots := least(v_slots, v_left);
    IF e.ordered THEN
      -- Only the oldest pending version, and only once it is due.
      UPDATE wh_deliveries d SET lease = v_lease, lease_until = p_now + p_lease
       WHERE d.id = (SELECT o.id FROM wh_deliveries o WHERE o.endpoint_id = e.id AND o.status = 'pending'
                     ORDER BY o.version, o.created_at LIMIT 1)
         AND d.next_at <= p_now AND (d.lease_until IS NULL OR d.lease_until <= p_now);
    ELSE
      UPDATE wh_deliveries d SET lease = v_lease, lease_until = p_now + p_lease
       WHERE d.id IN (SELECT o.id FROM wh_deliveries o WHERE o.endpoint_id = e.id AND o.status = 'pending' AND o.next_at <= p_now
                        AND (o.lease_until IS NULL OR o.lease_until <= p_now)
                      ORDER BY o.next_at LIMIT v_slots FOR UPDATE SKIP LOCKED);
    END IF;
    GET DIAGNOSTICS v_leased = ROW_COUNT;
    v_left := v_left - v_leased;
  END LOOP;
  RETURN QUERY
    SELECT d.id, d.company_id, d.endpoint_id, en.url,
           CASE WHEN en.prev_secret IS NOT NULL AND en.prev_until > p_now THEN ARRAY[en.secret, en.prev_secret] ELSE ARRAY[en.secret] END,
           d.event_id, d.body, d.attempts, d.queued_at, d.lease
      FROM wh_deliveries d JOIN wh_endpoints en ON en.id = d.endpoint_id
     WHERE d.lease = v_lease;
END
$$;

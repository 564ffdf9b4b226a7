-- Up Migration

-- Webhooks (issue 18): the company's endpoints, and one delivery per (endpoint, event) with its
-- attempts. Deliveries are the per-endpoint queue: the webhooks workers lease due ones across
-- every company through crm_wh_claim (FOR UPDATE SKIP LOCKED on the endpoint, then on the
-- deliveries), so a worker killed mid-delivery leaves a lease that runs out and another takes it.
-- The webhook-id (event_id) is part of the delivery and never changes: retries, redeliveries and
-- replays send the same one.

CREATE TABLE wh_endpoints (
  id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  company_id         uuid NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
  url                text NOT NULL CHECK (length(url) BETWEEN 8 AND 2000),
  event_types        text[] NOT NULL CHECK (cardinality(event_types) BETWEEN 1 AND 100),
  description        text NOT NULL DEFAULT '' CHECK (length(description) <= 500),
  ordered            boolean NOT NULL DEFAULT false,
  active             boolean NOT NULL DEFAULT true,
  disabled_reason    text NOT NULL DEFAULT '',
  -- The signing secrets (whsec_…): HMAC needs them in clear. The previous one signs too until prev_until.
  secret             text NOT NULL,
  prev_secret        text,
  prev_until         timestamptz,
  created_at         timestamptz NOT NULL DEFAULT now(),
  updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX wh_endpoints_company_idx ON wh_endpoints (company_id, created_at);

CREATE TABLE wh_deliveries (
  id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  company_id   uuid NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
  endpoint_id  uuid NOT NULL REFERENCES wh_endpoints (id) ON DELETE CASCADE,
  event_id     text NOT NULL,
  event_type   text NOT NULL,
  version      bigint NOT NULL DEFAULT 0,
  body         text NOT NULL,
  status       text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'succeeded', 'failed')),
  attempts     integer NOT NULL DEFAULT 0,
  next_at      timestamptz NOT NULL,
  lease        uuid,
  lease_until  timestamptz,
  -- When it was queued, or queued again (redeliver, replay): its 24 hours of retries count from here.
  queued_at    timestamptz NOT NULL,
  created_at   timestamptz NOT NULL,
  UNIQUE (endpoint_id, event_id)
);
-- The workers' scan: pending deliveries by due time.
CREATE INDEX wh_deliveries_due_idx ON wh_deliveries (next_at) WHERE status = 'pending';
-- An endpoint's queue (ordered endpoints: by version) and its log.
CREATE INDEX wh_deliveries_endpoint_idx ON wh_deliveries (endpoint_id, status, version, created_at);
CREATE INDEX wh_deliveries_log_idx ON wh_deliveries (endpoint_id, created_at DESC, id DESC);

CREATE TABLE wh_attempts (
  id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  company_id       uuid NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
  delivery_id      uuid NOT NULL REFERENCES wh_deliveries (id) ON DELETE CASCADE,
  attempted_at     timestamptz NOT NULL,
  http_status      integer NOT NULL DEFAULT 0,
  latency_ms       integer NOT NULL DEFAULT 0,
  error            text NOT NULL DEFAULT '',
  response_prefix  text NOT NULL DEFAULT ''
);
CREATE INDEX wh_attempts_delivery_idx ON wh_attempts (delivery_id, id);

DO $$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['wh_endpoints', 'wh_deliveries', 'wh_attempts'] LOOP
    EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
    -- The store checks the acting user's role for the endpoint RPCs; the delivery queue's RPCs run
    -- for the webhooks service in the tenant of the event or the delivery.
    EXECUTE format('CREATE POLICY tenant ON %I TO crm_app USING (company_id = crm_company()) WITH CHECK (company_id = crm_company())', t);
    EXECUTE format('CREATE POLICY definer ON %I TO crm_definer USING (true) WITH CHECK (true)', t);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %I TO crm_app, crm_definer', t);
  END LOOP;
END $$;

-- Leases due deliveries of every company. Endpoints are locked SKIP LOCKED (two workers never
-- count one endpoint's in-flight deliveries at once), each gets at most p_per_endpoint deliveries
-- in flight (leased and not expired), an ordered endpoint one at a time and only its oldest
-- pending version. Returns the leased rows; the lease runs until p_now + p_lease.
CREATE FUNCTION crm_wh_claim(p_limit integer, p_per_endpoint integer, p_lease interval, p_now timestamptz)
RETURNS TABLE (id uuid, company_id uuid, endpoint_id uuid, url text, secrets text[], event_id text, body text,
               attempts integer, queued_at timestamptz, lease uuid)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  v_lease uuid := gen_random_uuid();
  e record;
  v_left integer := p_limit;
  v_slots integer;
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
    v_left := v_left - v_slots;
  END LOOP;
  RETURN QUERY
    SELECT d.id, d.company_id, d.endpoint_id, en.url,
           CASE WHEN en.prev_secret IS NOT NULL AND en.prev_until > p_now THEN ARRAY[en.secret, en.prev_secret] ELSE ARRAY[en.secret] END,
           d.event_id, d.body, d.attempts, d.queued_at, d.lease
      FROM wh_deliveries d JOIN wh_endpoints en ON en.id = d.endpoint_id
     WHERE d.lease = v_lease;
END
$$;

-- The log is kept 30 days: settled deliveries older than p_before go, with their attempts.
CREATE FUNCTION crm_wh_purge(p_before timestamptz)
RETURNS integer
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp AS $$
  WITH gone AS (DELETE FROM wh_deliveries WHERE status <> 'pending' AND queued_at < p_before RETURNING 1)
  SELECT count(*)::integer FROM gone
$$;

ALTER FUNCTION crm_wh_claim(integer, integer, interval, timestamptz) OWNER TO crm_definer;
ALTER FUNCTION crm_wh_purge(timestamptz) OWNER TO crm_definer;
REVOKE ALL ON FUNCTION crm_wh_claim(integer, integer, interval, timestamptz), crm_wh_purge(timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION crm_wh_claim(integer, integer, interval, timestamptz), crm_wh_purge(timestamptz) TO crm_app;

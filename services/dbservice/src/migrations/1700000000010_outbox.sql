-- Up Migration

-- The transactional outbox: messages for RabbitMQ written in the same transaction as the change
-- they announce, published by the relay (relay.ts) with publisher confirms and deleted after the
-- confirm. Not a tenant table: requests (crm_app) may only INSERT; the relay runs as the owner.
CREATE TABLE outbox (
  id              bigserial PRIMARY KEY,
  exchange        text NOT NULL,
  routing_key     text NOT NULL,
  payload         bytea NOT NULL,
  content_type    text NOT NULL,
  message_id      text,
  headers         jsonb NOT NULL DEFAULT '{}',
  company_id      uuid,
  created_at      timestamptz NOT NULL DEFAULT now(),
  -- Failed publishes (e.g. no queue yet for a mandatory message) wait with backoff.
  attempts        integer NOT NULL DEFAULT 0,
  next_attempt_at timestamptz NOT NULL DEFAULT now(),
  last_error      text
);
CREATE INDEX outbox_due_idx ON outbox (next_attempt_at, id);

REVOKE ALL ON outbox FROM PUBLIC;
GRANT INSERT ON outbox TO crm_app, crm_definer;
GRANT USAGE ON SEQUENCE outbox_id_seq TO crm_app, crm_definer;

-- Wakes the relay at commit (LISTEN outbox); one notification per transaction is enough.
CREATE FUNCTION crm_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('outbox', '');
  RETURN NULL;
END $$;
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox FOR EACH STATEMENT EXECUTE FUNCTION crm_outbox_notify();

-- Up Migration

-- Admin: deactivation time, and the admin list's order (name, email) with keyset paging.
ALTER TABLE users ADD COLUMN deactivated_at timestamptz;
CREATE INDEX users_company_name_idx ON users (company_id, name, email, id);

-- One-time tokens: only their SHA-256 hashes are kept. An invitation lasts 72 h; a password reset
-- minutes. Spending one (or a newer one) sets spent_at; nothing is ever deleted by the app.
CREATE TABLE invite_tokens (
  hash       bytea PRIMARY KEY CHECK (length(hash) = 32),
  company_id uuid NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
  user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  expires_at timestamptz NOT NULL,
  spent_at   timestamptz,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX invite_tokens_user_idx ON invite_tokens (user_id) WHERE spent_at IS NULL;

CREATE TABLE password_resets (
  hash       bytea PRIMARY KEY CHECK (length(hash) = 32),
  company_id uuid NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
  user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  expires_at timestamptz NOT NULL,
  spent_at   timestamptz,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX password_resets_user_idx ON password_resets (user_id) WHERE spent_at IS NULL;

-- E-mails and where they are. The body travels in the outbox task only (it may hold a one-time
-- link), so it is not kept here. The same idempotency key within a company is one e-mail.
CREATE TABLE emails (
  id              uuid PRIMARY KEY,
  company_id      uuid NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
  kind            text NOT NULL CHECK (kind IN ('welcome', 'password_reset', 'custom')),
  to_address      text NOT NULL CHECK (length(to_address) BETWEEN 3 AND 254),
  subject         text NOT NULL CHECK (length(subject) <= 998),
  locale          text NOT NULL DEFAULT 'en' CHECK (length(locale) <= 35),
  idempotency_key text CHECK (length(idempotency_key) BETWEEN 1 AND 128),
  status          text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'sent', 'failed')),
  attempts        integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  last_error      text NOT NULL DEFAULT '' CHECK (length(last_error) <= 2000),
  smtp_message_id text,
  sent_at         timestamptz,
  created_at      timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX emails_idempotency_key ON emails (company_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX emails_company_idx ON emails (company_id, created_at);

DO $$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['invite_tokens', 'password_resets', 'emails'] LOOP
    EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
    EXECUTE format('CREATE POLICY tenant ON %I USING (company_id = crm_company()) WITH CHECK (company_id = crm_company())', t);
    EXECUTE format('CREATE POLICY definer ON %I TO crm_definer USING (true) WITH CHECK (true)', t);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %I TO crm_app, crm_definer', t);
  END LOOP;
END $$;

-- Which of these logins (emails, phones) belong to anyone, in any company: AddUsers says which
-- login of a refused row is taken. Logins are unique across the system, so this reveals nothing
-- the refused insert did not.
CREATE FUNCTION crm_logins_taken(p_emails text[], p_phones text[])
RETURNS TABLE (login text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
  SELECT u.email FROM users u WHERE u.email = ANY (p_emails)
  UNION
  SELECT u.phone FROM users u WHERE u.phone = ANY (p_phones)
$$;

-- Password reset, before the tenant is known: stores the token hash for an ACTIVE account only.
CREATE FUNCTION crm_create_password_reset(p_email text, p_phone text, p_hash bytea, p_expires timestamptz)
RETURNS TABLE (user_id uuid, company_id uuid, email text, name text, locale text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
#variable_conflict use_column
DECLARE
  u users%ROWTYPE;
  c companies%ROWTYPE;
BEGIN
  SELECT * INTO u FROM users
  WHERE ((p_email IS NOT NULL AND users.email = p_email) OR (p_phone IS NOT NULL AND users.phone = p_phone)) AND status = 'active'
  LIMIT 1;
  IF NOT FOUND THEN RETURN; END IF;
  SELECT * INTO c FROM companies WHERE id = u.company_id;
  INSERT INTO password_resets (hash, company_id, user_id, expires_at) VALUES (p_hash, u.company_id, u.id, p_expires);
  RETURN QUERY SELECT u.id, u.company_id, u.email, u.name, c.locale;
END $$;

-- Whether a token is usable, and the logins of its account (for the password rules).
CREATE FUNCTION crm_lookup_token(p_kind text, p_hash bytea)
RETURNS TABLE (outcome text, email text, phone text)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
#variable_conflict use_column
DECLARE
  v_user uuid;
  v_expires timestamptz;
  v_spent timestamptz;
  u users%ROWTYPE;
BEGIN
  IF p_kind = 'invite' THEN
    SELECT t.user_id, t.expires_at, t.spent_at INTO v_user, v_expires, v_spent FROM invite_tokens t WHERE t.hash = p_hash;
  ELSE
    SELECT t.user_id, t.expires_at, t.spent_at INTO v_user, v_expires, v_spent FROM password_resets t WHERE t.hash = p_hash;
  END IF;
  IF v_user IS NULL OR v_spent IS NOT NULL THEN
    RETURN QUERY SELECT 'invalid'::text, NULL::text, NULL::text;
    RETURN;
  END IF;
  SELECT * INTO u FROM users WHERE id = v_user;
  IF (p_kind = 'invite' AND u.status <> 'invited') OR (p_kind <> 'invite' AND u.status <> 'active') THEN
    RETURN QUERY SELECT 'invalid'::text, NULL::text, NULL::text;
    RETURN;
  END IF;
  IF v_expires <= now() THEN
    RETURN QUERY SELECT 'expired'::text, NULL::text, NULL::text;
    RETURN;
  END IF;
  RETURN QUERY SELECT 'valid'::text, u.email, u.phone;
END $$;

-- Spends a reset token: new password, every other reset token of the user spent, every session
-- revoked, in one transaction.
CREATE FUNCTION crm_consume_reset(p_hash bytea, p_password_hash text)
RETURNS TABLE (outcome text, user_id uuid, company_id uuid, revoked uuid[])
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
#variable_conflict use_column
DECLARE
  t password_resets%ROWTYPE;
  u users%ROWTYPE;
  v_revoked uuid[];
BEGIN
  SELECT * INTO t FROM password_resets WHERE hash = p_hash FOR UPDATE;
  IF NOT FOUND OR t.spent_at IS NOT NULL THEN
    RETURN QUERY SELECT 'invalid'::text, NULL::uuid, NULL::uuid, NULL::uuid[];
    RETURN;
  END IF;
  SELECT * INTO u FROM users WHERE id = t.user_id FOR UPDATE;
  IF u.status <> 'active' THEN
    RETURN QUERY SELECT 'invalid'::text, NULL::uuid, NULL::uuid, NULL::uuid[];
    RETURN;
  END IF;
  IF t.expires_at <= now() THEN
    RETURN QUERY SELECT 'expired'::text, NULL::uuid, NULL::uuid, NULL::uuid[];
    RETURN;
  END IF;
  UPDATE users SET password_hash = p_password_hash, updated_at = now() WHERE id = u.id;
  UPDATE password_resets SET spent_at = now() WHERE password_resets.user_id = u.id AND spent_at IS NULL;
  WITH r AS (UPDATE sessions SET revoked_at = now() WHERE sessions.user_id = u.id AND revoked_at IS NULL RETURNING id)
  SELECT coalesce(array_agg(id), '{}') INTO v_revoked FROM r;
  RETURN QUERY SELECT 'consumed'::text, u.id, u.company_id, v_revoked;
END $$;

-- Spends an invite token: password set, user active, every invite token of the user spent and,
-- when a refresh hash is given, the first session opened, in one transaction.
CREATE FUNCTION crm_consume_invite(p_hash bytea, p_password_hash text, p_refresh_hash bytea, p_expires timestamptz, p_agent text, p_ip text)
RETURNS TABLE (outcome text, user_id uuid, company_id uuid, role text, session_id uuid)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
#variable_conflict use_column
DECLARE
  t invite_tokens%ROWTYPE;
  u users%ROWTYPE;
  v_session uuid;
BEGIN
  SELECT * INTO t FROM invite_tokens WHERE hash = p_hash FOR UPDATE;
  IF NOT FOUND OR t.spent_at IS NOT NULL THEN
    RETURN QUERY SELECT 'invalid'::text, NULL::uuid, NULL::uuid, NULL::text, NULL::uuid;
    RETURN;
  END IF;
  SELECT * INTO u FROM users WHERE id = t.user_id FOR UPDATE;
  IF u.status <> 'invited' THEN
    RETURN QUERY SELECT 'invalid'::text, NULL::uuid, NULL::uuid, NULL::text, NULL::uuid;
    RETURN;
  END IF;
  IF t.expires_at <= now() THEN
    RETURN QUERY SELECT 'expired'::text, NULL::uuid, NULL::uuid, NULL::text, NULL::uuid;
    RETURN;
  END IF;
  UPDATE users SET password_hash = p_password_hash, status = 'active', updated_at = now() WHERE id = u.id;
  UPDATE invite_tokens SET spent_at = now() WHERE invite_tokens.user_id = u.id AND spent_at IS NULL;
  IF p_refresh_hash IS NOT NULL THEN
    INSERT INTO sessions (company_id, user_id, expires_at, user_agent, ip) VALUES (u.company_id, u.id, p_expires, p_agent, p_ip) RETURNING id INTO v_session;
    INSERT INTO refresh_tokens (hash, session_id, company_id) VALUES (p_refresh_hash, v_session, u.company_id);
  END IF;
  RETURN QUERY SELECT 'consumed'::text, u.id, u.company_id, u.role, v_session;
END $$;

ALTER FUNCTION crm_logins_taken(text[], text[]) OWNER TO crm_definer;
ALTER FUNCTION crm_create_password_reset(text, text, bytea, timestamptz) OWNER TO crm_definer;
ALTER FUNCTION crm_lookup_token(text, bytea) OWNER TO crm_definer;
ALTER FUNCTION crm_consume_reset(bytea, text) OWNER TO crm_definer;
ALTER FUNCTION crm_consume_invite(bytea, text, bytea, timestamptz, text, text) OWNER TO crm_definer;
REVOKE ALL ON FUNCTION crm_logins_taken(text[], text[]), crm_create_password_reset(text, text, bytea, timestamptz), crm_lookup_token(text, bytea),
  crm_consume_reset(bytea, text), crm_consume_invite(bytea, text, bytea, timestamptz, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION crm_logins_taken(text[], text[]), crm_create_password_reset(text, text, bytea, timestamptz), crm_lookup_token(text, bytea),
  crm_consume_reset(bytea, text), crm_consume_invite(bytea, text, bytea, timestamptz, text, text) TO crm_app;

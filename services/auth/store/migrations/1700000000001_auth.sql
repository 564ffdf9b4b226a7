-- Up Migration

-- crm_app: the role every request runs as (SET LOCAL ROLE), subject to row-level security.
-- crm_definer: owns the few SECURITY DEFINER functions that must work before the tenant is known
-- (login lookup, refresh rotation); only it has a policy that sees every tenant.
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'crm_app') THEN CREATE ROLE crm_app NOLOGIN; END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'crm_definer') THEN CREATE ROLE crm_definer NOLOGIN; END IF;
END $$;
DO $$
BEGIN
  -- A non-superuser owner must be a member to SET ROLE and to hand functions to crm_definer.
  IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
    EXECUTE format('GRANT crm_app, crm_definer TO %I', current_user);
  END IF;
END $$;

GRANT USAGE ON SCHEMA public TO crm_app, crm_definer;

-- The tenant of the current transaction, set by dbservice with set_config('app.company_id', …, true).
CREATE FUNCTION crm_company() RETURNS uuid LANGUAGE sql STABLE AS
$$ SELECT nullif(current_setting('app.company_id', true), '')::uuid $$;

CREATE TABLE companies (
  id         uuid PRIMARY KEY,
  name       text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  address    text NOT NULL DEFAULT '' CHECK (length(address) <= 500),
  locale     text NOT NULL DEFAULT 'en' CHECK (locale IN ('en', 'ru')),
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
  id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  company_id    uuid NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
  email         text NOT NULL CHECK (email = lower(email) AND length(email) <= 254),
  phone         text CHECK (phone ~ '^\+[1-9][0-9]{6,14}$'),
  name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  role          text NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
  status        text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'invited', 'deactivated')),
  password_hash text,
  created_at    timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now()
);
-- Logins are unique across the whole system: a person logs in without naming a company.
CREATE UNIQUE INDEX users_email_key ON users (email);
CREATE UNIQUE INDEX users_phone_key ON users (phone) WHERE phone IS NOT NULL;
CREATE INDEX users_company_idx ON users (company_id, created_at);

CREATE TABLE sessions (
  id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  company_id   uuid NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
  user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  created_at   timestamptz NOT NULL DEFAULT now(),
  last_used_at timestamptz NOT NULL DEFAULT now(),
  expires_at   timestamptz NOT NULL,
  revoked_at   timestamptz,
  user_agent   text NOT NULL DEFAULT '',
  ip           text NOT NULL DEFAULT ''
);
CREATE INDEX sessions_user_idx ON sessions (user_id) WHERE revoked_at IS NULL;

-- Refresh tokens are stored as SHA-256 hashes; each belongs to a session (its family).
CREATE TABLE refresh_tokens (
  hash       bytea PRIMARY KEY CHECK (length(hash) = 32),
  session_id uuid NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
  company_id uuid NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
  created_at timestamptz NOT NULL DEFAULT now(),
  spent_at   timestamptz
);
CREATE INDEX refresh_tokens_session_idx ON refresh_tokens (session_id);

-- Row-level security, forced even on the tables' owner.
DO $$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['users', 'sessions', 'refresh_tokens'] LOOP
    EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
    EXECUTE format('CREATE POLICY tenant ON %I USING (company_id = crm_company()) WITH CHECK (company_id = crm_company())', t);
    EXECUTE format('CREATE POLICY definer ON %I TO crm_definer USING (true) WITH CHECK (true)', t);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %I TO crm_app, crm_definer', t);
  END LOOP;
END $$;
ALTER TABLE companies ENABLE ROW LEVEL SECURITY;
ALTER TABLE companies FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant ON companies USING (id = crm_company()) WITH CHECK (id = crm_company());
CREATE POLICY definer ON companies TO crm_definer USING (true) WITH CHECK (true);
GRANT SELECT, INSERT, UPDATE, DELETE ON companies TO crm_app, crm_definer;

-- Login lookup before the tenant is known: one narrow function, never RLS switched off.
CREATE FUNCTION crm_login_lookup(p_email text, p_phone text)
RETURNS TABLE (user_id uuid, company_id uuid, role text, status text, password_hash text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
  SELECT u.id, u.company_id, u.role, u.status, u.password_hash
  FROM users u
  WHERE (p_email IS NOT NULL AND u.email = p_email) OR (p_phone IS NOT NULL AND u.phone = p_phone)
  LIMIT 1
$$;

-- Spends a refresh token and stores its successor. A token spent twice revokes its session.
CREATE FUNCTION crm_rotate_refresh(p_old bytea, p_new bytea)
RETURNS TABLE (outcome text, session_id uuid, user_id uuid, company_id uuid, role text, expires_at timestamptz)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
#variable_conflict use_column
DECLARE
  t refresh_tokens%ROWTYPE;
  s sessions%ROWTYPE;
  u users%ROWTYPE;
BEGIN
  SELECT * INTO t FROM refresh_tokens WHERE hash = p_old FOR UPDATE;
  IF NOT FOUND THEN
    RETURN QUERY SELECT 'unknown'::text, NULL::uuid, NULL::uuid, NULL::uuid, NULL::text, NULL::timestamptz;
    RETURN;
  END IF;
  SELECT * INTO s FROM sessions WHERE id = t.session_id FOR UPDATE;
  IF t.spent_at IS NOT NULL THEN
    UPDATE sessions SET revoked_at = coalesce(sessions.revoked_at, now()) WHERE id = s.id;
    RETURN QUERY SELECT 'reused'::text, s.id, s.user_id, s.company_id, NULL::text, s.expires_at;
    RETURN;
  END IF;
  SELECT * INTO u FROM users WHERE id = s.user_id;
  IF s.revoked_at IS NOT NULL OR s.expires_at <= now() OR u.status <> 'active' THEN
    RETURN QUERY SELECT 'ended'::text, s.id, s.user_id, s.company_id, NULL::text, s.expires_at;
    RETURN;
  END IF;
  UPDATE refresh_tokens SET spent_at = now() WHERE hash = p_old;
  INSERT INTO refresh_tokens (hash, session_id, company_id) VALUES (p_new, s.id, s.company_id);
  UPDATE sessions SET last_used_at = now() WHERE id = s.id;
  RETURN QUERY SELECT 'rotated'::text, s.id, s.user_id, s.company_id, u.role, s.expires_at;
END $$;

ALTER FUNCTION crm_login_lookup(text, text) OWNER TO crm_definer;
ALTER FUNCTION crm_rotate_refresh(bytea, bytea) OWNER TO crm_definer;
REVOKE ALL ON FUNCTION crm_login_lookup(text, text), crm_rotate_refresh(bytea, bytea) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION crm_login_lookup(text, text), crm_rotate_refresh(bytea, bytea) TO crm_app;

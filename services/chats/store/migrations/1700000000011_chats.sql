-- Up Migration

-- Team chats. Invariants held by the schema:
-- - members and senders are users of the chat's company (composite foreign keys);
-- - a message's seq is unique per chat; it is taken from chats.last_seq, bumped under the chat's
--   row lock in the transaction that stores the message, so seqs are 1, 2, 3, … with no gaps;
-- - one message per (chat, sender, client_message_id): a retried send cannot store a duplicate.

-- Lets chat tables reference (company_id, user id), so a member of another company cannot exist.
CREATE UNIQUE INDEX users_company_id_id_key ON users (company_id, id);

CREATE TABLE chats (
  id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  company_id      uuid NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
  name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  created_by      uuid NOT NULL,
  created_at      timestamptz NOT NULL DEFAULT now(),
  last_seq        bigint NOT NULL DEFAULT 0 CHECK (last_seq >= 0),
  last_message_at timestamptz,
  UNIQUE (company_id, id)
);

CREATE TABLE chat_members (
  chat_id       uuid NOT NULL,
  user_id       uuid NOT NULL,
  company_id    uuid NOT NULL,
  joined_at     timestamptz NOT NULL DEFAULT now(),
  last_read_seq bigint NOT NULL DEFAULT 0 CHECK (last_read_seq >= 0),
  PRIMARY KEY (chat_id, user_id),
  FOREIGN KEY (company_id, chat_id) REFERENCES chats (company_id, id) ON DELETE CASCADE,
  FOREIGN KEY (company_id, user_id) REFERENCES users (company_id, id) ON DELETE CASCADE
);
CREATE INDEX chat_members_user_idx ON chat_members (user_id, chat_id);

CREATE TABLE messages (
  chat_id           uuid NOT NULL,
  seq               bigint NOT NULL CHECK (seq >= 1),
  id                uuid NOT NULL DEFAULT gen_random_uuid() UNIQUE,
  company_id        uuid NOT NULL,
  sender_id         uuid NOT NULL,
  content           text NOT NULL CHECK (length(content) BETWEEN 1 AND 4000),
  client_message_id text CHECK (length(client_message_id) BETWEEN 1 AND 64),
  created_at        timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (chat_id, seq),
  FOREIGN KEY (company_id, chat_id) REFERENCES chats (company_id, id) ON DELETE CASCADE,
  FOREIGN KEY (company_id, sender_id) REFERENCES users (company_id, id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX messages_client_message_id_key ON messages (chat_id, sender_id, client_message_id) WHERE client_message_id IS NOT NULL;

DO $$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['chats', 'chat_members', 'messages'] LOOP
    EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
    EXECUTE format('CREATE POLICY tenant ON %I USING (company_id = crm_company()) WITH CHECK (company_id = crm_company())', t);
    EXECUTE format('CREATE POLICY definer ON %I TO crm_definer USING (true) WITH CHECK (true)', t);
  END LOOP;
END $$;
GRANT SELECT, INSERT, UPDATE ON chats TO crm_app, crm_definer;
GRANT SELECT, INSERT, UPDATE, DELETE ON chat_members TO crm_app, crm_definer;
GRANT SELECT, INSERT ON messages TO crm_app, crm_definer;

-- Up Migration

-- Tasks and notes (issue 16), each linked to any companies, people and deals, and the timeline
-- entries they write on those records (subject_type / subject_id: the task or note the entry is
-- about). Same rules as the first slice: company_id and FORCE row-level security on every table,
-- every policy naming crm_company(); members change the tasks they own or are assigned and the
-- notes they wrote; owners and admins change everything and alone erase (DELETE: the purge).

-- May the acting user change a task owned by p_owner and assigned to p_assignee?
CREATE FUNCTION crm_may_edit_task(p_owner uuid, p_assignee uuid) RETURNS boolean LANGUAGE sql STABLE AS
$$ SELECT crm_may_edit(p_owner) OR coalesce(crm_role() = 'member' AND p_assignee = crm_user(), false) $$;

CREATE TABLE rec_tasks (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  company_id  uuid NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
  title       text NOT NULL CONSTRAINT rec_tasks_title_check CHECK (length(title) BETWEEN 1 AND 500),
  due_at      timestamptz,
  assignee_id uuid,
  done        boolean NOT NULL DEFAULT false,
  done_at     timestamptz,
  owner_id    uuid NOT NULL,
  version     bigint NOT NULL DEFAULT 1 CHECK (version >= 1),
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now(),
  deleted_at  timestamptz,
  CONSTRAINT rec_tasks_done_check CHECK (done = (done_at IS NOT NULL)),
  UNIQUE (company_id, id),
  FOREIGN KEY (company_id, owner_id) REFERENCES users (company_id, id),
  FOREIGN KEY (company_id, assignee_id) REFERENCES users (company_id, id)
);
CREATE INDEX rec_tasks_created_idx ON rec_tasks (company_id, created_at DESC, id DESC) WHERE deleted_at IS NULL;
-- "My open tasks": assignee_id = me AND done = false, by due time.
CREATE INDEX rec_tasks_open_idx ON rec_tasks (assignee_id, due_at, id) WHERE NOT done AND deleted_at IS NULL;
CREATE INDEX rec_tasks_owner_idx ON rec_tasks (company_id, owner_id);

CREATE TABLE rec_notes (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  company_id  uuid NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
  -- Markdown as written.
  text        text NOT NULL CONSTRAINT rec_notes_text_check CHECK (length(text) BETWEEN 1 AND 20000),
  author_id   uuid NOT NULL,
  version     bigint NOT NULL DEFAULT 1 CHECK (version >= 1),
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now(),
  deleted_at  timestamptz,
  UNIQUE (company_id, id),
  FOREIGN KEY (company_id, author_id) REFERENCES users (company_id, id)
);
CREATE INDEX rec_notes_created_idx ON rec_notes (company_id, created_at DESC, id DESC) WHERE deleted_at IS NULL;
CREATE INDEX rec_notes_author_idx ON rec_notes (company_id, author_id);

-- The records a task or note is about. One column per kind is derived from (object_type,
-- record_id) so a foreign key backs each link within the tenant, and a purged record takes its
-- links with it.
DO $$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['task', 'note'] LOOP
    EXECUTE format($f$
      CREATE TABLE rec_%1$s_links (
        company_id     uuid NOT NULL,
        %1$s_id        uuid NOT NULL,
        object_type    text NOT NULL CHECK (object_type IN ('company', 'person', 'deal')),
        record_id      uuid NOT NULL,
        -- The link's place in the list.
        ord            integer NOT NULL,
        rec_company_id uuid GENERATED ALWAYS AS (CASE WHEN object_type = 'company' THEN record_id END) STORED,
        person_id      uuid GENERATED ALWAYS AS (CASE WHEN object_type = 'person' THEN record_id END) STORED,
        deal_id        uuid GENERATED ALWAYS AS (CASE WHEN object_type = 'deal' THEN record_id END) STORED,
        PRIMARY KEY (%1$s_id, record_id),
        FOREIGN KEY (company_id, %1$s_id) REFERENCES rec_%1$ss (company_id, id) ON DELETE CASCADE,
        FOREIGN KEY (company_id, rec_company_id) REFERENCES rec_companies (company_id, id) ON DELETE CASCADE,
        FOREIGN KEY (company_id, person_id) REFERENCES rec_people (company_id, id) ON DELETE CASCADE,
        FOREIGN KEY (company_id, deal_id) REFERENCES rec_deals (company_id, id) ON DELETE CASCADE
      )$f$, t);
    EXECUTE format('CREATE INDEX rec_%1$s_links_record_idx ON rec_%1$s_links (record_id)', t);
  END LOOP;
END $$;

-- Timeline entries about a task or note on the records it links (and the task's or note's own).
ALTER TABLE rec_timeline
  DROP CONSTRAINT rec_timeline_object_type_check,
  ADD CONSTRAINT rec_timeline_object_type_check CHECK (object_type IN ('company', 'person', 'deal', 'task', 'note')),
  DROP CONSTRAINT rec_timeline_action_check,
  ADD CONSTRAINT rec_timeline_action_check CHECK (action IN ('created', 'updated', 'deleted', 'restored', 'stage_changed', 'linked', 'unlinked')),
  ADD COLUMN subject_type text CONSTRAINT rec_timeline_subject_type_check CHECK (subject_type IN ('task', 'note')),
  ADD COLUMN subject_id uuid,
  ADD CONSTRAINT rec_timeline_subject_check CHECK ((subject_type IS NULL) = (subject_id IS NULL));
-- A purged task or note takes the entries it wrote on linked records with it.
CREATE INDEX rec_timeline_subject_idx ON rec_timeline (subject_id) WHERE subject_id IS NOT NULL;

DO $$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['rec_tasks', 'rec_notes', 'rec_task_links', 'rec_note_links'] LOOP
    EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
    EXECUTE format('CREATE POLICY read ON %I FOR SELECT TO crm_app USING (company_id = crm_company() AND crm_role() IS NOT NULL)', t);
    EXECUTE format('CREATE POLICY definer ON %I TO crm_definer USING (true) WITH CHECK (true)', t);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %I TO crm_app, crm_definer', t);
  END LOOP;
  FOREACH t IN ARRAY ARRAY['rec_tasks', 'rec_notes'] LOOP
    EXECUTE format('CREATE POLICY purge ON %I FOR DELETE TO crm_app USING (company_id = crm_company() AND crm_is_admin())', t);
  END LOOP;
END $$;

-- Tasks: members add tasks they own (assigned to anyone of the tenant) and change those they own
-- or are assigned; an assignee cannot pass a task on to a third user (WITH CHECK).
CREATE POLICY add ON rec_tasks FOR INSERT TO crm_app WITH CHECK (company_id = crm_company() AND crm_may_edit(owner_id));
CREATE POLICY change ON rec_tasks FOR UPDATE TO crm_app
  USING (company_id = crm_company() AND crm_may_edit_task(owner_id, assignee_id))
  WITH CHECK (company_id = crm_company() AND crm_may_edit_task(owner_id, assignee_id));
-- Notes: their author's (and the admins').
CREATE POLICY add ON rec_notes FOR INSERT TO crm_app WITH CHECK (company_id = crm_company() AND crm_may_edit(author_id));
CREATE POLICY change ON rec_notes FOR UPDATE TO crm_app
  USING (company_id = crm_company() AND crm_may_edit(author_id))
  WITH CHECK (company_id = crm_company() AND crm_may_edit(author_id));
-- Links follow their task or note.
CREATE POLICY write ON rec_task_links FOR ALL TO crm_app
  USING (company_id = crm_company() AND EXISTS (SELECT 1 FROM rec_tasks t WHERE t.id = task_id AND crm_may_edit_task(t.owner_id, t.assignee_id)))
  WITH CHECK (company_id = crm_company() AND EXISTS (SELECT 1 FROM rec_tasks t WHERE t.id = task_id AND crm_may_edit_task(t.owner_id, t.assignee_id)));
CREATE POLICY write ON rec_note_links FOR ALL TO crm_app
  USING (company_id = crm_company() AND EXISTS (SELECT 1 FROM rec_notes n WHERE n.id = note_id AND crm_may_edit(n.author_id)))
  WITH CHECK (company_id = crm_company() AND EXISTS (SELECT 1 FROM rec_notes n WHERE n.id = note_id AND crm_may_edit(n.author_id)));

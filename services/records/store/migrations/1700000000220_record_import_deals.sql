-- Up Migration

-- Imports of deals (import-deals.ts). A deal has no natural key as a person's e-mail or a
-- company's domain: an import of deals matches by an external id (match_by 'custom.<key>') or
-- by nothing (match_by '': every row creates a deal).
ALTER TABLE rec_imports DROP CONSTRAINT rec_imports_object_type_check,
  ADD CONSTRAINT rec_imports_object_type_check CHECK (object_type IN ('company', 'person', 'deal'));
ALTER TABLE rec_imports DROP CONSTRAINT rec_imports_match_by_check,
  ADD CONSTRAINT rec_imports_match_by_check CHECK (length(match_by) <= 60 AND (match_by <> '' OR object_type = 'deal'));
ALTER TABLE rec_import_mappings DROP CONSTRAINT rec_import_mappings_object_type_check,
  ADD CONSTRAINT rec_import_mappings_object_type_check CHECK (object_type IN ('company', 'person', 'deal'));

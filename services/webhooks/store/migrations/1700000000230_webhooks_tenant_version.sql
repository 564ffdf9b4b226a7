-- Up Migration

-- Events that are not record changes (a user added or deactivated, an import finished, a chat
-- message) are stamped with the tenant's version when the webhooks store queues them
-- (EnqueueEventDB), so an ordered endpoint gets them after the record changes made before. That
-- store acts for no user there, and rec_versions is readable only with an acting user: this
-- reads the version of the transaction's tenant (crm_company()) and nothing else.
CREATE FUNCTION crm_wh_tenant_version()
RETURNS bigint
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
  SELECT coalesce((SELECT v.version FROM rec_versions v WHERE v.company_id = crm_company()), 0)
$$;

ALTER FUNCTION crm_wh_tenant_version() OWNER TO crm_definer;
REVOKE ALL ON FUNCTION crm_wh_tenant_version() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION crm_wh_tenant_version() TO crm_app;

-- PgBouncer's auth_query lookup for environment prod, rendered by perfstack: do not edit.
-- Run as a superuser (the function reads pg_catalog.pg_authid) in every pooled database: PgBouncer
-- runs auth_query in the database the client asks for (app). Set pgbouncer_auth's
-- password separately (it is the one in PgBouncer's userlist Secret).
-- Only live roles are returned: rolcanlogin, and VALID UNTIL not passed (CVE-2025-2291).
DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = E'pgbouncer_auth') THEN CREATE ROLE "pgbouncer_auth" LOGIN; END IF; END $$;

CREATE SCHEMA IF NOT EXISTS pgbouncer;

REVOKE ALL ON SCHEMA pgbouncer FROM PUBLIC;

GRANT USAGE ON SCHEMA pgbouncer TO "pgbouncer_auth";

CREATE OR REPLACE FUNCTION pgbouncer.user_lookup(p_username text, OUT uname text, OUT phash text)
RETURNS SETOF record
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT a.rolname::text, a.rolpassword::text
  FROM pg_catalog.pg_authid AS a
  WHERE a.rolname = p_username
    AND a.rolcanlogin
    AND (a.rolvaliduntil IS NULL OR a.rolvaliduntil > pg_catalog.now())
$$;

REVOKE ALL ON FUNCTION pgbouncer.user_lookup(text) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION pgbouncer.user_lookup(text) TO "pgbouncer_auth";

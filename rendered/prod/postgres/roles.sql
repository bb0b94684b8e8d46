-- Per-role settings rendered by perfstack for environment prod: the application's
-- timeouts apply to the roles it logs in as (postgres.app_roles), not to maintenance, migrations or pg_dump.
-- Run as the database owner or a role with CREATEROLE once the roles exist; they apply to new sessions
-- (PgBouncer's server connections pick them up as they reconnect). Do not edit: change the profile.
ALTER ROLE "app" SET statement_timeout = E'30s';  -- given by postgres.statement_timeout, set on role(s) app (roles.sql)
ALTER ROLE "app" SET lock_timeout = E'10s';  -- given by postgres.lock_timeout, set on role(s) app (roles.sql)
ALTER ROLE "app" SET idle_in_transaction_session_timeout = E'1min';  -- given by postgres.idle_in_transaction_session_timeout, set on role(s) app (roles.sql)

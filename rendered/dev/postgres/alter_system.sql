-- ALTER SYSTEM statements rendered by perfstack for environment dev
-- (for managed or external databases). Run as a superuser, then reload; settings marked
-- "restart" in pg_settings.context need a restart. Do not edit: change the profile.
ALTER SYSTEM SET max_connections = E'200';  -- pgtune: pgtune default for workload web
ALTER SYSTEM SET shared_buffers = E'1GB';  -- pgtune: RAM / 4
ALTER SYSTEM SET effective_cache_size = E'3GB';  -- pgtune: RAM * 3 / 4
ALTER SYSTEM SET maintenance_work_mem = E'256MB';  -- pgtune: RAM / 16
ALTER SYSTEM SET checkpoint_completion_target = E'0.9';  -- pgtune: 0.9: spread checkpoint writes (PostgreSQL 14's default)
ALTER SYSTEM SET wal_buffers = E'16MB';  -- pgtune: 3% of shared_buffers, capped at 16MB
ALTER SYSTEM SET default_statistics_target = E'100';  -- pgtune: 500 for dw, else 100
ALTER SYSTEM SET random_page_cost = E'1.1';  -- pgtune: flash or SAN storage: random reads are cheap
ALTER SYSTEM SET effective_io_concurrency = E'200';  -- pgtune: ssd storage on Linux
ALTER SYSTEM SET work_mem = E'5041kB';  -- pgtune: (RAM - shared_buffers) / ((max_connections + max_worker_processes) * 3)
ALTER SYSTEM SET huge_pages = E'off';  -- pgtune: shared_buffers < 2GB
ALTER SYSTEM SET min_wal_size = E'1GB';  -- pgtune: pgtune's value for web
ALTER SYSTEM SET max_wal_size = E'4GB';  -- pgtune: pgtune's value for web
ALTER SYSTEM SET jit = E'off';  -- pgtune: JIT slows short queries (web, oltp, mixed on PostgreSQL >= 12)
ALTER SYSTEM SET wal_compression = E'lz4';  -- pgtune: lz4 on PostgreSQL >= 15
ALTER SYSTEM SET superuser_reserved_connections = E'3';  -- given by postgres.superuser_reserved_connections
ALTER SYSTEM SET statement_timeout = E'30s';  -- given by postgres.statement_timeout
ALTER SYSTEM SET lock_timeout = E'10s';  -- given by postgres.lock_timeout
ALTER SYSTEM SET idle_in_transaction_session_timeout = E'1min';  -- given by postgres.idle_in_transaction_session_timeout
ALTER SYSTEM SET log_min_duration_statement = E'200ms';  -- given by postgres.log_min_duration_statement
SELECT pg_reload_conf();

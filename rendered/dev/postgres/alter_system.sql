-- ALTER SYSTEM statements rendered by perfstack for environment dev
-- (for a self-managed external database). Run as a superuser, then reload; settings marked
-- "postmaster" in pg_settings.context need a restart. List parameters take one literal per element.
-- Per-role timeouts are in roles.sql. Do not edit: change the profile.
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
ALTER SYSTEM SET autovacuum_vacuum_scale_factor = E'0.1';  -- DBA: vacuum web tables at this share of dead rows, not 20%: less bloat on hot tables
ALTER SYSTEM SET autovacuum_analyze_scale_factor = E'0.05';  -- DBA: analyze web tables at this share of changed rows, not 10%: fresher plans
ALTER SYSTEM SET autovacuum_naptime = E'30s';  -- DBA: check web tables more often than every 1min
ALTER SYSTEM SET autovacuum_vacuum_cost_limit = E'2000';  -- DBA: ssd storage
ALTER SYSTEM SET log_autovacuum_min_duration = E'1s';  -- DBA: log autovacuum runs over 1s: which tables bloat, and how fast
ALTER SYSTEM SET shared_preload_libraries = E'pg_stat_statements';  -- DBA: load pg_stat_statements at start: per-query time, calls and I/O
ALTER SYSTEM SET track_io_timing = E'on';  -- DBA: time each block read and write (cheap on a TSC clock: pg_test_timing)
ALTER SYSTEM SET log_lock_waits = E'on';  -- DBA: log a lock wait longer than deadlock_timeout (1s), with the blocking process
ALTER SYSTEM SET log_temp_files = E'0';  -- DBA: log every temporary file: a short query that spills needs more work_mem or an index
ALTER SYSTEM SET log_line_prefix = E'%m [%p] %q%u@%d app=%a client=%h ';  -- DBA: time, pid, user@database, application and client on every line
ALTER SYSTEM SET checkpoint_timeout = E'15min';  -- DBA: ssd: fewer full-page writes than 5min, recovery bounded by one interval
ALTER SYSTEM SET superuser_reserved_connections = E'3';  -- given by postgres.superuser_reserved_connections
ALTER SYSTEM SET log_min_duration_statement = E'200ms';  -- given by postgres.log_min_duration_statement
SELECT pg_reload_conf();

-- After the restart that loads shared_preload_libraries (PostgreSQL 16 refuses an
-- extension's settings until the extension is loaded):
ALTER SYSTEM SET pg_stat_statements.max = E'10000';  -- DBA: keep 10000 distinct statements, not 5000
SELECT pg_reload_conf();

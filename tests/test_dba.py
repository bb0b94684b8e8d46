"""The DBA rules on top of pgtune's, judged by exact numbers and by a real PostgreSQL 15.

Sizes are kB as in pgtune (1 GB = 1048576 kB), durations ms; the arithmetic is in the comments. The real-server
tests run PostgreSQL (and PgBouncer) as the `postgres` user in folders it owns (generators/localservers.py).
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from generators import checks, localservers, pgversions, postgres
from generators.bundle import Finding
from generators.errors import ProfileError
from generators.objects import workloads
from generators.postgres import Inputs
from generators.profile import Profile

from .conftest import REPO, local_pgbouncer_profile, parts_of, run_checks, variant
from .test_pgtune import GB, MB, value  # pgtune's worked example, the base of every DBA rule here


def profile(postgres_section: dict[str, Any] | None = None, kubernetes: dict[str, Any] | None = None,
            **hardware: Any) -> Profile:
    hw = {"memory": "16GiB", "cpus": 8, "storage": "ssd", "os": "linux", **hardware}
    return Profile.model_validate({
        "environment": "test", "hardware": {"postgres": hw, "redis": {"memory": "1GiB"}},
        "postgres": {"version": 16, "workload": "web", **(postgres_section or {})},
        "kubernetes": kubernetes or {}})


def by_key(p: Profile) -> dict[str, Any]:
    return {s.key: s for s in postgres.settings(p)}


def errors(found: list[Finding], check: str) -> list[str]:
    return [f.message for f in found if f.severity == "error" and f.check == check]


# ---------------------------------------------------------------- pgtune stays exact underneath
def test_without_the_new_inputs_every_pgtune_value_stands() -> None:
    for p in (profile(), profile({"workload": "oltp", "version": 18}, memory="64GiB", cpus=32, storage="nvme")):
        i = Inputs.from_profile(p)
        got = by_key(p)
        for function, _ in postgres.PGTUNE_RULES:
            rule = function(i)
            if rule is not None:
                assert got[function.__name__].value == rule.value, function.__name__


# ---------------------------------------------------------------- autovacuum
def test_autovacuum_scale_factors_by_workload() -> None:
    assert value("autovacuum_vacuum_scale_factor", workload="oltp") == 0.05    # default 0.2
    assert value("autovacuum_analyze_scale_factor", workload="oltp") == 0.025  # default 0.1
    assert value("autovacuum_vacuum_scale_factor", workload="web") == 0.1
    assert value("autovacuum_analyze_scale_factor", workload="mixed") == 0.05
    assert value("autovacuum_vacuum_scale_factor", workload="dw") is None      # bulk loads: the default
    assert value("autovacuum_naptime", workload="oltp") == 15_000
    assert value("autovacuum_naptime", workload="web") == 30_000
    assert value("autovacuum_naptime", workload="desktop") is None


def test_autovacuum_cost_limit_follows_storage_and_write_rate() -> None:
    assert value("autovacuum_vacuum_cost_limit", storage="hdd") is None     # 200, the server default
    assert value("autovacuum_vacuum_cost_limit", storage="san") == 1000
    assert value("autovacuum_vacuum_cost_limit", storage="ssd") == 2000
    assert value("autovacuum_vacuum_cost_limit", storage="nvme") == 4000
    # 2 x 409600 kB/s / 8 kB x 20 per dirtied page x 2ms / 1000 = 4096 > nvme's 4000
    assert value("autovacuum_vacuum_cost_limit", storage="nvme", write_rate_kb=400 * MB) == 4096
    # 2 x 200 MB/s: 2 x 204800 / 8 x 20 x 2 / 1000 = 2048 on an hdd (above the default 200)
    assert value("autovacuum_vacuum_cost_limit", storage="hdd", write_rate_kb=200 * MB) == 2048
    # 2 GB/s would need 20480: PostgreSQL's most is 10000
    assert value("autovacuum_vacuum_cost_limit", storage="nvme", write_rate_kb=2000 * MB) == 10000
    # 10 MB/s needs 2 x 10240 / 8 x 20 x 2 / 1000 = 103: ssd's 2000 stands
    assert value("autovacuum_vacuum_cost_limit", write_rate_kb=10 * MB) == 2000
    assert value("autovacuum_vacuum_cost_delay", version=11) == 2  # 10 and 11 sleep 20ms
    assert value("autovacuum_vacuum_cost_delay", version=12) is None
    assert value("log_autovacuum_min_duration") == 1000


# ---------------------------------------------------------------- observability
def test_query_observability_settings() -> None:
    got = by_key(profile())
    assert got["shared_preload_libraries"].text == "pg_stat_statements"
    assert got["pg_stat_statements.max"].text == "10000"
    assert got["track_io_timing"].text == "on"
    assert got["log_lock_waits"].text == "on"
    assert got["log_temp_files"].text == "0"
    assert got["log_line_prefix"].text == "%m [%p] %q%u@%d app=%a client=%h "
    assert by_key(profile({"workload": "dw"}))["log_temp_files"].text == "1GB"
    for key in ("shared_preload_libraries", "track_io_timing", "log_lock_waits", "log_temp_files"):
        assert got[key].rule.startswith("DBA: ") and len(got[key].rule) > 20, key  # each carries its reason


# ---------------------------------------------------------------- WAL, checkpoints: the disk and the write rate
def test_checkpoint_timeout_by_storage() -> None:
    assert value("checkpoint_timeout") == 900_000              # ssd: 15min
    assert value("checkpoint_timeout", storage="hdd") == 600_000  # hdd: 10min
    assert value("max_wal_size_dba") is None                   # neither disk nor rate: pgtune's 4GB stands


def test_max_wal_size_within_half_the_wal_disk() -> None:
    assert value("max_wal_size_dba", wal_disk_kb=4 * GB) == 2 * GB          # 4GB / 2, below pgtune's 4GB
    assert value("max_wal_size_dba", wal_disk_kb=100 * GB) == 4 * GB        # pgtune's 4GB fits in 50GB
    assert value("max_wal_size_dba", wal_disk_kb=4 * GB + 1536) == 2 * GB   # half is 2GB + 768kB: whole MB
    assert value("min_wal_size_dba", wal_disk_kb=4 * GB) == 512 * MB        # a quarter of 2GB (pgtune's 1GB)
    assert value("min_wal_size_dba", wal_disk_kb=100 * GB) is None          # pgtune's 1GB x 4 <= 4GB


def test_max_wal_size_from_the_write_rate() -> None:
    # 50 MB/s x 900 s = 45000 MB of WAL per checkpoint interval: above pgtune's 4GB, below half of 100GB
    assert value("max_wal_size_dba", write_rate_kb=50 * MB, wal_disk_kb=100 * GB) == 45000 * MB
    assert value("checkpoint_timeout", write_rate_kb=50 * MB, wal_disk_kb=100 * GB) == 900_000
    # a 64GB disk caps it at 32GB; 32768 MB / 50 MB/s = 655 s: checkpoints every 10min (whole minutes)
    assert value("max_wal_size_dba", write_rate_kb=50 * MB, wal_disk_kb=64 * GB) == 32 * GB
    assert value("checkpoint_timeout", write_rate_kb=50 * MB, wal_disk_kb=64 * GB) == 600_000
    # 1 MB/s x 900 s = 900 MB: pgtune's 4GB stands
    assert value("max_wal_size_dba", write_rate_kb=1 * MB) == 4 * GB
    # 2GB budget at 100 MB/s fills in 20.48 s: 20 s (whole seconds under a minute)... raised to PostgreSQL's 30 s
    assert value("checkpoint_timeout", write_rate_kb=100 * MB, wal_disk_kb=4 * GB) == 30_000


def test_wal_that_fills_faster_than_checkpoint_warning_is_refused() -> None:
    # 100 MB/s: max_wal_size = wal_disk / 2 must last 30 s = 3000 MB, so a 6000 MB disk is the least
    fits = variant("prod", {"hardware": {"postgres": {"wal_disk": "6000MB", "write_rate": "100MB/s"}}})
    assert parts_of(fits).postgres.setting("max_wal_size").text == "3000MB"
    assert errors(run_checks(fits), "postgres_wal_keeps_up") == []
    short = variant("prod", {"hardware": {"postgres": {"wal_disk": "5998MB", "write_rate": "100MB/s"}}})
    [message] = errors(run_checks(short), "postgres_wal_keeps_up")
    assert message.startswith("postgres.max_wal_size 2.93GiB fills in 29.99s at hardware.postgres.write_rate "
                              "100MiB/s, below PostgreSQL's checkpoint_warning 30s")


# ---------------------------------------------------------------- huge pages
def test_huge_pages_carry_the_vm_nr_hugepages_figure() -> None:
    got = by_key(profile())
    # (4194304 x 1.025 + wal_buffers 16384 + 16384 + 48 x 200 connections) / 2048 = 2119.8 -> 2120 pages
    assert got["huge_pages"].text == "try"
    assert got["huge_pages"].inputs["vm.nr_hugepages"] == 2120
    assert "set vm.nr_hugepages = 2120 on the host" in got["huge_pages"].rule
    assert "huge_pages = 'try'  # DBA: shared_buffers >= 2GB; set vm.nr_hugepages = 2120" in \
        postgres.render(profile()).files["postgres/postgresql.conf"]
    assert by_key(profile(memory="4GiB"))["huge_pages"].text == "off"  # shared_buffers 1GB: pgtune's off, no figure
    assert parts_of(profile(memory="4GiB")).postgres.derived["nr_hugepages"] is None


def test_huge_pages_under_cloudnativepg_are_requested() -> None:
    p = profile(kubernetes={"postgres": "cloudnativepg"})
    assert by_key(p)["huge_pages"].text == "on"
    cluster = next(o for o in workloads.render(p, parts_of(p)).objects if o["kind"] == "Cluster")
    # 2120 pages x 2Mi = 4240Mi of huge pages; 16384Mi - 4240Mi = 12144Mi of ordinary memory
    assert cluster["spec"]["resources"]["limits"] == {"memory": "12144Mi", "cpu": "8", "hugepages-2Mi": "4240Mi"}


@pytest.fixture(scope="module")
def cluster_dir() -> Iterator[Path]:
    workdir = localservers.make_workdir("perfstack-dba-c-")
    try:
        subprocess.run(["runuser", "-u", "postgres", "--", str(localservers.pg_bin_dir() / "initdb"), "-D",
                        str(workdir / "data"), "-U", "postgres", "--auth=trust"], check=True, capture_output=True,
                       timeout=180)
        yield workdir / "data"
    finally:
        subprocess.run(["rm", "-rf", str(workdir)], check=False)


@pytest.mark.parametrize("memory,connections", [("16GiB", None), ("64GiB", 200), ("8GiB", 1000)])
def test_huge_page_figure_covers_postgres_own(cluster_dir: Path, memory: str, connections: int | None) -> None:
    p = profile({"max_connections": connections} if connections else {}, memory=memory)
    got = by_key(p)
    result = subprocess.run(
        ["runuser", "-u", "postgres", "--", str(localservers.pg_bin_dir() / "postgres"), "-D", str(cluster_dir),
         "-C", "shared_memory_size_in_huge_pages", "-c", f"shared_buffers={got['shared_buffers'].text}",
         "-c", f"wal_buffers={got['wal_buffers'].text}", "-c", f"max_connections={got['max_connections'].text}",
         "-c", "huge_pages=try"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    real = int(result.stdout.strip())
    ours = got["huge_pages"].inputs["vm.nr_hugepages"]
    assert real <= ours <= real * 1.05 + 8, (real, ours)  # enough, and not a gross overestimate


# ---------------------------------------------------------------- workers, replication, io_method
def test_logical_replication_gets_worker_headroom() -> None:
    assert value("max_worker_processes_dba") is None
    assert value("max_worker_processes_dba", logical_replication=True) == 13  # 8 CPUs + 4 workers + 1 launcher
    assert value("max_worker_processes_dba", logical_replication=True, cpus=2) == 13  # server default 8 + 5
    assert value("wal_level_dba", logical_replication=True) == "logical"
    got = by_key(profile({"logical_replication": True}))
    assert got["max_worker_processes"].text == "13"
    assert got["max_parallel_workers"].text == "8"  # parallel queries keep their 8, replication its 5
    assert got["work_mem"].value == 20164  # pgtune's work_mem still divides by pgtune's 8 workers


def test_io_uring_is_not_used_under_cloudnativepg() -> None:
    assert by_key(profile({"version": 18}))["io_method"].text == "io_uring"  # pgtune's, external
    got = by_key(profile({"version": 18}, kubernetes={"postgres": "cloudnativepg"}))
    assert got["io_method"].text == "worker"
    assert "seccomp" in got["io_method"].rule
    forced = profile({"version": 18, "settings": {"io_method": "io_uring"}}, kubernetes={"postgres": "cloudnativepg"})
    [message] = errors(checks.run(forced, parts_of(forced)), "postgres_io_method_allowed")
    assert "RuntimeDefault seccomp profile" in message


# ---------------------------------------------------------------- the memory budget
def test_two_thousand_connections_on_four_gib_are_refused() -> None:
    p = variant("dev", {"postgres": {"max_connections": 2000}})
    # work_mem: (4194304 - 1048576) / ((2000 + 8) x 3) = 522 -> the 4MB floor; 1048576 + 4096 x 2000 x 1
    # + 262144 + 3 x 262144 = 10289152 kB
    [message] = errors(run_checks(p), "postgres_fits_memory")
    assert message == ("shared_buffers 1GiB + work_mem 4MiB x max_connections 2000 + maintenance_work_mem 256MiB + "
                       "3 autovacuum workers x 256MiB = 9.81GiB (10289152 kB) exceeds hardware.postgres.memory 4GiB "
                       "(4194304 kB)")
    assert checks.WORK_MEM_FACTOR == 1
    # the most that fits: (4194304 - 1048576 - 262144 - 786432) / 4096 = 512 connections
    assert errors(run_checks(variant("dev", {"postgres": {"max_connections": 512}})), "postgres_fits_memory") == []
    assert errors(run_checks(variant("dev", {"postgres": {"max_connections": 513}})), "postgres_fits_memory")


# ---------------------------------------------------------------- per-role timeouts
def test_timeouts_are_per_role_not_server_wide() -> None:
    p = profile({"app_roles": ["app", "worker"], "statement_timeout": "20s", "lock_timeout": "2s"})
    files = postgres.render(p).files
    conf = files["postgres/postgresql.conf"]
    for key in ("statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout"):
        assert f"\n{key} = " not in conf
        assert f"ALTER SYSTEM SET {key}" not in files["postgres/alter_system.sql"]
    statements = [line.split("  -- ")[0] for line in files["postgres/roles.sql"].splitlines()
                  if line.startswith("ALTER ROLE")]
    assert statements == [
        "ALTER ROLE \"app\" SET statement_timeout = E'20s';", "ALTER ROLE \"app\" SET lock_timeout = E'2s';",
        "ALTER ROLE \"app\" SET idle_in_transaction_session_timeout = E'1min';",
        "ALTER ROLE \"worker\" SET statement_timeout = E'20s';", "ALTER ROLE \"worker\" SET lock_timeout = E'2s';",
        "ALTER ROLE \"worker\" SET idle_in_transaction_session_timeout = E'1min';"]
    assert "\nlog_min_duration_statement = 200ms" in conf  # a logging setting stays server-wide
    # an explicit override is server-wide by choice
    overridden = profile({"settings": {"statement_timeout": "45s"}})
    assert "\nstatement_timeout = 45s  # override" in postgres.render(overridden).files["postgres/postgresql.conf"]
    assert "statement_timeout" not in postgres.render(overridden).files["postgres/roles.sql"]


def test_lock_timeout_must_be_below_statement_timeout() -> None:
    assert errors(run_checks(variant("prod", {"postgres": {"lock_timeout": "29999ms"}})),
                  "lock_timeout_below_statement_timeout") == []
    [message] = errors(run_checks(variant("prod", {"postgres": {"lock_timeout": "30s"}})),
                       "lock_timeout_below_statement_timeout")
    assert message.startswith("postgres.statement_timeout 30s (30000 ms) must be above postgres.lock_timeout 30s "
                              "(30000 ms)")
    # lock_timeout 0 (off) leaves lock waits to statement_timeout; statement_timeout 0 bounds nothing
    assert errors(run_checks(variant("prod", {"postgres": {"lock_timeout": 0}})),
                  "lock_timeout_below_statement_timeout") == []


# ---------------------------------------------------------------- list parameters
def test_list_parameters_become_one_literal_per_element() -> None:
    p = profile({"settings": {"shared_preload_libraries": "pg_stat_statements, auto_explain",
                              "search_path": '"$user", public', "log_destination": "stderr,csvlog"}})
    sql = postgres.render(p).files["postgres/alter_system.sql"]
    assert "ALTER SYSTEM SET shared_preload_libraries = E'pg_stat_statements', E'auto_explain';" in sql
    assert "ALTER SYSTEM SET search_path = E'$user', E'public';" in sql  # PostgreSQL quotes "$user" itself
    assert "ALTER SYSTEM SET log_destination = E'stderr', E'csvlog';" in sql
    conf = postgres.render(p).files["postgres/postgresql.conf"]
    assert "\nshared_preload_libraries = 'pg_stat_statements, auto_explain'  #" in conf  # one string in the file


def test_a_library_list_with_spaces_is_refused() -> None:
    # at load, at its key (validation.py), before ALTER SYSTEM's literals are written
    with pytest.raises(ProfileError) as refused:
        variant("prod", {"postgres": {"settings": {"shared_preload_libraries": "pg_stat_statements auto_explain"}}})
    [problem] = refused.value.problems
    assert problem.key == "postgres.settings.shared_preload_libraries"
    assert "'pg_stat_statements auto_explain' holds a space" in problem.message
    # and by the check on a rendered part (a managed database: postgresql.conf values, no ALTER SYSTEM)
    p = profile({"managed": "rds", "settings": {"shared_preload_libraries": "pg_stat_statements auto_explain"}},
                kubernetes={"postgres": "external"})
    [message] = errors(checks.run(p, parts_of(p)), "postgres_list_values")
    assert "'pg_stat_statements auto_explain' holds a space" in message


@pytest.fixture(scope="module")
def server() -> Iterator[localservers.Postgres]:
    pg = localservers.start_postgres()
    try:
        yield pg
    finally:
        pg.cleanup()


def _apply(server: localservers.Postgres, sql: str) -> None:
    statements = [line.split("  -- ")[0] for line in sql.splitlines() if line.startswith(("ALTER ", "CREATE "))]
    assert statements
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)  # type: ignore[call-overload]  # rendered SQL, not a literal


def _apply_alter_system(server: localservers.Postgres, sql: str) -> None:
    """As a DBA runs alter_system.sql: the core settings, a restart, then the extensions' settings, which
    PostgreSQL 16 and older accept only once shared_preload_libraries has loaded the extension."""
    core, _, extensions = sql.partition(postgres.AFTER_RESTART_MARK)
    _apply(server, core)
    server.restart()
    if extensions:
        _apply(server, extensions)
        server.restart()


def test_alter_system_with_two_libraries_restarts(server: localservers.Postgres) -> None:
    p = profile({"settings": {"shared_preload_libraries": "pg_stat_statements,auto_explain"}}, memory="1GiB")
    try:
        sql = postgres.render(p).files["postgres/alter_system.sql"]
        assert postgres.AFTER_RESTART_MARK in sql  # PostgreSQL 16: pg_stat_statements.max after the restart
        _apply_alter_system(server, sql)
        with psycopg.connect(server.dsn(), autocommit=True) as conn:
            assert conn.execute("SHOW shared_preload_libraries").fetchone() == ("pg_stat_statements, auto_explain",)
            assert conn.execute("SELECT count(*) FROM pg_settings WHERE name = 'auto_explain.log_min_duration'"
                                ).fetchone() == (1,)
            assert conn.execute("SHOW pg_stat_statements.max").fetchone() == ("10000",)
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            assert conn.execute("SELECT count(*) >= 0 FROM pg_stat_statements").fetchone() == (True,)
            assert conn.execute("SELECT count(*) FROM pg_file_settings WHERE error IS NOT NULL").fetchone() == (0,)
    finally:
        with psycopg.connect(server.dsn(), autocommit=True) as conn:
            conn.execute("ALTER SYSTEM RESET ALL")
        server.restart()


def test_one_literal_for_two_libraries_stops_the_restart(server: localservers.Postgres) -> None:
    """The control: the form alter_system.sql used to write leaves a server that does not start."""
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        conn.execute("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements,auto_explain'")
    try:
        result = server.ctl("restart", "-w", "-t", "30", "-m", "fast", "-l", str(server.log), check=False)
        assert result.returncode != 0
        assert 'could not access file "pg_stat_statements,auto_explain"' in server.log.read_text()
    finally:
        auto = server.data_dir / "postgresql.auto.conf"
        subprocess.run(["runuser", "-u", "postgres", "--", "sh", "-c", f": > {auto}"], check=True)
        server.ctl("start", "-w", "-t", "60", "-l", str(server.log))


def test_list_parameter_table_matches_postgres_15(server: localservers.Postgres) -> None:
    """PostgreSQL refuses `SET x = 'a', 'b'` with "takes only one argument" for every string parameter that is
    not a list: that is how the server itself says which are."""
    lists = set()
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        names = [row[0] for row in conn.execute("SELECT name FROM pg_settings WHERE vartype = 'string'")]
        for name in names:
            try:
                conn.execute(f"SET {name} = 'a', 'b'")  # type: ignore[call-overload]  # names from pg_settings
            except psycopg.Error as exc:
                if "takes only one argument" in str(exc):
                    continue
            lists.add(name.lower())
        conn.execute("RESET ALL")
    known = {name.lower() for name in names}
    assert len(lists) >= 8
    assert lists == {n for n in pgversions.LIST_PARAMETERS if n in known}


def test_restart_parameter_table_matches_postgres_15(server: localservers.Postgres) -> None:
    with psycopg.connect(server.dsn()) as conn:
        rows = conn.execute("SELECT name, context FROM pg_settings").fetchall()
    postmaster = {name for name, context in rows if context == "postmaster"}
    assert postmaster == {n for n in pgversions.RESTART_PARAMETERS if n in {name for name, _ in rows}}


def test_rendered_settings_start_a_real_server() -> None:
    """Every DBA rule's value (here for an oltp profile with a WAL disk, a write rate and logical replication)
    is read by PostgreSQL 15 from the rendered file, with the libraries loaded."""
    p = profile({"workload": "oltp", "version": 15, "logical_replication": True}, memory="2GiB", cpus=4,
                wal_disk="8GiB", write_rate="40MB/s")
    items = postgres.server_settings(postgres.settings(p))
    pg = localservers.start_postgres(postgres.render(p).files["postgres/postgresql.conf"])
    try:
        with psycopg.connect(pg.dsn()) as conn:
            for s in items:
                row = conn.execute("SELECT source, sourcefile FROM pg_settings WHERE name = %s", (s.key,)).fetchone()
                assert row is not None, s.key
                assert row[0] == "configuration file" and row[1].endswith("perfstack.conf"), (s.key, row)
            assert conn.execute("SHOW wal_level").fetchone() == ("logical",)
            assert conn.execute("SHOW max_worker_processes").fetchone() == ("9",)  # 4 CPUs + 4 + 1
            assert conn.execute("SHOW max_wal_size").fetchone() == ("4GB",)  # 40MB/s x 900s = 35GB; half of 8GB
            # 4096 MB / 40 MB/s = 102 s: checkpoints every minute
            assert conn.execute("SHOW checkpoint_timeout").fetchone() == ("1min",)
            assert conn.execute("SHOW autovacuum_vacuum_cost_limit").fetchone() == ("2000",)
            assert conn.execute("SELECT count(*) FROM pg_file_settings WHERE error IS NOT NULL").fetchone() == (0,)
    finally:
        pg.cleanup()


@pytest.fixture(scope="module")
def role_stack() -> Iterator[tuple[localservers.Postgres, localservers.PgBouncer]]:
    p = local_pgbouncer_profile("dev", {"postgres": {"statement_timeout": "2s", "lock_timeout": "300ms"}})
    files = postgres.render(p).files
    pg = localservers.start_postgres(files["postgres/postgresql.conf"])
    bouncer = None
    try:
        with psycopg.connect(pg.dsn(), autocommit=True) as conn:
            conn.execute("CREATE DATABASE app")
            conn.execute("CREATE ROLE app LOGIN")
        _apply(pg, files["postgres/roles.sql"])
        with psycopg.connect(pg.dsn(dbname="app"), autocommit=True) as conn:
            conn.execute("CREATE TABLE jobs (id int)")
            conn.execute("GRANT SELECT ON jobs TO app")
        bouncer = localservers.start_pgbouncer(parts_of(p).pgbouncer.files["pgbouncer/pgbouncer.ini"], pg,
                                               admin_user="app")
        yield pg, bouncer
    finally:
        if bouncer is not None:
            bouncer.cleanup()
        pg.cleanup()


def test_role_timeouts_apply_through_pgbouncer(role_stack: tuple[localservers.Postgres, localservers.PgBouncer]) -> None:
    pg, bouncer = role_stack
    with psycopg.connect(bouncer.dsn("app", user="app"), prepare_threshold=None) as conn:
        shown = [conn.execute(f"SHOW {key}").fetchone()[0]  # type: ignore[index,call-overload]
                 for key in ("statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout")]
    assert shown == ["2s", "300ms", "1min"]
    with psycopg.connect(pg.dsn()) as conn:  # a superuser's maintenance session is not cut short
        assert conn.execute("SHOW statement_timeout").fetchone() == ("0",)


def test_lock_timeout_fires_before_statement_timeout(
        role_stack: tuple[localservers.Postgres, localservers.PgBouncer]) -> None:
    pg, bouncer = role_stack
    with psycopg.connect(pg.dsn(dbname="app")) as holder:
        holder.execute("LOCK TABLE jobs IN ACCESS EXCLUSIVE MODE")  # held until this transaction ends
        with psycopg.connect(bouncer.dsn("app", user="app"), prepare_threshold=None) as conn:
            start = time.monotonic()
            with pytest.raises(psycopg.errors.LockNotAvailable, match="lock timeout"):
                conn.execute("SELECT count(*) FROM jobs")
            assert time.monotonic() - start < 1.5  # 300ms, well before the 2s statement timeout
        holder.rollback()


# ---------------------------------------------------------------- managed databases
def test_managed_services_get_their_own_file_not_alter_system() -> None:
    self_managed = postgres.render(variant("prod", {})).files
    assert "postgres/alter_system.sql" in self_managed and "postgres/rds-parameter-group.json" not in self_managed
    p = variant("prod", {"postgres": {"managed": "rds", "logical_replication": True}})
    part = parts_of(p).postgres
    assert "postgres/alter_system.sql" not in part.files
    group = json.loads(part.files["postgres/rds-parameter-group.json"])
    params = {row["ParameterName"]: row for row in group["Parameters"]}
    assert group["DBParameterGroupName"] == "perfstack-prod"
    # 16GB in 8kB blocks = 2097152; static: waits for a reboot
    assert params["shared_buffers"] == {"ParameterName": "shared_buffers", "ParameterValue": "2097152",
                                        "ApplyMethod": "pending-reboot"}
    assert params["work_mem"]["ApplyMethod"] == "immediate"
    assert params["work_mem"]["ParameterValue"] == str(part.value("work_mem"))  # kB
    assert params["checkpoint_timeout"]["ParameterValue"] == "900"              # seconds
    assert params["max_wal_size"]["ParameterValue"] == "4096"                   # MB: pgtune's 4GB for web
    assert params["shared_preload_libraries"]["ParameterValue"] == "pg_stat_statements"
    assert params["rds.logical_replication"] == {"ParameterName": "rds.logical_replication", "ParameterValue": "1",
                                                 "ApplyMethod": "pending-reboot"}
    assert "wal_level" not in params and "log_line_prefix" not in params and "statement_timeout" not in params
    reported = [w.message for w in part.warnings if w.check == "postgres.managed"]
    assert any("log_line_prefix" in m and "RDS fixes the log line prefix" in m for m in reported)
    cloudsql = json.loads(parts_of(variant("prod", {"postgres": {"managed": "cloudsql"}})).postgres.files[
        "postgres/cloudsql-flags.json"])
    flags = {f["name"]: f["value"] for f in cloudsql["settings"]["databaseFlags"]}
    assert "shared_buffers" not in flags and flags["max_connections"] == "200"
    azure = json.loads(parts_of(variant("prod", {"postgres": {"managed": "azure"}})).postgres.files[
        "postgres/azure-server-parameters.json"])
    rows = {row["name"]: row for row in azure}
    assert rows["shared_buffers"] == {"name": "shared_buffers", "value": "2097152", "static": True}
    assert rows["work_mem"]["static"] is False
    assert "huge_pages" not in rows and "superuser_reserved_connections" not in rows


def test_managed_service_refuses_an_override_it_does_not_take() -> None:
    p = variant("prod", {"postgres": {"managed": "rds", "settings": {"log_line_prefix": "%m "}}})
    [message] = errors(run_checks(p), "postgres_managed_allows")
    assert message.startswith("postgres.managed rds does not let a parameter group or flag set log_line_prefix")
    cnpg = variant("prod", {"postgres": {"managed": "rds"}, "kubernetes": {"postgres": "cloudnativepg"}})
    assert errors(run_checks(cnpg), "postgres_managed_is_external")


# ---------------------------------------------------------------- CloudNativePG wiring
def test_cloudnativepg_gets_libraries_and_wal_storage() -> None:
    p = profile(kubernetes={"postgres": "cloudnativepg"}, wal_disk="20GiB", memory="4GiB")
    part = workloads.render(p, parts_of(p))
    cluster = next(o for o in part.objects if o["kind"] == "Cluster")
    assert cluster["spec"]["postgresql"]["shared_preload_libraries"] == ["pg_stat_statements"]
    assert "shared_preload_libraries" not in cluster["spec"]["postgresql"]["parameters"]
    assert "statement_timeout" not in cluster["spec"]["postgresql"]["parameters"]
    assert cluster["spec"]["walStorage"] == {"size": "20Gi"}
    assert not part.warnings  # nothing the operator owns was dropped


# ---------------------------------------------------------------- the README's table is the code's
def test_readme_sizing_table_matches_the_rules() -> None:
    readme = (REPO / "README.md").read_text()
    match = re.search(r"<!-- sizing-table:start -->\n(.*?)<!-- sizing-table:end -->", readme, re.S)
    assert match, "README.md has no sizing table markers"
    assert match.group(1) == postgres.sizing_table()
    assert "| `max_wal_size` | 2GB | 32GB | 250GB |" in match.group(1)  # it responds to the inputs

"""Judged by the real servers: the rendered postgresql.conf, pgbouncer.ini and redis.conf are read by
Debian's PostgreSQL, PgBouncer and redis-server, and every managed setting reads back as rendered.

dev is small enough to start here. prod's PostgreSQL is sized for 64 GiB, so each of its settings goes
through `postgres -C` (which parses the whole file and prints the value without allocating memory);
prod's PgBouncer and Redis start for real (Redis's maxmemory is only a limit).
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis as redis_client

from generators import localservers
from generators import pgbouncer as pgbouncer_target
from generators.bundle import Bundle, Part, Setting

from .conftest import local_pgbouncer_profile, rendered_bundle

SIZE = {"B": 1, "kB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}
TIME_MS = {"us": 0.001, "ms": 1, "s": 1000, "min": 60_000, "h": 3_600_000, "d": 86_400_000}


def canonical(text: str) -> tuple[str, object]:
    """A PostgreSQL value as written or as SHOW prints it -> comparable (kind, value): sizes in bytes, times in ms."""
    text = text.strip().strip("'")
    match = re.fullmatch(r"(-?\d+(?:\.\d+)?)\s*([a-zA-Z]*)", text)
    if match:
        number, unit = float(match[1]), match[2]
        if number == 0:
            return "number", 0.0  # SHOW prints a zero size or time without its unit
        if unit in SIZE:
            return "size", number * SIZE[unit]
        if unit in TIME_MS:
            return "time", number * TIME_MS[unit]
        if not unit:
            return "number", number
    return "text", {"true": "on", "false": "off", "yes": "on", "no": "off"}.get(text.lower(), text.lower())


def from_pg_settings(setting: str, unit: str | None, vartype: str) -> tuple[str, object]:
    """pg_settings.setting times its unit ('8kB', 'MB', 'ms', 's', 'min') -> the same (kind, value) as canonical."""
    if vartype in ("integer", "real") and unit:
        match = re.fullmatch(r"(\d*)([a-zA-Z]+)", unit)
        assert match, unit
        factor = int(match[1] or 1)
        if float(setting) == 0:
            return "number", 0.0
        if match[2] in SIZE:
            return "size", float(setting) * factor * SIZE[match[2]]
        return "time", float(setting) * factor * TIME_MS[match[2]]
    return canonical(setting)


def postgres_settings(bundle: Bundle) -> list[Setting]:
    """The server-wide settings (the per-role timeouts are in roles.sql: tests/test_dba.py runs them)."""
    return [s for s in bundle.target_settings("postgres").values() if s.scope == "server"]


# ---------------------------------------------------------------- PostgreSQL (dev: a full start)
@pytest.fixture(scope="module")
def postgres_dev() -> Iterator[localservers.Postgres]:
    server = localservers.start_postgres(rendered_bundle("dev").files["postgres/postgresql.conf"])
    try:
        with psycopg.connect(server.dsn(), autocommit=True) as conn:
            conn.execute("CREATE DATABASE app")  # the database the rendered [databases] section pools
        yield server
    finally:
        server.cleanup()


def test_dev_postgres_reads_every_managed_setting(postgres_dev: localservers.Postgres) -> None:
    settings = postgres_settings(rendered_bundle("dev"))
    assert len(settings) >= 20
    with psycopg.connect(postgres_dev.dsn()) as conn:
        rows = {name: rest for name, *rest in conn.execute(
            "SELECT name, setting, unit, vartype, source, sourcefile FROM pg_settings")}
        mismatched = []
        for s in settings:
            assert s.key in rows, f"{s.key} is not a PostgreSQL {conn.info.server_version} parameter"
            setting, unit, vartype, source, sourcefile = rows[s.key]
            # read from the rendered file, not a default that happens to agree
            assert (source, Path(sourcefile or "").name) == ("configuration file", "perfstack.conf"), s.key
            if from_pg_settings(setting, unit, vartype) != canonical(s.text):
                mismatched.append((s.key, s.text, setting, unit))
            shown = conn.execute(f"SHOW {s.key}").fetchone()[0]  # the name is a known parameter, checked above
            assert canonical(shown) == canonical(s.text), (s.key, shown, s.text)
        assert mismatched == []


def test_dev_postgres_file_has_no_errors(postgres_dev: localservers.Postgres) -> None:
    with psycopg.connect(postgres_dev.dsn()) as conn:
        errors = conn.execute("SELECT name, error FROM pg_file_settings WHERE error IS NOT NULL").fetchall()
    assert errors == []


def test_dev_alter_system_is_accepted(postgres_dev: localservers.Postgres) -> None:
    sql = rendered_bundle("dev").files["postgres/alter_system.sql"]
    statements = [line.split("  -- ")[0] for line in sql.splitlines() if line.startswith("ALTER SYSTEM")]
    with psycopg.connect(postgres_dev.dsn(), autocommit=True) as conn:
        try:
            for statement in statements:
                conn.execute(statement)
            conn.execute("SELECT pg_reload_conf()")
            rows = conn.execute("SELECT name, setting, error FROM pg_file_settings "
                                "WHERE sourcefile LIKE '%postgresql.auto.conf'").fetchall()
        finally:
            conn.execute("ALTER SYSTEM RESET ALL")
    assert len(rows) == len(statements)
    assert [r for r in rows if r[2] is not None] == []
    rendered = {s.key: canonical(s.text) for s in postgres_settings(rendered_bundle("dev"))}
    assert {name: canonical(setting) for name, setting, _ in rows} == rendered


# ---------------------------------------------------------------- PostgreSQL (prod: postgres -C on each setting)
@pytest.fixture(scope="module")
def prod_cluster() -> Iterator[Path]:
    """One initdb with prod's postgresql.conf included; `postgres -C` reads it without starting a server."""
    workdir = localservers.make_workdir("perfstack-pgc-")
    try:
        server = localservers.Postgres(workdir=workdir, port=localservers.free_port(),
                                       bin_dir=localservers.pg_bin_dir())
        result = subprocess.run([*_as_postgres(), str(server.bin_dir / "initdb"), "-D", str(server.data_dir),
                                 "-U", "postgres", "--auth=trust"], capture_output=True, text=True, timeout=180)
        assert result.returncode == 0, result.stderr
        localservers.configure_postgres(server, rendered_bundle("prod").files["postgres/postgresql.conf"])
        yield server.data_dir
    finally:
        subprocess.run(["rm", "-rf", str(workdir)], check=False)


def _as_postgres() -> list[str]:
    return ["runuser", "-u", localservers.RUN_AS, "--"] if localservers._as_root() else []


def test_prod_postgres_accepts_every_setting_with_its_value(prod_cluster: Path,
                                                            postgres_dev: localservers.Postgres) -> None:
    settings = postgres_settings(rendered_bundle("prod"))
    # `postgres -C` prints the bare number in the parameter's base unit: pg_settings says which unit that is
    with psycopg.connect(postgres_dev.dsn()) as conn:
        units = {name: (unit, vartype) for name, unit, vartype in conn.execute(
            "SELECT name, unit, vartype FROM pg_settings")}
    assert rendered_bundle("prod").setting("postgres.shared_buffers").text == "16GB"  # too big to start here
    postgres = str(localservers.pg_bin_dir() / "postgres")
    problems = []
    for s in settings:
        result = subprocess.run([*_as_postgres(), postgres, "-D", str(prod_cluster), "-C", s.key],
                                capture_output=True, text=True, timeout=60)
        if result.returncode != 0:
            problems.append((s.key, s.text, result.stderr.strip()))
        elif from_pg_settings(result.stdout.strip(), *units[s.key]) != canonical(s.text):
            problems.append((s.key, s.text, result.stdout.strip()))
    assert problems == []


def test_postgres_refuses_a_bad_value(prod_cluster: Path) -> None:
    # The check above could fail: the same probe reports a value PostgreSQL refuses.
    complaint = localservers.postgres_accepts("effective_io_concurrency", "5000")
    assert complaint is not None and "effective_io_concurrency" in complaint


# ---------------------------------------------------------------- PgBouncer in front of the dev PostgreSQL
# The local PostgreSQL has no TLS: prod's verify-full to its managed database is judged by test_pgbouncer_auth.py.
REWRITTEN_FOR_THE_TEST = {"listen_addr", "listen_port", "auth_type", "auth_file", "auth_user", "auth_query",
                          "admin_users", "stats_users", "server_tls_sslmode", "server_tls_ca_file"}


def local_part(env: str) -> Part:
    """The example's PgBouncer part, rendered for the local PgBouncer's version (conftest.local_pgbouncer_profile)."""
    return pgbouncer_target.render(local_pgbouncer_profile(env))


@pytest.fixture(scope="module", params=["dev", "prod"])
def pgbouncer(request: pytest.FixtureRequest, postgres_dev: localservers.Postgres) -> Iterator[tuple[str, object]]:
    env = request.param
    ini = localservers.rewrite_ini(local_part(env).files["pgbouncer/pgbouncer.ini"],
                                   {"server_tls_sslmode": None, "server_tls_ca_file": None})
    server = localservers.start_pgbouncer(ini, postgres_dev)
    try:
        yield env, server
    finally:
        server.cleanup()


def test_pgbouncer_show_config_matches(pgbouncer: tuple[str, localservers.PgBouncer]) -> None:
    env, server = pgbouncer
    settings = {s.key: s for s in local_part(env).settings}
    with psycopg.connect(server.admin_dsn(), autocommit=True, prepare_threshold=None) as admin:
        config = {key: value for key, value, *_ in admin.execute("SHOW CONFIG")}
    checked = [key for key in settings if key not in REWRITTEN_FOR_THE_TEST]
    assert len(checked) >= 8
    assert {key: config.get(key) for key in checked} == {key: settings[key].text for key in checked}


def test_queries_run_through_pgbouncer(pgbouncer: tuple[str, localservers.PgBouncer]) -> None:
    env, server = pgbouncer
    for _ in range(3):  # transaction pooling hands each transaction any server connection
        with psycopg.connect(server.dsn("app"), prepare_threshold=None) as conn:
            assert conn.execute("SELECT current_database(), 6 * 7").fetchone() == ("app", 42)
            # the rendered timeouts are per application role (roles.sql; tests/test_dba.py runs them through
            # PgBouncer as that role): the superuser this test logs in as keeps the server's unbounded default
            assert conn.execute("SHOW statement_timeout").fetchone() == ("0",)
    with psycopg.connect(server.admin_dsn(), autocommit=True, prepare_threshold=None) as admin:
        pools = {row[0] for row in admin.execute("SHOW POOLS")}
        cursor = admin.execute("SHOW DATABASES")
        columns = [c.name for c in cursor.description]
        databases = {row[0]: dict(zip(columns, row, strict=True)) for row in cursor}
    assert "app" in pools
    assert databases["app"]["host"] == "127.0.0.1"  # rewritten for the test
    assert databases["app"]["database"] == "app"    # dbname from the rendered [databases] entry
    assert databases["app"]["pool_mode"] in (None, local_part(env).setting("pool_mode").text)


def test_pgbouncer_ini_has_no_password() -> None:
    for env in ("dev", "prod"):
        ini = rendered_bundle(env).files["pgbouncer/pgbouncer.ini"]
        lines = [line for line in ini.splitlines() if line.strip() and not line.startswith(";")]
        assert not [line for line in lines if "password" in line.split("=")[0].lower() or "password=" in line]
        assert re.search(r"^auth_file = /etc/pgbouncer/userlist.txt$", ini, re.M)


# ---------------------------------------------------------------- Redis (dev and prod)
@pytest.fixture(scope="module", params=["dev", "prod"])
def redis_server(request: pytest.FixtureRequest) -> Iterator[tuple[str, localservers.Redis]]:
    server = localservers.start_redis(rendered_bundle(request.param).files["redis/redis.conf"])
    try:
        yield request.param, server
    finally:
        server.cleanup()


REDIS_SIZE = {"": 1, "b": 1, "kb": 1024, "mb": 1024**2, "gb": 1024**3}


def redis_value(key: str, text: str) -> str:
    """A rendered redis.conf value as CONFIG GET prints it: sizes in bytes, quotes removed."""
    text = text.strip().strip('"')
    size = re.fullmatch(r"(\d+)(b|kb|mb|gb)?", text.lower())
    if key == "maxmemory" and size:
        return str(int(size[1]) * REDIS_SIZE[size[2] or ""])
    return text


def test_redis_config_get_matches(redis_server: tuple[str, localservers.Redis]) -> None:
    env, server = redis_server
    settings = rendered_bundle(env).target_settings("redis")
    client = redis_client.Redis(host="127.0.0.1", port=server.port, decode_responses=True)
    try:
        # the port is rewritten for the test; the ACL user is on the command line (test_redis_acl.py)
        checked = [key for key in settings if key not in ("port", "user")]
        live = {key: client.config_get(key).get(key) for key in checked}
        assert live == {key: redis_value(key, settings[key].text) for key in checked}
        assert int(live["maxmemory"]) == rendered_bundle(env).setting("redis.maxmemory").value
        assert client.set("perfstack", "ok") and client.get("perfstack") == "ok"
        assert client.config_get("requirepass").get("requirepass") == ""  # no password in the file
    finally:
        client.close()


def test_redis_maxmemory_is_75_percent() -> None:
    # dev: 1GiB x 0.75 = 768MiB; prod: 8GiB x 0.75 = 6GiB
    assert rendered_bundle("dev").setting("redis.maxmemory").value == 768 * 1024**2
    assert rendered_bundle("prod").setting("redis.maxmemory").value == 6 * 1024**3


def test_the_queue_redis_fsyncs_every_job_and_never_evicts() -> None:
    # prod's queue Redis (redis-queue/redis.conf), read by a real redis-server.
    server = localservers.start_redis(rendered_bundle("prod").files["redis-queue/redis.conf"])
    client = redis_client.Redis(host="127.0.0.1", port=server.port, decode_responses=True)
    try:
        assert client.config_get("appendfsync") == {"appendfsync": "always"}
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
        assert client.config_get("lazyfree-lazy-eviction") == {"lazyfree-lazy-eviction": "no"}  # never evicts anyway
        assert client.rpush("jobs", "a") == 1 and client.info("persistence")["aof_enabled"] == 1
    finally:
        client.close()
        server.cleanup()

"""PgBouncer's auth_query, judged by a real PostgreSQL 15 and PgBouncer: the rendered lookup function
(pgbouncer/auth_query.sql) lets live roles in, keeps expired (VALID UNTIL) and NOLOGIN roles out, and only the
auth_user may execute it. The control runs PgBouncer's old pg_shadow query, which lets the expired role in
(CVE-2025-2291): the same test would fail on it.

PostgreSQL here trusts loopback connections, as a server behind a pooler often trusts the pooler's network:
then PgBouncer's own check (its auth_query) is the only one, which is what CVE-2025-2291 was about.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from generators import localservers, paths
from generators import pgbouncer as pgbouncer_target
from generators.profile import Profile

from .conftest import local_pgbouncer_profile

PASSWORD = "correct horse"
OLD_AUTH_QUERY = "SELECT usename, passwd FROM pg_shadow WHERE usename=$1"


def profile() -> Profile:
    return local_pgbouncer_profile("dev")


@pytest.fixture(scope="module")
def postgres() -> Iterator[localservers.Postgres]:
    server = localservers.start_postgres()
    p = profile()
    try:
        with psycopg.connect(server.dsn(), autocommit=True) as conn:
            for db in p.pgbouncer.databases:
                conn.execute(f"CREATE DATABASE {db}")
            conn.execute(f"CREATE ROLE alive LOGIN PASSWORD '{PASSWORD}'")
            conn.execute(f"CREATE ROLE expired LOGIN PASSWORD '{PASSWORD}' VALID UNTIL '2001-01-01'")
            conn.execute(f"CREATE ROLE cannot_login NOLOGIN PASSWORD '{PASSWORD}'")
        sql = pgbouncer_target.render(p).files[paths.PGBOUNCER_AUTH_SQL]
        for db in p.pgbouncer.databases:  # as the file says: a superuser, in every pooled database
            with psycopg.connect(server.dsn(dbname=db), autocommit=True) as conn:
                conn.execute(sql)  # the whole rendered file, as psql -f would run it
        yield server
    finally:
        server.cleanup()


def bouncer(postgres: localservers.Postgres, overrides: dict[str, str | None] | None = None,
            auth_user: str | None = None) -> localservers.PgBouncer:
    p = profile()
    ini = pgbouncer_target.render(p).files[paths.PGBOUNCER_INI]
    if overrides:
        ini = localservers.rewrite_ini(ini, overrides)
    user = auth_user or p.pgbouncer.auth_user
    # The Secret's userlist holds the auth_user's line; PostgreSQL trusts it here.
    return localservers.start_pgbouncer(ini, postgres, userlist_text=f'"{user}" "unused-here"\n')


def connect(server: localservers.PgBouncer, user: str) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(server.dsn("app", user), password=PASSWORD, prepare_threshold=None)


@pytest.fixture(scope="module")
def rendered(postgres: localservers.Postgres) -> Iterator[localservers.PgBouncer]:
    server = bouncer(postgres)
    try:
        yield server
    finally:
        server.cleanup()


def test_rendered_auth_settings() -> None:
    settings = {s.key: s.text for s in pgbouncer_target.settings(profile())}
    assert settings["auth_query"] == "SELECT uname, phash FROM pgbouncer.user_lookup($1)"
    assert settings["auth_type"] == "scram-sha-256"
    ini = pgbouncer_target.render(profile()).files[paths.PGBOUNCER_INI]
    assert not [line for line in ini.splitlines() if "pg_shadow" in line and not line.startswith(";")]


def test_a_live_role_logs_in_through_pgbouncer(rendered: localservers.PgBouncer) -> None:
    with connect(rendered, "alive") as conn:
        assert conn.execute("SELECT current_user, current_database()").fetchone() == ("alive", "app")
    with pytest.raises(psycopg.OperationalError, match="authentication failed"):
        psycopg.connect(rendered.dsn("app", "alive"), password="wrong", prepare_threshold=None)


@pytest.mark.parametrize("role", ["expired", "cannot_login"])
def test_an_expired_or_nologin_role_cannot_log_in_through_pgbouncer(rendered: localservers.PgBouncer,
                                                                     role: str) -> None:
    with pytest.raises(psycopg.OperationalError):
        connect(rendered, role)


def test_control_the_pg_shadow_query_lets_the_expired_role_in(postgres: localservers.Postgres) -> None:
    # What perfstack rendered before: pg_shadow (a superuser auth_user) ignores VALID UNTIL.
    server = bouncer(postgres, {"auth_query": OLD_AUTH_QUERY, "auth_user": "postgres"}, auth_user="postgres")
    try:
        with connect(server, "expired") as conn:
            assert conn.execute("SELECT current_user").fetchone() == ("expired",)
    finally:
        server.cleanup()


def test_the_lookup_function_is_locked_down(postgres: localservers.Postgres) -> None:
    p = profile()
    auth_user = p.pgbouncer.auth_user
    with psycopg.connect(postgres.dsn(dbname="app"), autocommit=True) as conn:
        secdef, config, owner_super = conn.execute(
            "SELECT p.prosecdef, p.proconfig, r.rolsuper FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            "JOIN pg_roles r ON r.oid = p.proowner WHERE n.nspname = 'pgbouncer' AND p.proname = 'user_lookup'"
        ).fetchone()
        assert secdef is True and owner_super is True  # runs as its superuser owner: reads pg_authid
        assert config == ["search_path=pg_catalog, pg_temp"]  # no schema an attacker can create objects in
        can = "SELECT has_function_privilege(%s, 'pgbouncer.user_lookup(text)', 'EXECUTE')"
        assert conn.execute(can, (auth_user,)).fetchone() == (True,)
        assert conn.execute(can, ("alive",)).fetchone() == (False,)  # PUBLIC's EXECUTE is revoked
        assert conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = %s", (auth_user,)).fetchone() == (False,)
        assert conn.execute("SELECT * FROM pgbouncer.user_lookup('expired')").fetchall() == []
        [(name, phash)] = conn.execute("SELECT * FROM pgbouncer.user_lookup('alive')").fetchall()
        assert name == "alive" and phash.startswith("SCRAM-SHA-256$")
    with psycopg.connect(postgres.dsn(user="alive", dbname="app"), autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT * FROM pgbouncer.user_lookup('alive')")

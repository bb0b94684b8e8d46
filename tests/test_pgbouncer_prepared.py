"""Prepared statements through PgBouncer in transaction mode, judged by psycopg, PostgreSQL 15 and PgBouncer 1.18.

psycopg prepares a query server-side after it ran `prepare_threshold` (5) times on a connection. In transaction
mode the next transaction may run on another server connection, where that statement does not exist. PgBouncer
1.21+ tracks them (max_prepared_statements, rendered for those versions); 1.18 cannot, so the app is told
DB_PREPARE_THRESHOLD= (empty: never prepare). The app here is what a real one does with app/performance.env:
`prepare_threshold = int(value) if value else None`. The control runs psycopg's default threshold on the same
PgBouncer and fails: the test would fail without the rendered setting.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import psycopg
import pytest

from generators import app, localservers, paths
from generators import pgbouncer as pgbouncer_target

from .conftest import local_pgbouncer_profile, variant

CLIENTS, STATEMENTS = 8, 200  # 1,600 statements on 8 client connections sharing 2 server connections
QUERIES = ["SELECT %s::int + 1", "SELECT %s::text || 'x'", "SELECT count(*) FROM generate_series(1, %s::int)",
           "SELECT %s::int * 2 WHERE true"]


def small_pool_profile():  # type: ignore[no-untyped-def]
    # Fewer server connections than clients, so transactions really move between server connections.
    return local_pgbouncer_profile("dev", {"pgbouncer": {"default_pool_size": 2, "min_pool_size": 0,
                                                         "reserve_pool_size": 0}})


def env_threshold(profile) -> int | None:  # type: ignore[no-untyped-def]
    """How the app reads DB_PREPARE_THRESHOLD from app/performance.env."""
    env = dict(line.split("=", 1) for line in app.render(profile).files[paths.APP_ENV].splitlines()
               if line and not line.startswith("#"))
    value = env["DB_PREPARE_THRESHOLD"]
    return int(value) if value else None


@pytest.fixture(scope="module")
def bouncer() -> Iterator[localservers.PgBouncer]:
    pg = localservers.start_postgres()
    try:
        with psycopg.connect(pg.dsn(), autocommit=True) as conn:
            conn.execute("CREATE DATABASE app")
        ini = pgbouncer_target.render(small_pool_profile()).files[paths.PGBOUNCER_INI]
        server = localservers.start_pgbouncer(ini, pg)
        try:
            yield server
        finally:
            server.cleanup()
    finally:
        pg.cleanup()


def run_app(server: localservers.PgBouncer, threshold: int | None) -> tuple[int, int, list[str]]:
    """CLIENTS connections each run STATEMENTS parameterized queries (autocommit: one transaction each)."""
    done, errors, messages = [0], [0], []
    lock = threading.Lock()

    def client(n: int) -> None:
        with psycopg.connect(server.dsn("app"), autocommit=True, prepare_threshold=threshold) as conn:
            for i in range(STATEMENTS):
                try:
                    conn.execute(QUERIES[i % len(QUERIES)], (i + n,)).fetchone()
                    with lock:
                        done[0] += 1
                except psycopg.Error as exc:
                    with lock:
                        errors[0] += 1
                        messages.append(str(exc).splitlines()[0])

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return done[0], errors[0], messages


def test_the_rendered_threshold_runs_every_statement(bouncer: localservers.PgBouncer) -> None:
    profile = small_pool_profile()
    assert profile.pgbouncer.version == "1.18" and profile.pgbouncer.pool_mode == "transaction"
    assert env_threshold(profile) is None  # 1.18 cannot keep them: never prepare server-side
    done, errors, messages = run_app(bouncer, env_threshold(profile))
    assert (done, errors) == (CLIENTS * STATEMENTS, 0), messages[:3]


def test_control_psycopg_default_threshold_fails_on_this_pooler(bouncer: localservers.PgBouncer) -> None:
    done, errors, messages = run_app(bouncer, app.PSYCOPG_PREPARE_THRESHOLD)
    assert errors > 0
    assert any("prepared statement" in m for m in messages), messages[:3]


def test_versions_that_keep_prepared_statements_render_them_and_let_the_app_prepare() -> None:
    for version, rendered in (("1.21", True), ("1.24", True), ("1.26", True), ("1.18", False)):
        profile = variant("dev", {"pgbouncer": {"version": version}})
        keys = {s.key: s.text for s in pgbouncer_target.settings(profile)}
        assert ("max_prepared_statements" in keys) is rendered
        assert env_threshold(profile) == (5 if rendered else None)
        if rendered:
            assert keys["max_prepared_statements"] == "200"
    # 0 turns the tracking off: the app must not prepare then either; session mode keeps server connections.
    assert env_threshold(variant("dev", {"pgbouncer": {"max_prepared_statements": 0}})) is None
    assert env_threshold(variant("dev", {"pgbouncer": {"version": "1.18", "pool_mode": "session",
                                                       "max_client_conn": 100}})) == 5

"""Live: the alerts that fired on healthy systems stay quiet on them and fire on the broken case.

PostgresLongTransaction: a long maintenance command (a VACUUM slowed by vacuum_cost_delay, the way an
autovacuum worker runs) used to fire it (pg_stat_activity_max_tx_duration of every state); it is `active`
and now stays quiet, while an application transaction kept open and idle between statements (never idle
long enough for idle_in_transaction_session_timeout to end it) fires. Real PostgreSQL 15, postgres_exporter
and Prometheus, the rules as rendered from dev with short `for` windows and a 5 s idle-in-transaction timeout.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from generators import alerts, localservers
from generators.loader import Source, deep_merge, load_source
from generators.profile import Profile
from generators.render import render
from generators.validation import profile_from_source

from .conftest import PROFILES
from .test_alerts_live import NEEDED, Exporter, active_alerts, query, wait_for

pytestmark = pytest.mark.skipif(any(__import__("shutil").which(b) is None for b in NEEDED), reason="needs " + ", ".join(NEEDED))
TIMEOUT_S = 5


def live_profile() -> Profile:
    source = load_source(PROFILES / "dev.yaml")
    data = deep_merge(source.data, {"alerts": {"for_scale": 0.02, "evaluation_interval": "1s"},
                                    "postgres": {"idle_in_transaction_session_timeout": f"{TIMEOUT_S}s"}})
    return profile_from_source(Source(data=data, locations=source.locations, files=source.files), "dev")


@pytest.fixture
def stack() -> Iterator[dict[str, Any]]:
    profile = live_profile()
    bundle = render(profile)
    cleanups = []
    try:
        pg = localservers.start_postgres(bundle.files["postgres/postgresql.conf"])
        cleanups.append(pg.cleanup)
        port = localservers.free_port()
        exporter = Exporter(["prometheus-postgres-exporter", f"--web.listen-address=127.0.0.1:{port}"], {
            **os.environ,
            "DATA_SOURCE_NAME": f"postgresql://postgres@127.0.0.1:{pg.port}/postgres?sslmode=disable"}, port)
        exporter.start()
        cleanups.append(exporter.stop)
        config = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"}, "rule_files": ["alerts.yaml"],
                  "scrape_configs": [{"job_name": "postgres-exporter", "static_configs": [
                      {"targets": [f"127.0.0.1:{port}"], "labels": {"namespace": profile.namespace}}]}]}
        prometheus = localservers.start_prometheus(json.dumps(config), {"alerts.yaml": bundle.files[alerts.RULES_FILE]})
        cleanups.append(prometheus.cleanup)
        yield {"profile": profile, "prometheus": prometheus, "postgres": pg}
    finally:
        for cleanup in reversed(cleanups):
            cleanup()


def long_tx(prometheus: localservers.Prometheus) -> list[str]:
    return [a["state"] for a in active_alerts(prometheus) if a["labels"]["alertname"] == "PostgresLongTransaction"]


def test_long_maintenance_stays_quiet_an_idle_open_transaction_fires(stack: dict[str, Any]) -> None:
    prometheus, pg, profile = stack["prometheus"], stack["postgres"], stack["profile"]
    with psycopg.connect(pg.dsn(), autocommit=True) as setup:
        setup.execute("CREATE TABLE filler AS SELECT g AS id, repeat('x', 200) AS pad FROM generate_series(1, 50000) g")
        setup.execute("DELETE FROM filler WHERE id % 2 = 0")

    # Healthy: a VACUUM that runs for minutes (cost-delayed, as autovacuum is), state `active`.
    vacuum = psycopg.connect(pg.dsn(), autocommit=True)
    worker = threading.Thread(target=lambda: _quietly(vacuum, "SET vacuum_cost_delay = '100ms'; "
                                                      "SET vacuum_cost_limit = 1; VACUUM filler"), daemon=True)
    worker.start()
    old_expr = (f'max by (namespace, instance, datname) (pg_stat_activity_max_tx_duration'
                f'{{namespace="{profile.namespace}"}}) > {TIMEOUT_S}')
    # the rule as it was (every state) holds on the VACUUM ...
    wait_for(lambda: query(prometheus, old_expr), "the VACUUM's transaction older than the threshold")
    # ... the rendered one does not, over several evaluations past its 1.2 s `for`
    for _ in range(5):
        assert long_tx(prometheus) == []
        time.sleep(1)
    with psycopg.connect(pg.dsn(), autocommit=True) as admin:
        admin.execute("SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query LIKE 'VACUUM%'")
    worker.join(10)
    vacuum.close()

    # Broken: the application keeps a transaction open, idle between statements shorter than the timeout.
    with psycopg.connect(pg.dsn()) as app:
        app.execute("SELECT 1")  # psycopg opens the transaction here
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and "firing" not in long_tx(prometheus):
            time.sleep(1)
            app.execute("SELECT 1")  # never idle for the whole 5 s timeout: PostgreSQL does not end it
        assert "firing" in long_tx(prometheus), active_alerts(prometheus)
        app.rollback()


def _quietly(connection: psycopg.Connection[Any], sql: str) -> None:
    try:
        for statement in sql.split("; "):
            connection.execute(statement)  # type: ignore[arg-type]
    except psycopg.Error:
        pass  # cancelled at the end of the healthy phase

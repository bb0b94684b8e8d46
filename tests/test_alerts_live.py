"""Live proof: a real Prometheus evaluates the rendered rules over real exporters scraping a real
PostgreSQL and Redis started from the rendered dev configs. Healthy: no alert even pending. Redis
stopped: RedisDown fires, seen through Prometheus's HTTP API.

The profile is dev with the `for` windows x 0.02 and a 1 s evaluation interval (profile key `alerts`),
so the test takes seconds; the expressions and thresholds are dev's own.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from generators import alerts, localservers
from generators.alerts.transform import group_name
from generators.loader import Source, deep_merge, load_source
from generators.profile import Profile
from generators.render import render
from generators.validation import profile_from_source

from .conftest import PROFILES, rules_of

NEEDED = ["prometheus", "prometheus-postgres-exporter", "prometheus-redis-exporter", "redis-server"]
pytestmark = pytest.mark.skipif(any(shutil.which(b) is None for b in NEEDED),
                                reason=f"needs {', '.join(NEEDED)} (scripts/test installs them)")
WAIT_S = 60  # upper bound for any state change; the windows themselves are 1-20 s


def live_profile() -> Profile:
    source = load_source(PROFILES / "dev.yaml")
    data = deep_merge(source.data, {"alerts": {"for_scale": 0.02, "evaluation_interval": "1s"}})
    return profile_from_source(Source(data=data, locations=source.locations, files=source.files), "dev")


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def wait_for(predicate: Callable[[], Any], what: str, timeout: float = WAIT_S) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except OSError:
            value = None
        if value:
            return value
        time.sleep(0.25)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")


def query(prometheus: localservers.Prometheus, expr: str) -> list[dict[str, Any]]:
    data = get(f"{prometheus.url}/api/v1/query?query={urllib.parse.quote(expr)}")
    return list(data["data"]["result"])


def active_alerts(prometheus: localservers.Prometheus) -> list[dict[str, Any]]:
    return list(get(f"{prometheus.url}/api/v1/alerts")["data"]["alerts"])


def start_exporter(args: list[str], port: int, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(args, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    wait_for(lambda: process.poll() is not None or localservers._port_open(port), f"{args[0]} on {port}", 20)
    assert process.poll() is None, f"{args[0]} exited with {process.returncode}"
    return process


stop = localservers.stop_process


@pytest.fixture
def stack() -> Iterator[dict[str, Any]]:
    profile = live_profile()
    bundle = render(profile)
    cleanups: list[Callable[[], None]] = []
    try:
        pg = localservers.start_postgres(bundle.files["postgres/postgresql.conf"])
        cleanups.append(pg.cleanup)
        rd = localservers.start_redis(bundle.files["redis/redis.conf"])
        cleanups.append(rd.cleanup)
        pg_port, redis_port = localservers.free_port(), localservers.free_port()
        pg_exporter = start_exporter(
            ["prometheus-postgres-exporter", f"--web.listen-address=127.0.0.1:{pg_port}"], pg_port,
            {"DATA_SOURCE_NAME": f"postgresql://postgres@127.0.0.1:{pg.port}/postgres?sslmode=disable"})
        cleanups.append(lambda: stop(pg_exporter))
        redis_exporter = start_exporter(
            ["prometheus-redis-exporter", f"--redis.addr=redis://127.0.0.1:{rd.port}",
             f"--web.listen-address=127.0.0.1:{redis_port}"], redis_port)
        cleanups.append(lambda: stop(redis_exporter))
        # What a ServiceMonitor gives each series: the namespace label the rules select on.
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": ["alerts.yaml"],
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": [f"127.0.0.1:{port}"],
                                                      "labels": {"namespace": profile.namespace}}]}
                for job, port in (("postgres-exporter", pg_port), ("redis-exporter", redis_port))],
        }
        prometheus = localservers.start_prometheus(json.dumps(config),
                                                   {"alerts.yaml": bundle.files[alerts.RULES_FILE]})
        cleanups.append(prometheus.cleanup)
        yield {"profile": profile, "prometheus": prometheus, "redis": rd, "postgres": pg}
    finally:
        for cleanup in reversed(cleanups):
            cleanup()


def test_quiet_while_healthy_then_redis_down_fires(stack: dict[str, Any]) -> None:
    prometheus: localservers.Prometheus = stack["prometheus"]
    profile: Profile = stack["profile"]

    # Healthy: both exporters reach their servers, and every rule has been evaluated since.
    wait_for(lambda: len(query(prometheus, "pg_up == 1 or redis_up == 1")) == 2, "pg_up and redis_up = 1")
    wait_for(lambda: query(prometheus, "count(rate(pg_stat_database_blks_hit[1m]))"), "two scrapes for rate()")
    before = {g["name"]: g.get("lastEvaluation") for g in get(f"{prometheus.url}/api/v1/rules")["data"]["groups"]}
    rules = wait_for(lambda: [g for g in get(f"{prometheus.url}/api/v1/rules")["data"]["groups"]
                              if g.get("lastEvaluation") != before.get(g["name"])], "rules evaluated on fresh data")
    rules = get(f"{prometheus.url}/api/v1/rules")["data"]["groups"]
    assert {g["name"] for g in rules} == {group_name(c) for c in rules_of(profile)}
    assert all(r["health"] == "ok" for g in rules for r in g["rules"]), [
        (r["name"], r.get("lastError")) for g in rules for r in g["rules"] if r["health"] != "ok"]
    # Several evaluations (1 s apart) with no alert in any state: no expression holds while healthy.
    for _ in range(4):
        assert active_alerts(prometheus) == []
        time.sleep(1)

    # Redis goes away: the exporter reports redis_up 0, RedisDown goes pending, then firing.
    stack["redis"].stop()
    firing = wait_for(lambda: [a for a in active_alerts(prometheus)
                               if a["labels"]["alertname"] == "RedisDown" and a["state"] == "firing"],
                      "RedisDown firing")
    labels = firing[0]["labels"]
    assert labels["severity"] == "critical"
    assert labels["environment"] == profile.environment
    assert labels["namespace"] == profile.namespace
    assert firing[0]["annotations"]["runbook_url"].endswith("#redisdown")
    # Nothing else broke: PostgreSQL's alerts stay quiet.
    others = [a["labels"]["alertname"] for a in active_alerts(prometheus) if a["labels"]["component"] != "redis"]
    assert others == []


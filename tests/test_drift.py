"""perfstack drift against real servers started from the rendered dev profile (generators/localservers.py):
PostgreSQL, PgBouncer, Redis and Prometheus on free loopback ports. The Kubernetes comparison runs the real
kubernetes client against recorded API responses (tests/fixtures/kubernetes/), since no cluster runs here.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import re
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis as redis_py
from ruamel.yaml import YAML

from generators import localservers as ls
from generators import units
from generators.bundle import Bundle
from generators.drift import Endpoints, detect, format_text
from generators.drift import kubernetes as kube
from generators.drift import postgres as pg_drift
from generators.drift import prometheus as prom_drift
from generators.drift import redis as redis_drift
from generators.drift.report import CHANGED, EXTRA, MISSING, PENDING_RESTART, DriftReport
from generators.render import render

from .conftest import PROFILES, local_pgbouncer_profile, rendered_bundle, run_cli

RULES_FILE = "prometheus/alerts.yaml"
FIXTURES = Path(__file__).parent / "fixtures" / "kubernetes"
RO_ROLE = "perfstack_ro"  # pg_read_all_settings, default_transaction_read_only, may read pg_file_settings
MIN_ROLE = "perfstack_min"  # pg_read_all_settings only
PROMETHEUS_CONFIG = "global:\n  evaluation_interval: 1m\nrule_files:\n  - alerts.yaml\n"

# Used only while the alerts generator renders no prometheus/alerts.yaml into the bundle.
TEST_RULES = """\
groups:
  - name: perfstack.postgres
    rules:
      - alert: PostgresDown
        expr: pg_up == 0
        for: 1m
        labels: {severity: critical}
      - alert: PostgresConnectionsHigh
        expr: sum(pg_stat_activity_count) by (instance) / max(pg_settings_max_connections) by (instance) > 0.80
        for: 5m
        labels: {severity: warning}
  - name: perfstack.redis
    rules:
      - alert: RedisMemoryHigh
        expr: redis_memory_used_bytes / redis_memory_max_bytes > 0.9
        for: 10m
        labels: {severity: warning}
"""


def bundle_with_rules() -> Bundle:
    """The dev bundle, rendered for the PgBouncer installed here (its version's settings); with the test's own rule
    file while the profile renders none."""
    bundle = render(local_pgbouncer_profile("dev"))
    if RULES_FILE in bundle.files:
        return bundle
    return dataclasses.replace(bundle, files={**bundle.files, RULES_FILE: TEST_RULES})


@pytest.fixture(scope="module")
def local_profiles(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example profiles with dev's pgbouncer.version pinned to the PgBouncer installed here (the live side of
    these tests): `perfstack drift dev` then expects exactly what that PgBouncer can hold."""
    folder = tmp_path_factory.mktemp("profiles")
    for path in (PROFILES / "base.yaml", PROFILES / "dev.yaml"):
        (folder / path.name).write_text(path.read_text())
    dev = folder / "dev.yaml"
    text, count = re.subn(r"\npgbouncer:\n", f'\npgbouncer:\n  version: "{ls.pgbouncer_version()}"\n', dev.read_text())
    assert count == 1
    dev.write_text(text)
    return folder


def differences(report: DriftReport, target: str) -> set[tuple[str, str, str | None, str | None]]:
    return {(d.key, d.kind, d.expected, d.actual) for d in report.target(target).differences}


def sha(data: bytes | str) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


# ---------------------------------------------------------------- servers
def make_roles(server: ls.Postgres, roles_sql: str) -> None:
    """The drift roles, and the application's role with roles.sql's per-role timeouts applied."""
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        conn.execute("CREATE ROLE app LOGIN")
        for line in roles_sql.splitlines():
            if line.startswith("ALTER ROLE"):
                conn.execute(line.split("  -- ")[0])  # type: ignore[call-overload]  # rendered SQL
        for role in (RO_ROLE, MIN_ROLE):
            conn.execute(f"CREATE ROLE {role} LOGIN IN ROLE pg_read_all_settings")
            conn.execute(f"ALTER ROLE {role} SET default_transaction_read_only = on")
        conn.execute(f"GRANT SELECT ON pg_catalog.pg_file_settings TO {RO_ROLE}")
        conn.execute(f"GRANT EXECUTE ON FUNCTION pg_catalog.pg_show_all_file_settings() TO {RO_ROLE}")


def alert_rules(text: str) -> list[tuple[str, str, str]]:
    """(group, alert, expr) of every alert whose name is unique in its group."""
    data = YAML(typ="safe", pure=True).load(text)
    out = []
    for group in data["groups"]:
        names = [r.get("alert") for r in group["rules"]]
        out += [(group["name"], r["alert"], str(r["expr"])) for r in group["rules"]
                if "alert" in r and names.count(r["alert"]) == 1]
    return out


THRESHOLD = re.compile(r"(>|<|>=|<=)\s*(\d+(?:\.\d+)?)\s*$")


def edited_rules(text: str) -> tuple[str, tuple[str, str, str, str], tuple[str, str, str]]:
    """The rule file with one alert's threshold changed and another alert removed; what was done."""
    candidates = alert_rules(text)
    edit = next(c for c in candidates if THRESHOLD.search(c[2].strip()))
    drop = next(c for c in candidates if c[:2] != edit[:2])
    old = THRESHOLD.search(edit[2].strip())[2]  # type: ignore[index]
    new = f"{float(old) * 2 if float(old) else 1:g}"
    yaml = YAML(typ="safe", pure=True)
    data = yaml.load(text)
    for group in data["groups"]:
        kept = []
        for rule in group["rules"]:
            if (group["name"], rule.get("alert")) == drop[:2]:
                continue
            if (group["name"], rule.get("alert")) == edit[:2]:
                rule["expr"] = THRESHOLD.sub(lambda m: f"{m[1]} {new}", str(rule["expr"]).strip())
            kept.append(rule)
        group["rules"] = kept
    stream = io.StringIO()
    yaml.dump(data, stream)
    return stream.getvalue(), (edit[0], edit[1], f"{float(old):g}", new), drop


@dataclasses.dataclass
class Stack:
    bundle: Bundle
    postgres: ls.Postgres
    pgbouncer: ls.PgBouncer
    redis: ls.Redis
    prometheus: ls.Prometheus
    pgbouncer_bigger_pool: ls.PgBouncer
    prometheus_edited: ls.Prometheus
    pool_size: str
    threshold_edit: tuple[str, str, str, str]
    dropped_rule: tuple[str, str, str]

    def endpoints(self, **changes: Any) -> Endpoints:
        base = Endpoints(postgres=self.postgres.dsn(user=RO_ROLE), pgbouncer=self.pgbouncer.admin_dsn(user=RO_ROLE),
                         redis=self.redis.url, prometheus=self.prometheus.url)
        return dataclasses.replace(base, **changes)


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    bundle = bundle_with_rules()
    started: list[Any] = []
    bouncers: list[ls.PgBouncer] = []
    try:
        postgres = ls.start_postgres(bundle.files["postgres/postgresql.conf"])
        started.append(postgres)
        make_roles(postgres, bundle.files["postgres/roles.sql"])
        pgbouncer = ls.start_pgbouncer(bundle.files["pgbouncer/pgbouncer.ini"], postgres)
        bouncers.append(pgbouncer)
        pool_size = bundle.target_settings("pgbouncer")["default_pool_size"].text
        bigger = ls.rewrite_ini(bundle.files["pgbouncer/pgbouncer.ini"], {"default_pool_size": str(int(pool_size) + 10)})
        pgbouncer_bigger_pool = ls.start_pgbouncer(bigger, postgres)
        bouncers.append(pgbouncer_bigger_pool)
        redis = ls.start_redis(bundle.files["redis/redis.conf"])
        started.append(redis)
        prometheus = ls.start_prometheus(PROMETHEUS_CONFIG, {"alerts.yaml": bundle.files[RULES_FILE]})
        started.append(prometheus)
        edited, threshold_edit, dropped = edited_rules(bundle.files[RULES_FILE])
        prometheus_edited = ls.start_prometheus(PROMETHEUS_CONFIG, {"alerts.yaml": edited})
        started.append(prometheus_edited)
        yield Stack(bundle, postgres, pgbouncer, redis, prometheus, pgbouncer_bigger_pool, prometheus_edited,
                    pool_size, threshold_edit, dropped)
    finally:
        for bouncer in bouncers:
            bouncer.cleanup()
        for server in reversed(started):
            server.cleanup()


def config_state(stack: Stack, postgres: ls.Postgres, redis: ls.Redis) -> dict[str, str]:
    """Digests of every configuration drift could touch: files on disk and what the servers report."""
    state = {f"postgres:{name}": sha((postgres.data_dir / name).read_bytes())
             for name in ("postgresql.auto.conf", "postgresql.conf", "perfstack.conf")}
    with psycopg.connect(postgres.dsn(), autocommit=True) as conn:
        rows = conn.execute("SELECT name, setting, source, pending_restart FROM pg_settings ORDER BY name").fetchall()
    state["postgres:pg_settings"] = sha(repr(rows))
    state["pgbouncer:ini"] = sha(stack.pgbouncer.ini_path.read_bytes())
    with psycopg.connect(stack.pgbouncer.admin_dsn(), autocommit=True, prepare_threshold=None) as conn:
        state["pgbouncer:show config"] = sha(repr(conn.execute("SHOW CONFIG").fetchall()))
    client = redis_py.Redis.from_url(redis.url, decode_responses=True)
    state["redis:config get *"] = sha(json.dumps(client.config_get("*"), sort_keys=True))
    client.close()
    state["redis:redis.conf"] = sha(redis.conf_path.read_bytes())
    state["prometheus:alerts.yaml"] = sha((stack.prometheus.workdir / "alerts.yaml").read_bytes())
    return state


# ---------------------------------------------------------------- no drift, and drift only reads
def test_the_drift_role_is_read_only(stack: Stack) -> None:
    with psycopg.connect(stack.postgres.dsn(user=RO_ROLE), autocommit=True) as conn:
        assert conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone() == (False,)
        assert conn.execute("SHOW default_transaction_read_only").fetchone() == ("on",)
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("CREATE TABLE drift_probe (x int)")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT pg_reload_conf()")


def test_no_drift_at_first_and_a_drift_run_changes_nothing(stack: Stack, local_profiles: Path) -> None:
    before = config_state(stack, stack.postgres, stack.redis)
    report = detect(stack.bundle, stack.endpoints())
    assert report.exit_code == 0, format_text(report)
    assert [t.status for t in report.targets] == ["ok"] * 4
    assert report.target("postgres").checked == len(stack.bundle.target_settings("postgres"))
    assert report.target("redis").checked >= 7
    assert report.target("prometheus").checked == len(prom_drift.expected_rules(stack.bundle.files[RULES_FILE]))
    assert report.target("pgbouncer").checked > len(stack.bundle.target_settings("pgbouncer")) // 2

    result = run_cli("--profiles-dir", local_profiles, "drift", "dev", "--postgres", stack.postgres.dsn(user=RO_ROLE),
                     "--pgbouncer", stack.pgbouncer.admin_dsn(user=RO_ROLE), "--redis", stack.redis.url,
                     "--prometheus", stack.prometheus.url, "--format", "json")
    document = json.loads(result.stdout)
    assert result.exit_code == 0, result.stdout
    assert document["schema"] == "perfstack.drift/v1" and document["exit_code"] == 0
    assert [t["target"] for t in document["targets"]] == ["postgres", "pgbouncer", "redis", "prometheus"]
    assert config_state(stack, stack.postgres, stack.redis) == before


# ---------------------------------------------------------------- every kind of drift, reported exactly
@pytest.fixture
def changed_servers(stack: Stack) -> Iterator[tuple[ls.Postgres, ls.Redis]]:
    """A PostgreSQL and a Redis of their own, changed by hand after they started from the rendered files."""
    postgres = ls.start_postgres(stack.bundle.files["postgres/postgresql.conf"])
    redis = None
    try:
        make_roles(postgres, stack.bundle.files["postgres/roles.sql"])
        redis = ls.start_redis(stack.bundle.files["redis/redis.conf"])
        yield postgres, redis
    finally:
        if redis:
            redis.cleanup()
        postgres.cleanup()


def wait_for(conn: psycopg.Connection[Any], query: str, expected: Any) -> None:
    deadline = time.monotonic() + 10
    while conn.execute(query).fetchone() != expected:
        assert time.monotonic() < deadline, f"{query} never gave {expected}"
        time.sleep(0.05)


def test_each_change_is_reported_exactly(stack: Stack, changed_servers: tuple[ls.Postgres, ls.Redis],
                                         local_profiles: Path) -> None:
    postgres, redis = changed_servers
    settings = stack.bundle.target_settings("postgres")
    shared_buffers = units.format_size_pg(settings["shared_buffers"].value * 2)
    with psycopg.connect(postgres.dsn(), autocommit=True) as conn:
        conn.execute("ALTER SYSTEM SET work_mem = '64MB'")
        conn.execute(f"ALTER SYSTEM SET shared_buffers = '{shared_buffers}'")
        conn.execute("ALTER ROLE app SET lock_timeout = '5s'")  # a per-role setting (roles.sql) changed by hand
        conn.execute("SELECT pg_reload_conf()")
        wait_for(conn, "SELECT setting, pending_restart FROM pg_settings WHERE name = 'work_mem'", ("65536", False))
        wait_for(conn, "SELECT pending_restart FROM pg_settings WHERE name = 'shared_buffers'", (True,))
    client = redis_py.Redis.from_url(redis.url)
    client.config_set("maxmemory", "512mb")
    client.close()
    endpoints = stack.endpoints(postgres=postgres.dsn(user=RO_ROLE), redis=redis.url,
                                pgbouncer=stack.pgbouncer_bigger_pool.admin_dsn(user=RO_ROLE),
                                prometheus=stack.prometheus_edited.url)
    before = config_state(stack, postgres, redis)

    report = detect(stack.bundle, endpoints)

    assert report.exit_code == 1, format_text(report)
    assert differences(report, "postgres") == {
        ("work_mem", CHANGED, settings["work_mem"].text, "64MB"),
        ("shared_buffers", PENDING_RESTART, settings["shared_buffers"].text, shared_buffers),
        ("lock_timeout (role app)", CHANGED, settings["lock_timeout"].text, "5s"),
    }
    work_mem = next(d for d in report.target("postgres").differences if d.key == "work_mem")
    assert work_mem.source and re.search(r"postgresql\.auto\.conf:\d+$", work_mem.source)
    pool = stack.pool_size
    assert differences(report, "pgbouncer") == {
        ("default_pool_size", CHANGED, pool, str(int(pool) + 10)),
        ("databases.app.pool_size", CHANGED, pool, str(int(pool) + 10)),
    }
    assert differences(report, "redis") == {
        ("maxmemory", CHANGED, stack.bundle.target_settings("redis")["maxmemory"].text, "512mb"),
    }
    group, alert, old, new = stack.threshold_edit
    dropped_group, dropped_alert, dropped_expr = stack.dropped_rule
    assert differences(report, "prometheus") == {
        (f"{group}/{alert}.threshold", CHANGED, old, new),
        (f"{dropped_group}/{dropped_alert}", MISSING, " ".join(dropped_expr.split()), None),
    }
    assert config_state(stack, postgres, redis) == before

    # Without the grant on pg_file_settings the pending restart is still reported, with what is not known.
    limited = detect(stack.bundle, Endpoints(postgres=postgres.dsn(user=MIN_ROLE)))
    pending = [d for d in limited.target("postgres").differences if d.key == "shared_buffers"]
    assert [(d.kind, d.actual) for d in pending] == [(PENDING_RESTART, None)]
    assert "pg_file_settings" in (pending[0].note or "")

    # The command: the same differences in the JSON document, exit 1; and in the text.
    result = run_cli("--profiles-dir", local_profiles, "drift", "dev", "--postgres", postgres.dsn(user=RO_ROLE),
                     "--pgbouncer", stack.pgbouncer_bigger_pool.admin_dsn(user=RO_ROLE), "--redis", redis.url,
                     "--format", "json")
    assert result.exit_code == 1, result.stdout
    document = json.loads(result.stdout)
    assert (document["schema"], document["status"], document["exit_code"]) == ("perfstack.drift/v1", "drift", 1)
    assert all(set(t) == {"target", "endpoint", "status", "checked", "error", "notes", "differences"}
               and all(set(d) == {"key", "kind", "expected", "actual", "source", "note"} for d in t["differences"])
               for t in document["targets"])
    assert {t["target"]: {(d["key"], d["kind"], d["expected"], d["actual"]) for d in t["differences"]}
            for t in document["targets"]} == {name: differences(report, name)
                                              for name in ("postgres", "pgbouncer", "redis")}
    text = run_cli("drift", "dev", "--redis", redis.url).stdout
    assert f"maxmemory: expected {stack.bundle.target_settings('redis')['maxmemory'].text}, actual 512mb" in text


def test_an_unreachable_redis_exits_2_and_the_others_are_still_reported(stack: Stack) -> None:
    endpoints = stack.endpoints(redis=f"redis://127.0.0.1:{ls.free_port()}/0")
    report = detect(stack.bundle, endpoints)
    assert report.exit_code == 2
    statuses = {t.target: t.status for t in report.targets}
    assert statuses == {"postgres": "ok", "pgbouncer": "ok", "redis": "error", "prometheus": "ok"}
    assert "connecting" in (report.target("redis").error or "").lower()
    assert all(report.target(name).checked > 0 for name in ("postgres", "pgbouncer", "prometheus"))

    result = run_cli("drift", "dev", "--postgres", stack.postgres.dsn(user=RO_ROLE), "--redis", str(endpoints.redis))
    assert result.exit_code == 2
    assert "redis (redis://127.0.0.1:" in result.stdout and "ERROR" in result.stdout
    assert re.search(r"^postgres \(.*\): ok, \d+ checked$", result.stdout, re.M)


def test_a_profile_whose_rules_differ_gets_extra_rules_and_label_changes(stack: Stack) -> None:
    """The same live Prometheus, against a profile with one rule fewer and one label more."""
    yaml = YAML(typ="safe", pure=True)
    data = yaml.load(stack.bundle.files[RULES_FILE])
    group = next(g for g in data["groups"] if len(g["rules"]) >= 2)
    first, removed = group["rules"][0], group["rules"].pop()
    first.setdefault("labels", {})["team"] = "db"
    stream = io.StringIO()
    yaml.dump(data, stream)
    bundle = dataclasses.replace(stack.bundle, files={**stack.bundle.files, RULES_FILE: stream.getvalue()})
    with urllib.request.urlopen(f"{stack.prometheus.url}/api/v1/rules", timeout=5) as response:
        live = json.loads(response.read())["data"]["groups"]
    removed_name = removed.get("alert") or removed.get("record")
    live_query = next(r["query"] for g in live if g["name"] == group["name"] for r in g["rules"]
                      if r["name"] == removed_name)

    report = detect(bundle, Endpoints(prometheus=stack.prometheus.url))

    assert report.exit_code == 1
    assert differences(report, "prometheus") == {
        (f"{group['name']}/{first.get('alert') or first.get('record')}.labels.team", MISSING, "db", None),
        (f"{group['name']}/{removed_name}", EXTRA, None, " ".join(live_query.split())),
    }


def test_a_bundle_without_rules_skips_prometheus_with_a_note(stack: Stack) -> None:
    files = {k: v for k, v in stack.bundle.files.items() if k != RULES_FILE}
    report = detect(dataclasses.replace(stack.bundle, files=files), Endpoints(prometheus=stack.prometheus.url))
    assert report.exit_code == 0
    assert report.target("prometheus").status == "skipped"
    assert RULES_FILE in report.target("prometheus").notes[0]


# ---------------------------------------------------------------- units and values
def test_postgres_units_are_normalized_to_the_servers_unit() -> None:
    # 4GB = 4 * 1024 * 1024 kB = 4194304 kB; / 8 kB per block = 524288 blocks
    assert pg_drift.to_server_units("4GB", "8kB") == 524288
    assert pg_drift.display(524288, "8kB") == "4GB"
    assert pg_drift.to_server_units("16MB", "8kB") == 2048  # wal_buffers: 16384 kB / 8
    assert pg_drift.to_server_units("30s", "ms") == 30000
    assert pg_drift.to_server_units("1min", "s") == 60
    assert pg_drift.to_server_units("1h", "min") == 60
    assert pg_drift.to_server_units("4GB", "MB") == 4096  # max_wal_size's unit
    assert pg_drift.display(60000, "ms") == "1min"
    row = pg_drift.LiveSetting("shared_buffers", "524288", "8kB", "integer", "configuration file", None, None, False)
    assert pg_drift.values_equal("4GB", row)
    assert not pg_drift.values_equal("2GB", row)
    flag = pg_drift.LiveSetting("jit", "off", None, "bool", "default", None, None, False)
    assert pg_drift.values_equal("false", flag) and not pg_drift.values_equal("on", flag)


def test_redis_memory_units_are_redis_own() -> None:
    assert redis_drift.memory_bytes("768mb") == 805306368  # 768 * 1024 * 1024
    assert redis_drift.memory_bytes("1k") == 1000 and redis_drift.memory_bytes("1KB") == 1024
    assert redis_drift.same("768mb", "805306368") and not redis_drift.same("768mb", "805306367")
    assert redis_drift.same('""', "")
    assert redis_drift.shown("768mb", "536870912") == "512mb"


def test_threshold_changes_are_told_apart_from_expression_changes() -> None:
    assert prom_drift.threshold_change("rate(x[5m]) > 0.8", "rate(x[5m]) > 0.95") == ("0.8", "0.95")
    assert prom_drift.threshold_change("rate(x[5m]) > 0.8", "rate(x[10m]) > 0.8") is None
    assert prom_drift.threshold_change("x > 0.80", "x > 0.8") is None


def test_secrets_never_reach_the_report() -> None:
    assert "s3cret" not in pg_drift.redact("host=db port=5432 user=drift password=s3cret dbname=postgres")
    assert "s3cret" not in pg_drift.redact("postgresql://drift:s3cret@db:5432/postgres")
    assert redis_drift.redact("redis://:s3cret@cache:6379/0") == "redis://:***@cache:6379/0"
    assert prom_drift.redact("http://admin:s3cret@prom:9090") == "http://admin:***@prom:9090"


# ---------------------------------------------------------------- Kubernetes, from recorded responses
class Replay:
    """A loopback HTTP server answering recorded Kubernetes API exchanges; it logs every request."""

    def __init__(self, exchanges: dict[str, tuple[int, Any]]):
        self.exchanges = exchanges
        self.requests: list[tuple[str, str]] = []
        replay = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                self._answer()

            def do_PATCH(self) -> None:  # noqa: N802
                self._answer()

            do_PUT = do_POST = do_DELETE = do_PATCH  # noqa: N815

            def _answer(self) -> None:
                replay.requests.append((self.command, self.path))
                path = self.path.split("?", 1)[0]
                status, body = replay.exchanges.get(path, (404, {"kind": "Status", "apiVersion": "v1",
                                                                   "status": "Failure", "reason": "NotFound",
                                                                   "code": 404, "metadata": {}}))
                if self.command != "GET":
                    status, body = 405, {"kind": "Status", "code": 405, "reason": "MethodNotAllowed"}
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def api_client(self) -> Any:
        from kubernetes import client

        configuration = client.Configuration()
        configuration.host = f"http://127.0.0.1:{self.server.server_address[1]}"
        return client.ApiClient(configuration)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def recorded() -> dict[str, tuple[int, Any]]:
    exchanges = {}
    for path in sorted(FIXTURES.glob("get-*.json")):
        item = json.loads(path.read_text())
        assert item["request"]["method"] == "GET"
        exchanges[item["request"]["path"]] = (item["response"]["status"], item["response"]["body"])
    return exchanges


def test_kubernetes_drift_from_recorded_api_responses() -> None:
    """Recorded API responses, not a cluster: no cluster runs here. The responses (tests/fixtures/kubernetes/,
    see its README) have the API server's shapes: managedFields, defaults, status, a 404 Status. The real
    kubernetes client fetches them from a loopback replay server; only fields perfstack sets are compared."""
    objects = json.loads((FIXTURES / "rendered.json").read_text())
    replay = Replay(recorded())
    api = replay.api_client()
    try:
        report = kube.check(objects, api)
    finally:
        api.close()
        replay.close()
    ns = "ai-platform-dev"
    rule_path = "spec.groups[name=perfstack.postgres].rules[alert=PostgresConnectionsHigh].expr"
    expr = "sum by (instance) (pg_stat_activity_count) / max by (instance) (pg_settings_max_connections)"
    assert {(d.key, d.kind, d.expected, d.actual) for d in report.differences} == {
        (f"HorizontalPodAutoscaler/{ns}/api:spec.maxReplicas", CHANGED, "4", "8"),
        (f"HorizontalPodAutoscaler/{ns}/llm", MISSING, "rendered object", None),
        (f"ConfigMap/{ns}/api-performance:data.DB_POOL_SIZE", CHANGED, "20", "40"),
        (f"ConfigMap/{ns}/api-performance:data.DEBUG_SQL", EXTRA, None, "true"),
        (f"PrometheusRule/{ns}/perfstack-alerts:{rule_path}", CHANGED, f"{expr} > 0.8", f"{expr} > 0.95"),
    }
    assert report.checked == 5 and report.status == "drift"
    assert {method for method, _ in replay.requests} == {"GET"}  # drift only reads
    assert len(replay.requests) == 5


def serve_back(obj: dict[str, Any], uid: int) -> dict[str, Any]:
    """An object as an API server returns it after an apply: server metadata, defaults, status added."""
    live = json.loads(json.dumps(obj))
    live["metadata"].update({"uid": f"00000000-0000-0000-0000-{uid:012d}", "resourceVersion": str(1000 + uid),
                             "creationTimestamp": "2026-11-20T09:14:02Z", "generation": 1,
                             "managedFields": [{"manager": "pulumi-kubernetes", "operation": "Apply",
                                                "apiVersion": obj["apiVersion"], "fieldsType": "FieldsV1",
                                                "fieldsV1": {}}]})
    live["metadata"].setdefault("annotations", {})["deployment.kubernetes.io/revision"] = "1"
    live["metadata"]["labels"] = {**live["metadata"].get("labels", {}), "pod-template-hash": "6d9c8b7f5d"}
    spec = live.get("spec")
    if isinstance(spec, dict) and obj["kind"] == "Deployment":
        spec.update({"progressDeadlineSeconds": 600, "revisionHistoryLimit": 10})
        for container in spec["template"]["spec"].get("containers", []):
            container.setdefault("terminationMessagePath", "/dev/termination-log")
    live["status"] = {"observedGeneration": 1}
    return live


def test_kubernetes_objects_the_profile_renders_compare_clean_when_served_back() -> None:
    """Every object in the dev bundle, served back with what an API server adds (no cluster runs here):
    no drift; then one field perfstack sets is changed on the live side and exactly that is reported."""
    objects = [o for o in rendered_bundle("dev").objects if o["kind"] not in kube.NEVER_READ]
    assert objects, "the dev profile renders Kubernetes objects"
    exchanges = {kube.api_path(o): (200, serve_back(o, i)) for i, o in enumerate(objects)}
    replay = Replay(exchanges)
    api = replay.api_client()
    try:
        assert kube.check(objects, api).differences == []
        target = next(o for o in objects if o["kind"] in ("HorizontalPodAutoscaler", "Deployment", "ConfigMap"))
        live = exchanges[kube.api_path(target)][1]
        field = "maxReplicas" if target["kind"] == "HorizontalPodAutoscaler" else None
        if field:
            live["spec"][field] = target["spec"][field] + 1
            key, expected, actual = f"spec.{field}", str(target["spec"][field]), str(target["spec"][field] + 1)
        elif target["kind"] == "Deployment":
            live["spec"]["replicas"] = target["spec"]["replicas"] + 1
            key, expected, actual = "spec.replicas", str(target["spec"]["replicas"]), str(target["spec"]["replicas"] + 1)
        else:
            name = sorted(target["data"])[0]
            live["data"][name] = target["data"][name] + "-edited"
            key, expected, actual = f"data.{name}", target["data"][name], target["data"][name] + "-edited"
        report = kube.check(objects, api)
    finally:
        api.close()
        replay.close()
    assert [(d.key, d.kind, d.expected, d.actual) for d in report.differences] == [
        (f"{kube.object_id(target)}:{key}", CHANGED, expected, actual)]


def test_quantities_and_named_lists_compare_by_meaning() -> None:
    want = {"spec": {"containers": [{"name": "api", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}],
                     "args": ["--a", "--b"]}}
    have = {"spec": {"containers": [{"name": "sidecar"}, {"name": "api", "image": "x",
                                                          "resources": {"limits": {"cpu": "1000m",
                                                                                   "memory": "1073741824"}}}],
                     "args": ["--a", "--b", "--c"]}}
    assert kube.diff_fields(want, have, "", "Deployment") == [("spec.args", CHANGED, ["--a", "--b"], ["--a", "--b", "--c"])]


# ---------------------------------------------------------------- Pulumi and the command line
def test_pulumi_without_its_cli_is_a_clear_message_not_a_crash(stack: Stack, monkeypatch: pytest.MonkeyPatch,
                                                               tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no pulumi here
    result = run_cli("drift", "dev", "--pulumi-stack", "dev", "--redis", stack.redis.url)
    assert result.exit_code == 2
    assert "pulumi CLI is not on PATH" in result.stdout
    assert re.search(r"^redis \(.*\): ok, \d+ checked$", result.stdout, re.M)


def test_drift_without_a_live_system_is_a_usage_error() -> None:
    result = run_cli("drift", "dev")
    assert result.exit_code == 2 and "at least one live system" in result.stderr
    result = run_cli("drift", "dev", "--context", "prod-cluster", "--redis", "redis://127.0.0.1:1/0")
    assert result.exit_code == 2 and "--context needs --kubernetes" in result.stderr

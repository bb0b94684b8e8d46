"""Live proof: a real Prometheus evaluates the rendered rules over the real exporters perfstack deploys
(postgres_exporter, prometheus-community pgbouncer_exporter, redis_exporter), each started from its rendered
container (arguments and environment, secretKeyRefs resolved from a local Secret) against a real
PostgreSQL, PgBouncer and Redis started from the rendered configs. Prometheus scrapes what the rendered
ServiceMonitors select, under the job names they give (the Service's name). The app is the user's own: a
stand-in (tests/app_metrics_server.py) exports its metrics with prometheus_client at the profile's buckets and
serves a healthy workload, scraped under the job the rendered PodMonitor gives it (app.deployment).

Checked, for each component: every series its alerts read exists; the healthy workload keeps every alert
quiet (not even pending); killing its exporter fires its blindness alert (`up == 0`) and nothing else; and
the exporter's own /metrics holds every name generators/metrics.py lists for it, at the version listed.

The profile is dev with the `for` windows x 0.02, a 1 s evaluation interval, an external PostgreSQL (dev's
CloudNativePG instance manager cannot run here: its custom queries are run against the real server in
test_cnpg_custom_queries_produce_the_names_the_rules_read) and no LLM (nothing here serves one), so the test
takes seconds; the expressions and thresholds are dev's own.

pgbouncer_exporter is built by scripts/build-pgbouncer-exporter (scripts/test runs it); without it these
tests skip, except under CI=true, where they fail.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from generators import alerts, localservers, metrics, scrape
from generators.alerts.transform import group_name
from generators.k8s import USERNAME_KEY
from generators.loader import Source, deep_merge, load_source
from generators.objects import exporters
from generators.profile import Profile
from generators.render import render
from generators.validation import profile_from_source

from .conftest import PROFILES, rules_of
from .realcluster import TOOLS

PGBOUNCER_EXPORTER = Path(os.environ.get("PERFSTACK_PGBOUNCER_EXPORTER") or TOOLS / "bin" / "pgbouncer_exporter")
NEEDED = ["prometheus", "prometheus-postgres-exporter", "prometheus-redis-exporter", "redis-server", "pgbouncer"]
MISSING = [b for b in NEEDED if shutil.which(b) is None] + ([] if PGBOUNCER_EXPORTER.exists() else [str(PGBOUNCER_EXPORTER)])
if MISSING and os.environ.get("CI") == "true":
    raise RuntimeError(f"CI=true and missing {', '.join(MISSING)}: scripts/test installs and builds them")
pytestmark = [pytest.mark.skipif(bool(MISSING), reason=f"needs {', '.join(MISSING)} (scripts/test installs them; "
                                 "scripts/build-pgbouncer-exporter builds pgbouncer_exporter)"),
              pytest.mark.xdist_group("alerts_live")]  # one stack, its tests in order (healthy first)
WAIT_S = 60  # upper bound for any state change; the windows themselves are 1-20 s
# The rendered image -> the binary of the same exporter here (Debian's builds, or the one built at its pin).
BINARIES = {metrics.POSTGRES.image: "prometheus-postgres-exporter", metrics.PGBOUNCER.image: str(PGBOUNCER_EXPORTER),
            metrics.REDIS.image: "prometheus-redis-exporter"}
PASSWORD = "s3cret-from-the-secret"
APP = "api"  # dev's app.deployment: the PodMonitor's job, and the stand-in app's name here
APP_SERVER = Path(__file__).with_name("app_metrics_server.py")


def live_profile() -> Profile:
    source = load_source(PROFILES / "dev.yaml")
    data = deep_merge(source.data, {"alerts": {"for_scale": 0.02, "evaluation_interval": "1s"},
                                    "kubernetes": {"postgres": "external"},
                                    # an external server needs its host; the test points the exporter at the local one
                                    "pgbouncer": {"server_host": "postgres.dev.example.internal",
                                                  # the PgBouncer installed here reads only its own settings
                                                  "version": localservers.pgbouncer_version()}})
    data["llm"] = None
    data["workers"] = None  # celery-exporter does not run on this machine (its names: metrics.CELERY, from source)
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


def firing(prometheus: localservers.Prometheus, name: str) -> list[dict[str, Any]]:
    return [a for a in active_alerts(prometheus) if a["labels"]["alertname"] == name and a["state"] == "firing"]


stop = localservers.stop_process


# ---------------------------------------------------------------- the rendered objects, run here
def find(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, (kind, name)
    return found[0]


def exporter_container(objects: list[dict[str, Any]], name: str) -> dict[str, Any]:
    """The exporter's container as rendered: in its own Deployment, or a sidecar of another's pods."""
    for obj in objects:
        if obj["kind"] == "Deployment":
            for container in obj["spec"]["template"]["spec"]["containers"]:
                if container["name"] == name:
                    return dict(container)
    raise AssertionError(f"no rendered container {name}")


def resolve_env(container: dict[str, Any], secrets: dict[str, dict[str, str]]) -> dict[str, str]:
    """The container's environment as the kubelet builds it: values, and secretKeyRefs read from `secrets`."""
    env: dict[str, str] = {}
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
        else:
            ref = item["valueFrom"]["secretKeyRef"]
            env[item["name"]] = secrets[ref["name"]][ref["key"]]
    return env


def start_exporter(container: dict[str, Any], secrets: dict[str, dict[str, str]],
                   local: Callable[[str, str], str]) -> Exporter:
    """Run the rendered container's exporter on a free loopback port; `local(name, value)` points an
    environment value at the local server (the cluster's Service names do not resolve here)."""
    port = localservers.free_port()
    args = [re.sub(r"^--web\.listen-address=.*", f"--web.listen-address=127.0.0.1:{port}", a)
            for a in container.get("args", [])]
    env = {name: local(name, value) for name, value in resolve_env(container, secrets).items()}
    if "REDIS_EXPORTER_WEB_LISTEN_ADDRESS" in env:
        env["REDIS_EXPORTER_WEB_LISTEN_ADDRESS"] = f"127.0.0.1:{port}"
    exporter = Exporter([BINARIES[container["image"]], *args], {**os.environ, **env}, port)
    exporter.start()
    return exporter


class Exporter:
    def __init__(self, argv: list[str], env: dict[str, str], port: int) -> None:
        self.argv, self.env, self.port = argv, env, port
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        process = subprocess.Popen(self.argv, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.process = process
        wait_for(lambda: process.poll() is not None or localservers._port_open(self.port),
                 f"{self.argv[0]} on {self.port}", 20)
        assert process.poll() is None, f"{self.argv[0]} exited with {process.returncode}"

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)


def scrape_jobs(profile: Profile, objects: list[dict[str, Any]]) -> dict[str, str]:
    """Monitor name -> the job it gives its targets: a ServiceMonitor's is the name of the Service its selector
    matches; a PodMonitor's, the job its relabelling writes."""
    jobs = {}
    for monitor in (o for o in objects if o["kind"] == "PodMonitor"):
        assert monitor["metadata"]["labels"]["release"] == profile.monitoring.release
        (job,) = [r["replacement"] for r in monitor["spec"]["podMetricsEndpoints"][0]["relabelings"]
                  if r["targetLabel"] == "job"]
        jobs[monitor["metadata"]["name"]] = job
    for monitor in (o for o in objects if o["kind"] == "ServiceMonitor"):
        wanted = monitor["spec"]["selector"]["matchLabels"]
        services = [o["metadata"]["name"] for o in objects if o["kind"] == "Service"
                    and wanted.items() <= o["metadata"]["labels"].items()]
        assert len(services) == 1, (monitor["metadata"]["name"], services)
        assert monitor["metadata"]["labels"]["release"] == profile.monitoring.release
        jobs[monitor["metadata"]["name"]] = services[0]
    return jobs


@pytest.fixture(scope="module")
def stack() -> Iterator[dict[str, Any]]:
    profile = live_profile()
    bundle = render(profile)
    objects = bundle.objects
    cleanups: list[Callable[[], None]] = []
    try:
        pg = localservers.start_postgres(bundle.files["postgres/postgresql.conf"])
        cleanups.append(pg.cleanup)
        database = profile.pgbouncer.databases[0]
        with psycopg.connect(pg.dsn(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{database}"')
        pgb = localservers.start_pgbouncer(bundle.files["pgbouncer/pgbouncer.ini"], pg)
        cleanups.append(pgb.cleanup)
        # Redis's password comes from its Secret on the command line (--requirepass), as the pod runs it.
        rd = localservers.start_redis(bundle.files["redis/redis.conf"] + f"\nrequirepass {PASSWORD}\n")
        cleanups.append(rd.cleanup)
        # The Secrets the Pulumi program creates, with the local servers' role (trust auth: any password).
        secrets = {profile.secrets.postgres_password.secret: {USERNAME_KEY: "postgres",
                                                              profile.secrets.postgres_password.key: PASSWORD},
                   profile.secrets.redis_password.secret: {profile.secrets.redis_password.key: PASSWORD}}

        def local(name: str, value: str) -> str:
            if name == "DATA_SOURCE_URI":  # the local server has no TLS
                host = f"{profile.pgbouncer.server_host}:{profile.pgbouncer.server_port}"
                return value.replace(host, f"127.0.0.1:{pg.port}").replace("sslmode=require", "sslmode=disable")
            if name == "PGBOUNCER_EXPORTER_CONNECTION_STRING":
                return value.replace(f"port={profile.pgbouncer.listen_port}", f"port={pgb.port}")
            if name == "REDIS_ADDR":
                return value.replace(f"redis:{profile.redis.port}", f"127.0.0.1:{rd.port}")
            return value

        running: dict[str, Exporter] = {}
        for name in (scrape.POSTGRES_EXPORTER, scrape.PGBOUNCER_EXPORTER, scrape.REDIS_EXPORTER):
            running[name] = start_exporter(exporter_container(objects, name), secrets, local)
            cleanups.append(running[name].stop)
        # The app is the user's: a stand-in exporting its metrics with prometheus_client at the declared buckets.
        assert profile.app.deployment == APP
        buckets = json.dumps({name: [ms / 1000 for ms in bounds]  # the profile's ms, the metrics' seconds
                              for name, bounds in profile.app.latency_buckets.model_dump().items()})
        running[APP] = Exporter([sys.executable, str(APP_SERVER), str(port := localservers.free_port()), buckets],
                                dict(os.environ), port)
        running[APP].start()
        cleanups.append(running[APP].stop)
        jobs = scrape_jobs(profile, objects)
        assert set(jobs.values()) == set(running)
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": ["alerts.yaml"],
            # What a ServiceMonitor gives each series: its job and the namespace label the rules select on.
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": [f"127.0.0.1:{running[job].port}"],
                                                      "labels": {"namespace": profile.namespace}}]}
                for job in sorted(jobs.values())],
        }
        prometheus = localservers.start_prometheus(json.dumps(config),
                                                   {"alerts.yaml": bundle.files[alerts.RULES_FILE]})
        cleanups.append(prometheus.cleanup)
        # Healthy traffic through PgBouncer: a few transactions on the application database.
        with psycopg.connect(pgb.dsn(database), autocommit=True, prepare_threshold=None) as conn:
            for _ in range(5):
                conn.execute("SELECT 1")
        yield {"profile": profile, "prometheus": prometheus, "redis": rd, "postgres": pg, "pgbouncer": pgb,
               "exporters": running, "bundle": bundle}
    finally:
        for cleanup in reversed(cleanups):
            cleanup()


def metric_names_of(text: str) -> set[str]:
    return {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")}


def component_series(profile: Profile, component: str) -> set[str]:
    return {name for alert in rules_of(profile)[component] for name in metrics.metric_names(alert.expr)}


# ---------------------------------------------------------------- the tests (in order: healthy, then broken)
def test_every_listed_name_is_exported(stack: dict[str, Any]) -> None:
    """The VERIFIED table's claim, repeated: each pinned exporter's /metrics holds every name listed for it."""
    rd: localservers.Redis = stack["redis"]
    # redis_errors_total{err="OOM"} appears only after a refused write: cause one, then restore.
    cli = ["redis-cli", "-p", str(rd.port), "-a", PASSWORD, "--no-auth-warning"]
    subprocess.run([*cli, "CONFIG", "SET", "maxmemory-policy", "noeviction"], check=True, capture_output=True)
    subprocess.run([*cli, "CONFIG", "SET", "maxmemory", "1"], check=True, capture_output=True)
    refused = subprocess.run([*cli, "SET", "perfstack-proof", "x"], capture_output=True, text=True)
    assert "OOM" in refused.stdout + refused.stderr
    conf = rd.conf_path.read_text()
    for key in ("maxmemory", "maxmemory-policy"):
        value = re.search(rf"^{key}\s+(\S+)", conf, re.M)
        assert value, key
        subprocess.run([*cli, "CONFIG", "SET", key, value.group(1)], check=True, capture_output=True)
    for name, exporter, names in ((scrape.POSTGRES_EXPORTER, metrics.POSTGRES, metrics.POSTGRES_EXPORTER),
                                  (scrape.PGBOUNCER_EXPORTER, metrics.PGBOUNCER, metrics.PGBOUNCER_EXPORTER),
                                  (scrape.REDIS_EXPORTER, metrics.REDIS, metrics.REDIS_EXPORTER)):
        port = stack["exporters"][name].port
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
        exported = metric_names_of(text)
        assert names <= exported, (name, sorted(names - exported))
        build = re.search(r'_exporter_build_info\{[^}]*version="([^"]+)"', text)
        assert build and build.group(1).startswith(exporter.version), (name, build and build.group(1))
        assert all(metrics.VERIFIED[n].version == exporter.version for n in names)
    # The wrong names, absent from the pinned exporters.
    with urllib.request.urlopen(f"http://127.0.0.1:{stack['exporters'][scrape.POSTGRES_EXPORTER].port}/metrics") as r:
        pg_names = metric_names_of(r.read().decode())
    assert not {"pg_replication_lag_seconds", "pg_stat_user_tables_n_dead_tup"} & pg_names


def test_every_alerts_series_exists_and_the_healthy_stack_is_quiet(stack: dict[str, Any]) -> None:
    prometheus: localservers.Prometheus = stack["prometheus"]
    profile: Profile = stack["profile"]
    wait_for(lambda: len(query(prometheus, "pg_up == 1 or pgbouncer_up == 1 or redis_up == 1")) == 3,
             "pg_up, pgbouncer_up and redis_up = 1")
    wait_for(lambda: query(prometheus, "count(rate(pg_stat_database_blks_hit[1m]))"), "two scrapes for rate()")
    for component in ("postgres", "pgbouncer", "redis", "api"):
        exported = metrics.APP if component == "api" else metrics.ALL  # the API's kube_* series come from elsewhere
        for name in sorted(component_series(profile, component) & exported - metrics.APPEAR_ON_EVENT):
            found = query(prometheus, f'count({{__name__="{name}", namespace="{profile.namespace}"}})')
            assert found, f"{component}: {name} is read by an alert but not scraped"
    before = {g["name"]: g.get("lastEvaluation") for g in get(f"{prometheus.url}/api/v1/rules")["data"]["groups"]}
    wait_for(lambda: all(g.get("lastEvaluation") != before.get(g["name"])
                         for g in get(f"{prometheus.url}/api/v1/rules")["data"]["groups"]),
             "rules evaluated on fresh data")
    rules = get(f"{prometheus.url}/api/v1/rules")["data"]["groups"]
    assert {g["name"] for g in rules} == {group_name(c) for c in rules_of(profile)}
    assert all(r["health"] == "ok" for g in rules for r in g["rules"]), [
        (r["name"], r.get("lastError")) for g in rules for r in g["rules"] if r["health"] != "ok"]
    # Several evaluations (1 s apart) with no alert in any state: no expression holds while healthy,
    # the blindness alerts included (every target up, every series present).
    for _ in range(4):
        assert active_alerts(prometheus) == []
        time.sleep(1)


@pytest.mark.parametrize("target,alert", [(scrape.POSTGRES_EXPORTER, "PostgresScrapeFailing"),
                                          (scrape.PGBOUNCER_EXPORTER, "PgBouncerScrapeFailing"),
                                          (scrape.REDIS_EXPORTER, "RedisScrapeFailing"),
                                          (APP, "ApiScrapeFailing")])
def test_killing_an_exporter_fires_its_blindness_alert(stack: dict[str, Any], target: str, alert: str) -> None:
    prometheus: localservers.Prometheus = stack["prometheus"]
    exporter: Exporter = stack["exporters"][target]
    exporter.stop()
    fired = wait_for(lambda: firing(prometheus, alert), f"{alert} firing")
    labels = fired[0]["labels"]
    assert labels["job"] == target and labels["severity"] == "critical"
    assert labels["namespace"] == stack["profile"].namespace
    # Blind, not broken: no series-absent alert and no other alert fires or is pending.
    others = {a["labels"]["alertname"] for a in active_alerts(prometheus)} - {alert}
    assert others == set(), others
    # The same rendered exporter back on its port: the alert resolves.
    exporter.start()
    wait_for(lambda: not [a for a in active_alerts(prometheus) if a["labels"]["alertname"] == alert]
             and query(prometheus, f'up{{job="{target}"}} == 1'), f"{alert} resolved after the exporter came back")


def test_redis_down_fires_redis_down(stack: dict[str, Any]) -> None:
    prometheus: localservers.Prometheus = stack["prometheus"]
    profile: Profile = stack["profile"]
    stack["redis"].stop()
    found = wait_for(lambda: firing(prometheus, "RedisDown"), "RedisDown firing")
    labels = found[0]["labels"]
    assert labels["severity"] == "critical"
    assert labels["environment"] == profile.environment
    assert labels["namespace"] == profile.namespace
    assert found[0]["annotations"]["runbook_url"].endswith("#redisdown")
    # Nothing else broke: PostgreSQL's and PgBouncer's alerts stay quiet.
    others = [a["labels"]["alertname"] for a in active_alerts(prometheus)
              if a["labels"]["component"] not in ("redis",)]
    assert others == []


def test_cnpg_custom_queries_produce_the_names_the_rules_read(stack: dict[str, Any]) -> None:
    """Dev's CloudNativePG: each custom query runs on the real PostgreSQL and returns its declared columns;
    the names they yield after the PodMonitor's relabelling cover every pg_* series the rules read."""
    pg: localservers.Postgres = stack["postgres"]
    with psycopg.connect(pg.dsn(dbname=stack["profile"].pgbouncer.databases[0])) as conn:
        for name, spec in exporters.CNPG_CUSTOM_QUERIES.items():
            cursor = conn.execute(spec["query"])
            columns = [d.name for d in cursor.description or []]
            declared = [next(iter(m)) for m in spec["metrics"]]
            assert columns == declared, (name, columns, declared)
            assert cursor.fetchall(), name
    used = component_series(stack["profile"], "postgres") | {
        n for a in rules_of(stack["profile"])["blindness"] for n in metrics.metric_names(a.expr) if n.startswith("pg_")}
    assert used <= exporters.cnpg_metric_names(), used - exporters.cnpg_metric_names()

"""Scraping is rendered: an exporter and a monitor for every component, credentials by reference, the
release label from the profile, CloudNativePG's names mapped onto the rules' own, a blindness alert for
every target and every series an alert reads, and every name the alerts and panels use in the VERIFIED table.
(The live half, real exporters and Prometheus, is tests/test_alerts_live.py.)"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from generators import metrics, scrape
from generators.alerts import blindness
from generators.k8s import LLM_SERVER, USERNAME_KEY
from generators.objects import exporters
from generators.profile import Profile
from generators.render import render
from infra.stack import StackSettings, apply

from .conftest import load, rules_of, variant

ENVS = ["dev", "prod"]
CREDENTIAL_ENV = {"DATA_SOURCE_USER", "DATA_SOURCE_PASS", "PGUSER", "PGPASSWORD", "REDIS_PASSWORD"}


def objects_of(profile: Profile) -> list[dict[str, Any]]:
    return render(profile).objects


def of_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def containers(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for o in objects if o["kind"] in ("Deployment", "StatefulSet")
            for c in o["spec"]["template"]["spec"]["containers"]}


def jobs_scraped(profile: Profile, objects: list[dict[str, Any]]) -> set[str]:
    """The job labels the rendered monitors give their targets (prometheus-operator's rules)."""
    jobs = set()
    for monitor in of_kind(objects, "ServiceMonitor"):
        wanted = monitor["spec"]["selector"]["matchLabels"]
        services = [s["metadata"]["name"] for s in of_kind(objects, "Service")
                    if wanted.items() <= s["metadata"]["labels"].items()]
        assert len(services) == 1, (monitor["metadata"]["name"], services)
        port = monitor["spec"]["endpoints"][0]["port"]
        service = next(s for s in of_kind(objects, "Service") if s["metadata"]["name"] == services[0])
        assert port in {p["name"] for p in service["spec"]["ports"]}
        jobs.add(services[0])
    for monitor in of_kind(objects, "PodMonitor"):
        relabel = monitor["spec"]["podMetricsEndpoints"][0]["relabelings"]
        jobs |= {r["replacement"] for r in relabel if r["targetLabel"] == "job"}
    for probe in of_kind(objects, "Probe"):
        jobs.add(probe["spec"].get("jobName") or f"probe/{profile.namespace}/{probe['metadata']['name']}")
    return jobs


@pytest.mark.parametrize("env", ENVS)
def test_every_scrape_target_has_a_monitor_labelled_for_the_release(env: str) -> None:
    profile = load(env)
    objects = objects_of(profile)
    assert {t.job for t in scrape.targets(profile)} <= jobs_scraped(profile, objects)
    for monitor in of_kind(objects, "ServiceMonitor") + of_kind(objects, "PodMonitor"):
        assert monitor["metadata"]["labels"]["release"] == profile.monitoring.release == "kube-prometheus-stack"
        assert monitor["spec"]["namespaceSelector"] == {"matchNames": [profile.namespace]}
    other = variant(env, {"monitoring": {"release": "monitoring"}})
    monitors = of_kind(objects_of(other), "ServiceMonitor") + of_kind(objects_of(other), "PodMonitor")
    assert monitors and {m["metadata"]["labels"]["release"] for m in monitors} == {"monitoring"}


def test_vllm_is_scraped_on_its_own_service() -> None:
    profile = load("prod")
    assert profile.llm is not None and profile.llm.server == "vllm"
    monitor = next(m for m in of_kind(objects_of(profile), "ServiceMonitor") if m["metadata"]["name"] == LLM_SERVER)
    assert monitor["spec"]["endpoints"] == [{"port": "http", "path": "/metrics"}]
    assert LLM_SERVER in jobs_scraped(profile, objects_of(profile))


@pytest.mark.parametrize("env", ENVS)
def test_exporters_pinned_and_credentials_from_the_servers_secrets(env: str) -> None:
    profile = load(env)
    objects = objects_of(profile)
    found = containers(objects)
    expected = {scrape.PGBOUNCER_EXPORTER: metrics.PGBOUNCER, scrape.REDIS_EXPORTER: metrics.REDIS}
    if profile.kubernetes.postgres == "external":
        expected[scrape.POSTGRES_EXPORTER] = metrics.POSTGRES
    else:
        assert scrape.POSTGRES_EXPORTER not in found  # CloudNativePG's instance manager exports
    for name, exporter in expected.items():
        container = found[name]
        assert container["image"] == exporter.image
        assert re.search(r":v\d+\.\d+\.\d+$", container["image"]), container["image"]  # a release tag, not latest
        for item in container["env"]:
            if item["name"] in CREDENTIAL_ENV:
                assert set(item) == {"name", "valueFrom"}, item  # never a literal
    pg_secret = profile.secrets.postgres_password
    # The Secret the servers use: PgBouncer's userlist volume, Redis's --requirepass.
    pgbouncer_pod = next(o for o in of_kind(objects, "Deployment") if o["metadata"]["name"] == "pgbouncer")
    sources = pgbouncer_pod["spec"]["template"]["spec"]["volumes"][0]["projected"]["sources"]
    assert {"name": pg_secret.secret}.items() <= next(s["secret"] for s in sources if "secret" in s).items()
    sidecar = {e["name"]: e for e in found[scrape.PGBOUNCER_EXPORTER]["env"]}
    assert sidecar["PGUSER"]["valueFrom"]["secretKeyRef"] == {"name": pg_secret.secret, "key": USERNAME_KEY}
    assert sidecar["PGPASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": pg_secret.secret, "key": pg_secret.key}
    assert found[scrape.PGBOUNCER_EXPORTER] in pgbouncer_pod["spec"]["template"]["spec"]["containers"]
    redis_env = {e["name"]: e for e in found[scrape.REDIS_EXPORTER]["env"]}
    server_env = {e["name"]: e for e in found["redis"]["env"]}
    assert redis_env["REDIS_PASSWORD"]["valueFrom"] == server_env["REDIS_PASSWORD"]["valueFrom"]
    # The sidecar logs into the admin console as auth_user: the rendered stats_users lets it.
    ini = render(profile).files["pgbouncer/pgbouncer.ini"]
    stats = re.search(r"^stats_users\s*=\s*(.*)$", ini, re.M)
    assert stats and profile.pgbouncer.auth_user in [u.strip() for u in stats.group(1).split(",")]


def test_external_postgres_exporter_dials_the_database_pgbouncer_dials() -> None:
    profile = load("prod")
    container = containers(objects_of(profile))[scrape.POSTGRES_EXPORTER]
    env = {e["name"]: e for e in container["env"]}
    pb = profile.pgbouncer
    assert env["DATA_SOURCE_URI"]["value"].startswith(f"{pb.server_host}:{pb.server_port}/{pb.databases[0]}?")
    secret = profile.secrets.postgres_password
    assert env["DATA_SOURCE_PASS"]["valueFrom"]["secretKeyRef"] == {"name": secret.secret, "key": secret.key}


def prometheus_relabel(name: str) -> str:
    """The PodMonitor's metricRelabelings applied as Prometheus does (anchored regex, replace)."""
    for rule in exporters.CNPG_RELABEL:
        match = re.fullmatch(rule["regex"], name)
        if match:
            name = match.expand(rule["replacement"].replace("$1", r"\1"))
    return name


def test_cloudnativepg_podmonitor_and_queries_yield_the_rules_names() -> None:
    profile = load("dev")
    assert profile.kubernetes.postgres == "cloudnativepg"
    objects = objects_of(profile)
    cluster = of_kind(objects, "Cluster")[0]
    (ref,) = cluster["spec"]["monitoring"]["customQueriesConfigMap"]
    queries = next(o for o in of_kind(objects, "ConfigMap") if o["metadata"]["name"] == ref["name"])
    assert ref["key"] in queries["data"]
    (monitor,) = [m for m in of_kind(objects, "PodMonitor") if m["metadata"]["name"] == scrape.POSTGRES_EXPORTER]
    assert monitor["spec"]["selector"]["matchLabels"]["cnpg.io/cluster"] == cluster["metadata"]["name"]
    assert monitor["spec"]["podMetricsEndpoints"][0]["port"] == scrape.METRICS_PORT
    # The instance manager's names (cnpg_ + query + column; cnpg_collector_*) become the rules' pg_* names.
    assert prometheus_relabel("cnpg_collector_up") == "pg_up"
    assert prometheus_relabel("cnpg_collector_last_collection_error") == "pg_exporter_last_scrape_error"
    assert prometheus_relabel("cnpg_pg_stat_database_blks_hit") == "pg_stat_database_blks_hit"
    assert prometheus_relabel("cnpg_backends_total") == "cnpg_backends_total"  # CloudNativePG's defaults stay
    produced = {prometheus_relabel(f"cnpg_{n}") for n in exporters.cnpg_metric_names() if n.startswith("pg_")
                and n not in ("pg_up", "pg_exporter_last_scrape_error")} | {"pg_up", "pg_exporter_last_scrape_error"}
    used = {n for alerts in rules_of(profile).values() for a in alerts for n in metrics.metric_names(a.expr)
            if metrics.exporter_of(n) == "postgres_exporter"}
    assert used and used <= produced, used - produced


@pytest.mark.parametrize("env", ENVS)
def test_blindness_alerts_for_every_target_and_every_series(env: str) -> None:
    profile = load(env)
    rules = rules_of(profile)
    names = {a.name for a in rules["blindness"]}
    used = {n for component, alerts in rules.items() if component != "blindness" for a in alerts
            for n in metrics.metric_names(a.expr)}
    for target in scrape.targets(profile):
        prefix = blindness.PREFIX[target.component]
        assert f"{prefix}ScrapeFailing" in names
        up = next(a for a in rules["blindness"] if a.name == f"{prefix}ScrapeFailing")
        assert up.expr == f'up{{namespace="{profile.namespace}", job="{target.job}"}} == 0'
        if target.may_be_empty:
            continue
        assert f"{prefix}TargetMissing" in names
        for metric in used & scrape.exported_by(target) - metrics.APPEAR_ON_EVENT:
            assert blindness._absent_name(target.component, metric) in names, metric
    assert not any("redis_errors_total" in n for n in names)  # absent until the first error: health


def test_a_fleet_that_scales_to_zero_gets_no_absent_alerts() -> None:
    profile = variant("prod", {"autoscaling": {"llm": {"min_replicas": 0, "scaler": "keda"}}})
    names = {a.name for a in rules_of(profile)["blindness"]}
    assert "LlmScrapeFailing" in names
    assert not any(n.startswith("LlmSeriesAbsent") or n == "LlmTargetMissing" for n in names)


def exprs_of_dashboards(profile: Profile) -> list[str]:
    files = render(profile).files
    out: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "expr" and isinstance(value, str):
                    out.append(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)
    for path, text in files.items():
        if path.startswith("grafana/") and path.endswith(".json"):
            walk(json.loads(text))
    return out


@pytest.mark.parametrize("env", ENVS)
def test_every_name_an_alert_or_panel_uses_is_in_the_verified_table(env: str) -> None:
    profile = load(env)
    rules = [a for alerts in rules_of(profile).values() for a in alerts]
    # perfstack's own recording rules (the burn-rate ratios) are not exporter metrics: their expressions are
    # checked instead, and their names may be read by alerts and panels
    recorded = {name for a in rules for name, _ in a.records}
    exprs = [a.expr for a in rules] + [expr for a in rules for _, expr in a.records] + exprs_of_dashboards(profile)
    assert len(exprs) > 50
    for expr in exprs:
        for name in metrics.metric_names(expr) - recorded:
            assert name in metrics.VERIFIED, (name, expr)
            entry = metrics.VERIFIED[name]
            assert entry.version and entry.how and entry.exporter


def test_the_verified_table_holds_no_name_the_pinned_exporters_lack() -> None:
    for wrong in ("pgbouncer_stats_queries_pooled_total", "pg_replication_lag_seconds",
                  "pg_stat_user_tables_n_dead_tup", "pg_stat_user_tables_n_live_tup"):
        assert wrong not in metrics.VERIFIED
    assert metrics.VERIFIED["pgbouncer_stats_totals_queries_pooled_total"].version == "0.12.1"
    assert "live scrape" in metrics.VERIFIED["pg_up"].how


def test_the_stacks_prometheus_release_labels_the_monitors_too() -> None:
    profile = apply(load("prod"), StackSettings(profile="prod", prometheus_release="monitoring"))
    assert profile.monitoring.release == "monitoring"
    assert profile.kubernetes.prometheus_rule_labels["release"] == "monitoring"


@pytest.mark.parametrize("env", ENVS)
def test_the_workers_are_scraped_through_celery_exporter_on_their_own_broker(env: str) -> None:
    profile = load(env)
    assert profile.workers is not None
    objects = objects_of(profile)
    container = containers(objects)[scrape.CELERY_EXPORTER]
    assert container["image"] == metrics.CELERY.image and container["image"].endswith(":" + metrics.CELERY.version)
    env_of = {e["name"]: e for e in container["env"]}
    worker = next(o for o in of_kind(objects, "Deployment") if o["metadata"]["name"].startswith("worker-"))
    worker_env = {e["name"]: e for e in worker["spec"]["template"]["spec"]["containers"][0]["env"]}
    # the same broker and the same Secret as the workers; the password only through the Secret
    assert env_of["CE_BROKER_URL"]["value"] == worker_env["CELERY_BROKER_URL"]["value"]
    assert env_of["REDIS_PASSWORD"] == worker_env["REDIS_PASSWORD"]
    assert "$(REDIS_PASSWORD)" in env_of["CE_BROKER_URL"]["value"]
    # every pool's queue from the start, so a pool scaled to zero still has its queue length
    queues = {q for pool in profile.workers.pools.values() for q in pool.queues}
    [arg] = [a for a in container["args"] if a.startswith("--queues=")]
    assert set(arg.removeprefix("--queues=").split(",")) == queues
    # the job the workers' alerts select
    [monitor] = [o for o in of_kind(objects, "ServiceMonitor") if o["metadata"]["name"] == scrape.CELERY_EXPORTER]
    relabel = monitor["spec"]["endpoints"][0]["relabelings"]
    assert {"targetLabel": "job", "replacement": profile.workers.exporter_job, "action": "replace"} in relabel
    assert any(t.job == profile.workers.exporter_job and t.exporter == "celery_exporter"
               for t in scrape.targets(profile))
    # its blindness alerts: up, absent(up), and the queue series (task counters appear on events: not watched)
    names = {a.name for a in blindness.blindness_alerts(profile, None, [a for g in rules_of(profile).values()  # type: ignore[arg-type]
                                                                          for a in g])}
    assert {"WorkerScrapeFailing", "WorkerTargetMissing", "WorkerSeriesAbsent_celery_queue_length"} <= names
    assert not any(n.startswith("WorkerSeriesAbsent_celery_task_") for n in names)


def test_a_renamed_exporter_job_is_what_the_monitor_writes_and_the_alerts_read() -> None:
    profile = variant("prod", {"workers": {"exporter_job": "celery"}})
    objects = objects_of(profile)
    [monitor] = [o for o in of_kind(objects, "ServiceMonitor") if o["metadata"]["name"] == scrape.CELERY_EXPORTER]
    assert monitor["spec"]["endpoints"][0]["relabelings"][0]["replacement"] == "celery"
    rules = render(profile).files["prometheus/alerts.yaml"]
    assert 'up{namespace="ai-platform", job="celery"} == 0' in rules


def test_the_app_is_scraped_by_its_pod_labels_and_port_and_watched() -> None:
    """The app is the user's Deployment: the PodMonitor selects its pods by app.metrics.pod_labels, scrapes the
    named port and path, and writes job=app.deployment, the job every API alert and its blindness alerts read."""
    profile = variant("prod", {"app": {"deployment": "web", "metrics": {
        "port": "metrics", "path": "/internal/metrics", "pod_labels": {"app": "web", "tier": "api"}}}})
    objects = objects_of(profile)
    [monitor] = [o for o in of_kind(objects, "PodMonitor") if o["metadata"]["name"] == "web"]
    endpoint = monitor["spec"]["podMetricsEndpoints"][0]
    assert (endpoint["port"], endpoint["path"]) == ("metrics", "/internal/metrics")
    assert monitor["spec"]["selector"]["matchLabels"] == {"app": "web", "tier": "api"}
    assert endpoint["relabelings"] == [{"targetLabel": "job", "replacement": "web", "action": "replace"}]
    assert "web" in jobs_scraped(profile, objects)
    names = {a.name: a.expr for a in rules_of(profile)["blindness"]}
    assert names["ApiScrapeFailing"] == 'up{namespace="ai-platform", job="web"} == 0'
    assert names["ApiTargetMissing"] == 'absent(up{namespace="ai-platform", job="web"})'
    assert 'job="web"' in next(a.expr for a in rules_of(profile)["api"] if a.name == "ApiErrorRateHigh")
    # The unlabelled gauge exists from the app's start: watched; the labelled HTTP series appear on the first
    # request (prometheus_client): their absence is an idle app, not blindness.
    assert "ApiSeriesAbsent_app_db_pool_connections_in_use" in names
    assert not any(n.startswith("ApiSeriesAbsent_http_") for n in names)
    # By default the pods are selected by the Deployment's name label.
    default = variant("prod", {"app": {"deployment": "web"}})
    [monitor] = [o for o in of_kind(objects_of(default), "PodMonitor") if o["metadata"]["name"] == "web"]
    assert monitor["spec"]["selector"]["matchLabels"] == {"app.kubernetes.io/name": "web"}
    assert monitor["spec"]["podMetricsEndpoints"][0]["port"] == "http"

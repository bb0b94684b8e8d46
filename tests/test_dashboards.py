"""Grafana dashboards: every PromQL expression in every panel parses in real Prometheus (promtool), every
metric it uses is a known exporter metric (generators/metrics.py), UIDs are stable, labels configurable."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from generators import dashboards, metrics
from generators.loader import Source, deep_merge, load_source
from generators.profile import Profile
from generators.render import render
from generators.validation import profile_from_source

from .conftest import PROFILES, REPO, load, rules_of

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (apt-get install prometheus)")
COMPONENTS = ["overview", "postgres", "pgbouncer", "redis", "llm", "api", "workers"]  # dev and prod have workers
# Grafana's built-in interval variables, as Grafana substitutes them before the query reaches Prometheus.
GRAFANA_INTERVALS = {"$__rate_interval": "1m", "$__interval": "30s", "$__range": "6h"}


def variant(base: str, overrides: dict[str, Any]) -> Profile:
    source = load_source(PROFILES / f"{base}.yaml")
    return profile_from_source(Source(data=deep_merge(source.data, overrides), locations=source.locations,
                                      files=source.files), base)


def all_expressions(profile: Profile) -> list[tuple[str, str]]:
    return [(board["title"], expr) for board in dashboards.dashboards(profile, rules_of(profile)).values()
            for expr in dashboards.expressions(board)]


def as_prometheus_sees_it(expr: str) -> str:
    for variable, value in GRAFANA_INTERVALS.items():
        expr = expr.replace(variable, value)
    return expr  # $namespace / $environment sit inside label values: plain strings to the parser


def promtool_parse(exprs: list[str], folder: Path) -> subprocess.CompletedProcess[str]:
    """Each expression as a recording rule: `promtool check rules` parses it with Prometheus's own parser."""
    rules = {"groups": [{"name": "dashboard-expressions", "rules": [
        {"record": f"perfstack:dashboard_expression:{index}", "expr": as_prometheus_sees_it(expr)}
        for index, expr in enumerate(exprs)]}]}
    path = folder / "dashboard_expressions.yaml"
    path.write_text(yaml.safe_dump(rules, sort_keys=False, width=4096))
    return subprocess.run([PROMTOOL or "promtool", "check", "rules", str(path)], capture_output=True, text=True,
                          timeout=120)


PROFILE_VARIANTS = {
    "dev": lambda: load("dev"),
    "prod": lambda: load("prod"),
    "prod-queue-redis": lambda: variant("prod", {"redis": {"role": "queue", "maxmemory_policy": "noeviction",
                                                           "persistence": "aof"}}),
}


@needs_promtool
@pytest.mark.parametrize("name", sorted(PROFILE_VARIANTS))
def test_every_panel_expression_parses_in_prometheus(name: str, tmp_path: Path) -> None:
    exprs = [expr for _, expr in all_expressions(PROFILE_VARIANTS[name]())]
    assert len(exprs) > 30
    result = promtool_parse(exprs, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(exprs)} rules found" in result.stdout


@needs_promtool
def test_the_parse_check_rejects_a_broken_expression(tmp_path: Path) -> None:
    result = promtool_parse(['sum by (state (pg_stat_activity_count{namespace="$namespace"})'], tmp_path)
    assert result.returncode != 0


@pytest.mark.parametrize("name", sorted(PROFILE_VARIANTS))
def test_every_metric_in_every_panel_is_a_known_exporter_metric(name: str) -> None:
    profile = PROFILE_VARIANTS[name]()
    # the burn-rate panels read the recording rules the alerts read (rendered in the same rule file)
    recorded = {record for found in rules_of(profile).values() for alert in found for record, _ in alert.records}
    for title, expr in all_expressions(profile):
        used = metrics.metric_names(expr)
        assert used, (title, expr)
        assert used <= metrics.ALL | recorded, (title, expr, used - metrics.ALL - recorded)


def test_metric_names_reads_selectors_not_functions_labels_or_durations() -> None:
    expr = ('histogram_quantile(0.95, sum by (le, job) (rate(http_request_duration_seconds_bucket{job="api", '
            'status=~"5.."}[$__rate_interval]))) / on (job) group_left (pod) vllm:num_requests_waiting offset 5m '
            '> bool 1e3 and ALERTS{alertstate="firing"}')
    assert metrics.metric_names(expr) == {"http_request_duration_seconds_bucket", "vllm:num_requests_waiting", "ALERTS"}
    assert metrics.exporter_of("pg_up") == "postgres_exporter"
    assert metrics.exporter_of("pg_replication_lag") is None  # the wrong name published rule sets use


# ---------------------------------------------------------------- UIDs, variables, files
@pytest.mark.parametrize("env", ["dev", "prod"])
def test_uids_are_derived_from_names_and_stable(env: str) -> None:
    profile = load(env)
    first, second = render(profile), render(profile)
    grafana = {path: text for path, text in first.files.items() if path.startswith("grafana/")}
    assert sorted(grafana) == sorted(f"grafana/perfstack-{env}-{c}.json" for c in COMPONENTS)
    for path, text in grafana.items():
        board = json.loads(text)
        assert path == f"grafana/{board['uid']}.json"
        assert second.files[path] == text
        assert (REPO / "rendered" / env / path).read_text() == text  # committed files are current


def test_long_names_hash_to_a_stable_uid_within_grafanas_limit() -> None:
    profile = load("prod").model_copy(update={"environment": "staging-" + "x" * 40})
    first, again = dashboards.uid(profile, "pgbouncer"), dashboards.uid(profile, "pgbouncer")
    assert first == again and len(first) <= 40 and first.startswith("perfstack-")
    assert first != dashboards.uid(profile, "postgres")


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_templated_datasource_and_environment_variables(env: str) -> None:
    profile = load(env)
    for board in dashboards.dashboards(profile, rules_of(profile)).values():
        variables = {v["name"]: v for v in board["templating"]["list"]}
        assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
        assert variables["environment"]["current"]["value"] == profile.environment
        assert variables["namespace"]["current"]["value"] == profile.namespace
        for panel in board["panels"]:
            assert panel["datasource"]["uid"] == "${datasource}"
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == "${datasource}"
                assert "$namespace" in target["expr"] or "$environment" in target["expr"] or "job=" in target["expr"]


def _lines(board: dict[str, Any]) -> dict[str, float]:
    out = {}
    for panel in board["panels"]:
        steps = panel.get("fieldConfig", {}).get("defaults", {}).get("thresholds", {}).get("steps", [])
        values = [s["value"] for s in steps if s["value"] is not None]
        if values:
            out[panel["title"]] = values[0]
    return out


def test_overview_draws_the_slos_and_dev_differs_from_prod() -> None:
    dev, prod = load("dev"), load("prod")
    dev_lines = _lines(dashboards.build(dev, "overview", rules_of(dev)))
    prod_lines = _lines(dashboards.build(prod, "overview", rules_of(prod)))
    assert prod_lines["API p95 latency"] == 2 and dev_lines["API p95 latency"] == 5  # slo.api_latency_p95
    assert prod_lines["Workflow p95 duration"] == 120 and dev_lines["Workflow p95 duration"] == 300
    assert prod_lines["API error ratio (5xx)"] == 0.01
    assert prod_lines["Query cache hit ratio"] == 0.7 and prod_lines["Llm cache hit ratio"] == 0.6
    assert prod_lines["Database query p95"] == 0.2 and dev_lines["Database query p95"] == 0.5
    assert prod_lines["API memory per pod"] == 4 * 1024**3 and dev_lines["API memory per pod"] == 2 * 1024**3
    assert prod_lines["API CPU per pod (share of its limit)"] == 0.8
    assert prod_lines["API database pool utilization"] == 0.8


def test_component_lines_are_the_alert_thresholds() -> None:
    prod = load("prod")
    limits = {a.name: a.threshold for found in rules_of(prod).values() for a in found}
    assert _lines(dashboards.build(prod, "postgres", rules_of(prod)))["Connections by state"] == round(limits["PostgresConnectionsHigh"], 6)
    assert _lines(dashboards.build(prod, "pgbouncer", rules_of(prod)))["Server connections"] == limits["PgBouncerServerConnectionsHigh"]
    assert "RedisMemoryHigh" not in limits  # prod's cache evicts (allkeys-lru): no memory line, no memory alert
    assert "Memory used" not in _lines(dashboards.build(prod, "redis", rules_of(prod)))
    assert _lines(dashboards.build(prod, "llm", rules_of(prod)))["Requests waiting and running"] == 256
    dev_llm = dashboards.build(load("dev"), "llm", rules_of(load("dev")))  # Ollama: probe panels, no vLLM metric
    assert not any("vllm:" in expr for expr in dashboards.expressions(dev_llm))
    assert any("probe_success" in expr for expr in dashboards.expressions(dev_llm))


# ---------------------------------------------------------------- Kubernetes objects and their labels
def test_configmaps_carry_the_sidecar_labels_from_the_profile() -> None:
    for profile, expected in ((load("prod"), {"grafana_dashboard": "1"}),
                              (variant("prod", {"kubernetes": {"dashboard_labels": {"team/dashboards": "perf"}}}),
                               {"team/dashboards": "perf"})):
        bundle = render(profile)
        maps = [o for o in bundle.objects if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith(
            "grafana-dashboard-")]
        assert len(maps) == len(COMPONENTS)
        for obj in maps:
            assert expected.items() <= obj["metadata"]["labels"].items()
            assert obj["metadata"]["namespace"] == profile.namespace
            (key, text), = obj["data"].items()
            assert bundle.files[f"grafana/{key}"] == text


def test_grafana_operator_gets_grafana_dashboard_objects() -> None:
    profile = variant("prod", {"kubernetes": {"dashboards": "grafana-operator",
                                              "grafana_instance_labels": {"grafana": "main"}}})
    bundle = render(profile)
    objects = [o for o in bundle.objects if o["kind"] == "GrafanaDashboard"]
    assert len(objects) == len(COMPONENTS)
    assert not [o for o in bundle.objects if o["kind"] == "ConfigMap" and "grafana_dashboard" in o["metadata"]["labels"]]
    for obj in objects:
        assert obj["apiVersion"] == "grafana.integreatly.org/v1beta1"
        assert obj["spec"]["instanceSelector"] == {"matchLabels": {"grafana": "main"}}
        assert json.loads(obj["spec"]["json"])["uid"].startswith("perfstack-prod-")


def test_a_profile_without_workers_has_no_workers_dashboard() -> None:
    from .conftest import load

    profile = load("prod").model_copy(update={"workers": None})
    assert "workers" not in dashboards.components(profile)
    assert "workers" in dashboards.components(load("prod"))

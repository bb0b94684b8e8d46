"""Alert rules: accepted by real `promtool check rules`, proven by real `promtool test rules`, thresholds
taken from the profile (and the other targets' rules), one transform for the shared labels."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from generators import alerts, metrics, pgbouncer, postgres, redis, units
from generators.alerts.llm import ollama_probe_url
from generators.alerts.transform import group_name, groups
from generators.loader import Source, deep_merge, load_source
from generators.objects import monitoring
from generators.profile import Profile
from generators.render import render
from generators.validation import profile_from_source

from .conftest import PROFILES, REPO, load, rules_of, run_cli

PROMTOOL = shutil.which("promtool")
pytestmark = pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (apt-get install prometheus)")
COMPONENTS = {"postgres", "pgbouncer", "redis", "llm", "api", "slo", "workers", "blindness"}  # dev and prod both have workers


def variant(base: str, overrides: dict[str, Any]) -> Profile:
    source = load_source(PROFILES / f"{base}.yaml")
    return profile_from_source(Source(data=deep_merge(source.data, overrides), locations=source.locations,
                                      files=source.files), base)


def promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PROMTOOL or "promtool", *map(str, args)], capture_output=True, text=True, timeout=1800)  # a loaded 2-core machine: prod's proofs take minutes (1 s evaluation: about 6)


def write_rules(profile: Profile, folder: Path) -> Path:
    part = alerts.render(profile, rules_of(profile))
    (folder / "alerts.yaml").write_text(part.files[alerts.RULES_FILE])
    (folder / "alerts_test.yaml").write_text(part.files[alerts.TESTS_FILE])
    return folder


def rules_by_name(profile: Profile) -> dict[str, dict[str, Any]]:
    return {r["alert"]: {**r, "group": g["name"]} for g in groups(profile, rules_of(profile)) for r in g["rules"]
            if "alert" in r}


def threshold(rule: dict[str, Any]) -> float:
    return float(rule["expr"].rsplit(" ", 1)[1])


# ---------------------------------------------------------------- the real tools on the rendered files
@pytest.mark.parametrize("env", ["dev", "prod"])
def test_committed_rules_pass_promtool_check_and_unit_tests(env: str) -> None:
    folder = REPO / "rendered" / env / "prometheus"
    check = promtool("check", "rules", folder / "alerts.yaml")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS" in check.stdout
    result = promtool("test", "rules", folder / "alerts_test.yaml")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_fresh_render_passes_promtool(env: str, tmp_path: Path) -> None:
    result = run_cli("--profiles-dir", PROFILES, "render", env, "--out", tmp_path / env)
    assert result.exit_code == 0, result.output
    folder = tmp_path / env / "prometheus"
    assert promtool("check", "rules", folder / "alerts.yaml").returncode == 0
    tested = promtool("test", "rules", folder / "alerts_test.yaml")
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_short_windows_and_one_second_evaluation_still_prove(tmp_path: Path) -> None:
    """The live test's profile shape: `for` x 0.02 and 1 s evaluation; the generated proofs follow."""
    profile = variant("prod", {"alerts": {"for_scale": 0.02, "evaluation_interval": "1s"}})
    folder = write_rules(profile, tmp_path)
    groups = yaml.safe_load((folder / "alerts.yaml").read_text())["groups"]
    assert {g["interval"] for g in groups} == {"1s"}
    assert rules_by_name(profile)["ApiHpaAtMaxReplicas"]["for"] == "18s"  # 15m x 0.02
    tested = promtool("test", "rules", folder / "alerts_test.yaml")
    assert tested.returncode == 0, tested.stdout + tested.stderr


@pytest.mark.parametrize(("old", "new", "alert"), [
    ("> 157.6", "> 158.6", "PostgresConnectionsHigh"),  # threshold moved up: the crossing series no longer fires
    ("for: 15m", "for: 16m", "PostgresCacheHitRatioLow"),  # a longer window: not firing when the test expects it
    ("< 0.95", "< 0.97", "PostgresCacheHitRatioLow"),  # moved the other way: the healthy series fires
])
def test_proofs_fail_when_a_rule_drifts_from_the_profile(old: str, new: str, alert: str, tmp_path: Path) -> None:
    folder = write_rules(load("prod"), tmp_path)
    text = (folder / "alerts.yaml").read_text()
    start = text.index(f"alert: {alert}\n")
    end = text.find("- alert:", start)
    block = text[start:end]
    assert old in block
    (folder / "alerts.yaml").write_text(text[:start] + block.replace(old, new, 1) + text[end:])
    result = promtool("test", "rules", folder / "alerts_test.yaml")
    assert result.returncode != 0
    assert alert in result.stdout + result.stderr


# ---------------------------------------------------------------- structure and the shared transform
@pytest.mark.parametrize("env", ["dev", "prod"])
def test_one_group_per_component_and_shared_labels_on_every_rule(env: str) -> None:
    profile = load(env)
    rule_groups = groups(profile, rules_of(profile))
    assert {g["name"] for g in rule_groups} == {group_name(c) for c in COMPONENTS}
    for group in rule_groups:
        component = group["name"].removeprefix("perfstack-")
        for rule in group["rules"]:
            if "record" in rule:  # the burn-rate ratios: recorded once, read by the alerts after them
                assert rule["record"].startswith("perfstack:") and component == "slo"
                continue
            assert rule["labels"]["environment"] == profile.environment
            assert rule["labels"]["component"] == component
            assert rule["labels"]["severity"] in {"critical", "warning"}
            notes = rule["annotations"]
            assert notes["summary"] and notes["description"]
            assert notes["runbook_url"] == f"{profile.kubernetes.runbook_url}#{rule['alert'].lower()}"
            assert rule.get("for"), rule["alert"]


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_every_description_names_its_threshold(env: str) -> None:
    profile = load(env)
    for found in rules_of(profile).values():
        for alert in found:
            # as written in the expression, as a percentage, or as a duration (thresholds in seconds)
            forms = {alerts.num(alert.threshold), f"{alert.threshold * 100:g}%",
                     units.format_duration(round(alert.threshold * 1000))}
            assert any(form in alert.description for form in forms), (alert.name, alert.description)


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_every_metric_in_every_rule_is_a_known_exporter_metric(env: str) -> None:
    profile = load(env)
    records = {r["record"]: r["expr"] for g in groups(profile, rules_of(profile)) for r in g["rules"] if "record" in r}
    for name, expr in records.items():  # recording rules read exporter metrics only
        assert metrics.metric_names(expr) <= metrics.ALL, (name, metrics.metric_names(expr) - metrics.ALL)
    for name, rule in rules_by_name(profile).items():
        used = metrics.metric_names(rule["expr"])
        assert used, name
        assert used <= metrics.ALL | set(records), (name, used - metrics.ALL - set(records))


def test_runbook_base_comes_from_the_profile() -> None:
    profile = variant("dev", {"kubernetes": {"runbook_url": "https://wiki.example.org/ops"}})
    assert rules_by_name(profile)["RedisDown"]["annotations"]["runbook_url"] == "https://wiki.example.org/ops#redisdown"


# ---------------------------------------------------------------- thresholds come from the profile and the other rules
def test_postgres_connections_threshold_from_rendered_max_connections() -> None:
    # prod: 0.80 x (max_connections 200 - superuser_reserved_connections 3) = 157.6
    prod = load("prod")
    assert threshold(rules_by_name(prod)["PostgresConnectionsHigh"]) == pytest.approx(157.6)
    # no max_connections given: pgtune's default for the workload (dw: 40); 0.5 x (40 - 3) = 18.5
    dw = variant("dev", {"postgres": {"workload": "dw"}, "slo": {"pool_utilization_max": 0.5}})
    assert postgres.max_connections(postgres.Inputs.from_profile(dw)).value == 40
    assert threshold(rules_by_name(dw)["PostgresConnectionsHigh"]) == pytest.approx(18.5)


def test_pgbouncer_thresholds_from_pool_sizes() -> None:
    dev, prod = load("dev"), load("prod")
    # server connections: pools 1 x (20 + 5) x replicas (dev 1, prod 2) = 25, 50; x 0.80
    assert pgbouncer.server_connections(prod) == 50
    assert threshold(rules_by_name(dev)["PgBouncerServerConnectionsHigh"]) == 20
    assert threshold(rules_by_name(prod)["PgBouncerServerConnectionsHigh"]) == 40
    # client connections: 0.80 x max_client_conn (dev 500, prod 2000)
    assert threshold(rules_by_name(dev)["PgBouncerClientConnectionsHigh"]) == 400
    assert threshold(rules_by_name(prod)["PgBouncerClientConnectionsHigh"]) == 1600
    # max wait: reserve_pool_timeout 100ms (within the 200 ms query SLO)
    assert threshold(rules_by_name(prod)["PgBouncerMaxWaitHigh"]) == 0.1
    assert threshold(rules_by_name(variant("prod", {"pgbouncer": {"reserve_pool_timeout": "1500ms"}}))[
        "PgBouncerMaxWaitHigh"]) == 1.5


def test_redis_memory_and_eviction_alerts_follow_maxmemory_and_policy() -> None:
    dev = load("dev")
    # dev: maxmemory 75% of 1GiB = 768MiB; x 0.80 = 644245094.4 bytes
    assert redis.maxmemory_bytes(dev) == 768 * 1024 * 1024
    by_name = rules_by_name(dev)
    # allkeys-lru: a full cache is doing its job, no memory alert; refused writes (OOM) are the failure
    assert "RedisMemoryHigh" not in by_name
    # allkeys-lru evicts: evictions above what the caches turn over by TTL, 2000/300s + 3000/1800s = 8.33 keys/s
    assert threshold(by_name["RedisEvictionsHigh"]) == pytest.approx(2000 / 300 + 3000 / 1800, abs=1e-6)
    assert 'err="OOM"' in by_name["RedisRejectedWrites"]["expr"]
    assert "offset 5m" in by_name["RedisRejectedWrites"]["expr"]  # a counter missing 5m ago counts from 0
    queue = rules_by_name(variant("dev", {"redis": {"role": "queue", "maxmemory_policy": "noeviction",
                                                    "persistence": "aof", "maxmemory": "512MiB"}}))
    assert "RedisEvictionsHigh" not in queue
    assert 'err="OOM"' in queue["RedisRejectedWrites"]["expr"]
    assert queue["RedisMemoryHigh"]["labels"]["severity"] == "critical"
    assert threshold(queue["RedisMemoryHigh"]) == pytest.approx(0.8 * 512 * 1024 * 1024)


def test_llm_alerts_vllm_in_prod_probe_in_dev() -> None:
    prod = rules_by_name(load("prod"))
    assert {"LlmQueueSaturated", "LlmKvCacheHigh", "LlmLatencyHigh", "LlmTimeToFirstTokenHigh"} <= set(prod)
    assert threshold(prod["LlmQueueSaturated"]) == 256  # a whole batch (max_num_seqs 64) waiting x max_replicas 4
    assert "vllm:num_requests_waiting" in prod["LlmQueueSaturated"]["expr"]
    assert threshold(prod["LlmLatencyHigh"]) == 5  # slo.llm_latency_p95 5s
    dev_profile = load("dev")
    dev = rules_by_name(dev_profile)
    assert not any("vllm:" in rule["expr"] for rule in dev.values())
    assert dev["LlmServerDown"]["expr"] == f'probe_success{{job="probe/{dev_profile.namespace}/llm"}} == 0'
    probe = next(o for o in render(dev_profile).objects if o["kind"] == "Probe")
    assert probe["spec"]["jobName"] == f"probe/{dev_profile.namespace}/llm"
    assert probe["spec"]["targets"]["staticConfig"]["static"] == [ollama_probe_url(dev_profile)]


def test_api_thresholds_from_slos_and_dev_differs_from_prod() -> None:
    dev, prod = rules_by_name(load("dev")), rules_by_name(load("prod"))
    assert threshold(dev["ApiLatencyHigh"]) == 5 and threshold(prod["ApiLatencyHigh"]) == 2
    assert threshold(dev["WorkflowLatencyHigh"]) == 300 and threshold(prod["WorkflowLatencyHigh"]) == 120
    assert threshold(prod["ApiErrorRateHigh"]) == 0.01
    assert threshold(prod["QueryCacheHitRatioLow"]) == 0.7 and threshold(prod["LlmCacheHitRatioLow"]) == 0.6
    # db pool: 0.80 x (20 + 40) = 48 in prod, 0.80 x (20 + 10) = 24 in dev
    assert threshold(prod["ApiDbPoolSaturated"]) == 48 and threshold(dev["ApiDbPoolSaturated"]) == 24
    assert threshold(dev["ApiHpaAtMaxReplicas"]) == 4 and threshold(prod["ApiHpaAtMaxReplicas"]) == 20
    assert prod["ApiHpaAtMaxReplicas"]["for"] == "15m"
    tight = rules_by_name(variant("prod", {"slo": {"error_rate": "0.5%", "api_latency_p95": "750ms"}}))
    assert threshold(tight["ApiErrorRateHigh"]) == 0.005 and threshold(tight["ApiLatencyHigh"]) == 0.75


# ---------------------------------------------------------------- the PrometheusRule object
def test_prometheus_rule_object_carries_the_rule_file_and_configurable_labels() -> None:
    profile = variant("prod", {"kubernetes": {"prometheus_rule_labels": {"release": "monitoring"}}})
    bundle = render(profile)
    rule = next(o for o in bundle.objects if o["kind"] == "PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["metadata"]["namespace"] == profile.namespace
    assert rule["metadata"]["labels"]["release"] == "monitoring"
    assert rule["spec"]["groups"] == yaml.safe_load(bundle.files[alerts.RULES_FILE])["groups"]
    assert f"kubernetes/prometheusrule-{monitoring.RULE_NAME}.yaml" in bundle.files
    default = next(o for o in render(load("prod")).objects if o["kind"] == "PrometheusRule")
    assert default["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def test_rendering_is_deterministic() -> None:
    first, second = alerts.render(load("prod"), rules_of(load("prod"))), alerts.render(load("prod"), rules_of(load("prod")))
    assert first.files == second.files


EDGE_PROFILES = {
    # shares at the ends of their range, a zero error budget, caches without TTL, odd intervals
    "ends-of-range": {"slo": {"error_rate": 0, "pool_utilization_max": 1, "cache_hit_ratio": {"query": 1, "llm": 0}},
                      "alerts": {"postgres_cache_hit_ratio_min": 1, "db_error_ratio_max": 0,
                                 "evaluation_interval": "7s", "for_scale": 0.013}},
    "zero-thresholds": {"slo": {"pool_utilization_max": 0, "cache_hit_ratio": {"query": 0.001}},
                        "app": {"query_cache": {"size": 1, "ttl": 0}, "llm_cache": {"size": 1, "ttl": 0}},
                        "pgbouncer": {"reserve_pool_timeout": 0}, "alerts": {"evaluation_interval": "45s"}},
}


@pytest.mark.parametrize("name", sorted(EDGE_PROFILES))
def test_proofs_hold_at_the_edges_of_every_threshold(name: str, tmp_path: Path) -> None:
    profile = variant("prod", EDGE_PROFILES[name])
    by_name = rules_by_name(profile)
    if name == "ends-of-range":  # nothing can exceed 100% or fall below 0%: those rules are left out
        assert "LlmKvCacheHigh" not in by_name and "LlmCacheHitRatioLow" not in by_name
        assert "PostgresCacheHitRatioLow" in by_name and "ApiErrorRateHigh" in by_name
    folder = write_rules(profile, tmp_path)
    assert promtool("check", "rules", folder / "alerts.yaml").returncode == 0
    tested = promtool("test", "rules", folder / "alerts_test.yaml")
    assert tested.returncode == 0, tested.stdout[-4000:] + tested.stderr

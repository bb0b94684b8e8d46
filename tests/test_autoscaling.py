"""Autoscaling: the API HPA (CPU and memory, explicit behavior), the LLM HPA on the queue metric through
prometheus-adapter, and the KEDA ScaledObject alternative."""

from __future__ import annotations

from typing import Any

import yaml

from generators import autoscaling
from generators.bundle import Bundle
from generators.k8s import LLM_SERVER
from generators.objects import autoscaling as autoscaling_objects
from generators.render import render

from .conftest import rendered_bundle, variant


def objects(bundle: Bundle, kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in bundle.objects if o["kind"] == kind}


def test_api_hpa() -> None:
    hpa = objects(rendered_bundle("prod"), "HorizontalPodAutoscaler")["api"]
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["metadata"]["namespace"] == "ai-platform"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "api"}
    assert hpa["spec"]["minReplicas"] == 3 and hpa["spec"]["maxReplicas"] == 20
    assert hpa["spec"]["metrics"] == [
        {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}},
        {"type": "Resource", "resource": {"name": "memory", "target": {"type": "Utilization", "averageUtilization": 80}}},
    ]
    assert hpa["spec"]["behavior"] == {
        "scaleUp": {"stabilizationWindowSeconds": 0, "selectPolicy": "Max",
                    "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15},
                                 {"type": "Pods", "value": 4, "periodSeconds": 15}]},
        "scaleDown": {"stabilizationWindowSeconds": 300, "selectPolicy": "Max",
                      "policies": [{"type": "Percent", "value": 10, "periodSeconds": 60},
                                   {"type": "Pods", "value": 1, "periodSeconds": 60}]},
    }


def test_api_hpa_follows_the_profile() -> None:
    profile = variant("prod", {"app": {"deployment": "web"}, "autoscaling": {"api": {
        "min_replicas": 1, "max_replicas": 2, "target_cpu": "55%", "target_memory": None,
        "scale_down_stabilization": "90s"}}})
    hpa = autoscaling_objects.api_hpa(profile)
    assert hpa["metadata"]["name"] == "web" and hpa["spec"]["scaleTargetRef"]["name"] == "web"
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (1, 2)
    assert hpa["spec"]["metrics"] == [
        {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 55}}}]
    assert hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 90


def test_llm_hpa_on_running_plus_waiting_requests() -> None:
    bundle = rendered_bundle("prod")
    hpa = objects(bundle, "HorizontalPodAutoscaler")[LLM_SERVER]
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": LLM_SERVER}
    assert hpa["spec"]["minReplicas"] == 1 and hpa["spec"]["maxReplicas"] == 4
    # 0.7 x max_num_seqs 64 = 44.8 requests in flight per pod, as a quantity
    assert hpa["spec"]["metrics"] == [{"type": "Pods", "pods": {
        "metric": {"name": "vllm_requests_in_flight"},
        "target": {"type": "AverageValue", "averageValue": "44800m"}}}]
    assert hpa["spec"]["behavior"] == {
        "scaleUp": {"stabilizationWindowSeconds": 0, "selectPolicy": "Max",
                    "policies": [{"type": "Percent", "value": 100, "periodSeconds": 60},
                                 {"type": "Pods", "value": 2, "periodSeconds": 60}]},
        "scaleDown": {"stabilizationWindowSeconds": 900, "selectPolicy": "Max",
                      "policies": [{"type": "Pods", "value": 1, "periodSeconds": 120}]},
    }
    assert LLM_SERVER not in objects(bundle, "ScaledObject")  # worker pools have their own


def test_prometheus_adapter_serves_the_metric_the_hpa_reads() -> None:
    bundle = rendered_bundle("prod")
    rules = yaml.safe_load(bundle.files["autoscaling/prometheus-adapter-rules.yaml"])
    [rule] = rules["rules"]["custom"]
    assert rule["seriesQuery"] == 'vllm:num_requests_running{namespace!="",pod!=""}'
    assert rule["resources"] == {"overrides": {"namespace": {"resource": "namespace"}, "pod": {"resource": "pod"}}}
    assert rule["name"] == {"matches": "^vllm:num_requests_running$", "as": "vllm_requests_in_flight"}
    assert rule["metricsQuery"] == ("sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>) + "
                                    "sum(vllm:num_requests_waiting{<<.LabelMatchers>>}) by (<<.GroupBy>>)")
    hpa = objects(bundle, "HorizontalPodAutoscaler")[LLM_SERVER]
    assert hpa["spec"]["metrics"][0]["pods"]["metric"]["name"] == rule["name"]["as"]


def test_kv_cache_usage_is_a_ratio_target() -> None:
    bundle = render(variant("prod", {"autoscaling": {"llm": {"signal": "kv_cache"}}}))
    hpa = objects(bundle, "HorizontalPodAutoscaler")[LLM_SERVER]
    assert hpa["spec"]["metrics"][0]["pods"] == {"metric": {"name": "vllm_kv_cache_usage_perc"},
                                                 "target": {"type": "AverageValue", "averageValue": "800m"}}
    [rule] = yaml.safe_load(bundle.files["autoscaling/prometheus-adapter-rules.yaml"])["rules"]["custom"]
    assert rule["seriesQuery"] == 'vllm:kv_cache_usage_perc{namespace!="",pod!=""}'
    keda = render(variant("prod", {"autoscaling": {"llm": {"signal": "kv_cache", "scaler": "keda",
                                                               "target": 0.75}}}))
    [trigger] = objects(keda, "ScaledObject")[LLM_SERVER]["spec"]["triggers"]
    assert trigger["metadata"]["threshold"] == "0.75"  # KEDA takes a float target
    assert trigger["metadata"]["query"].startswith("sum(vllm:kv_cache_usage_perc{")


def test_keda_scaled_object_is_the_alternative() -> None:
    bundle = render(variant("prod", {"autoscaling": {"llm": {"scaler": "keda", "target": 3}}}))
    assert LLM_SERVER not in objects(bundle, "HorizontalPodAutoscaler")
    assert "api" in objects(bundle, "HorizontalPodAutoscaler")
    assert "autoscaling/prometheus-adapter-rules.yaml" not in bundle.files
    scaled = objects(bundle, "ScaledObject")[LLM_SERVER]
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    spec = scaled["spec"]
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": LLM_SERVER}
    assert (spec["minReplicaCount"], spec["maxReplicaCount"], spec["pollingInterval"]) == (1, 4, 15)
    matchers = 'namespace="ai-platform",model_name="meta-llama/Llama-3.1-8B-Instruct"'
    assert spec["triggers"] == [{"type": "prometheus", "metricType": "AverageValue", "metadata": {
        "serverAddress": "http://kube-prometheus-stack-prometheus.monitoring.svc:9090",
        "query": f"sum(vllm:num_requests_running{{{matchers}}}) + sum(vllm:num_requests_waiting{{{matchers}}})",
        "threshold": "3", "activationThreshold": "0"}}]
    assert "cooldownPeriod" not in spec  # only scaling to zero uses it
    assert spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"] == autoscaling.llm_behavior(bundle.profile)


def test_scale_to_zero_wakes_on_the_apps_calls_and_cools_down_past_a_cold_start() -> None:
    bundle = render(variant("prod", {"autoscaling": {"llm": {"scaler": "keda", "min_replicas": 0,
                                                             "scale_down_stabilization": "6m"}},
                                     "llm": {"request_timeout": "6m"}}))
    spec = objects(bundle, "ScaledObject")[LLM_SERVER]["spec"]
    assert spec["minReplicaCount"] == 0
    assert spec["cooldownPeriod"] == 360  # the scale-down window, which checks keep above load_time (331 s)
    assert spec["cooldownPeriod"] >= bundle.target_settings("llm")["load_time"].value / 1000
    wake = spec["triggers"][1]["metadata"]
    assert wake["query"] == 'sum(rate(app_llm_request_duration_seconds_count{namespace="ai-platform"}[2m]))'
    assert wake["activationThreshold"] == "0"
    assert wake["threshold"] == "8.96"  # 44.8 in flight / 5 s latency SLO: calls per second one pod serves


def test_llm_signal_names_are_the_ones_vllm_exports() -> None:
    from generators import metrics
    for name in (autoscaling.RUNNING, autoscaling.WAITING, autoscaling.KV_USAGE):
        assert name in metrics.VLLM


def test_ollama_is_not_autoscaled() -> None:
    bundle = rendered_bundle("dev")
    assert set(objects(bundle, "HorizontalPodAutoscaler")) == {"api"}
    assert LLM_SERVER not in objects(bundle, "ScaledObject")  # worker pools have their own
    assert "autoscaling/prometheus-adapter-rules.yaml" not in bundle.files


def test_exactly_one_owner_of_the_llm_replica_count() -> None:
    """The Deployment sets replicas only when no autoscaler targets it (else each apply would fight the HPA)."""
    for bundle in (rendered_bundle("dev"), rendered_bundle("prod"),
                   render(variant("prod", {"autoscaling": {"llm": {"scaler": "keda"}}}))):
        deployment = objects(bundle, "Deployment")[LLM_SERVER]
        scalers = [o for o in bundle.objects if o["kind"] in ("HorizontalPodAutoscaler", "ScaledObject")
                   and o["spec"]["scaleTargetRef"]["name"] == LLM_SERVER]
        assert len(scalers) <= 1
        assert ("replicas" in deployment["spec"]) == (not scalers)


def test_explain_autoscaling() -> None:
    settings = rendered_bundle("prod").target_settings("autoscaling")
    assert settings["api.min_replicas"].text == "3"
    assert settings["api.target_memory"].text == "80%"
    assert settings["llm.scale_down_stabilization"].text == "900s"
    assert settings["llm.scale_up"].text == "100% or 2 pods per 60s"
    assert settings["llm.target"].text == "44.8" and "cold start" in settings["llm.target"].rule
    assert settings["llm.scaler"].text == "hpa"


# ---------------------------------------------------------------- the HPA algorithm over a load step
def _replay(profile_overrides: dict[str, Any], demand: Any, per_pod: Any, duration_s: float) -> list[int]:
    from .hpa_sim import Hpa, simulate
    bundle = render(variant("prod", profile_overrides))
    spec = objects(bundle, "HorizontalPodAutoscaler")[LLM_SERVER]["spec"]
    target = spec["metrics"][0]["pods"]["target"]["averageValue"]
    value = int(target[:-1]) / 1000 if target.endswith("m") else float(target)
    hpa = Hpa(spec["minReplicas"], spec["maxReplicas"], value, spec["behavior"])
    load_time_s = bundle.target_settings("llm")["load_time"].value / 1000
    history = simulate(hpa, demand, per_pod, load_time_s, duration_s, spec["minReplicas"])
    return [replicas for _, replicas, _ in history]


def test_rendered_policy_reaches_the_needed_replicas_without_oscillating() -> None:
    """300 requests in flight from minute 1 to minute 60, then 60: 7 pods are needed (300 / 44.8), then 2."""
    from .hpa_sim import direction_changes
    big = {"autoscaling": {"llm": {"max_replicas": 10}}, "workers": None}
    demand = lambda t: 300.0 if 60 <= t < 3600 else 60.0 if t >= 3600 else 30.0  # noqa: E731
    replicas = _replay(big, demand, lambda d, ready: d / ready, 7200)
    at = {i * 15: r for i, r in enumerate(replicas)}
    assert at[0] == 1
    # within two minutes of the step all 7 pods are asked for (100 % or 2 pods a minute), however long the
    # cold start: pods still starting count as zero, so the same demand never adds pods twice
    assert at[60 + 120] == 7
    assert max(replicas) == 7, "no overshoot above ceil(300 / 44.8)"
    assert all(r == 7 for t, r in at.items() if 180 <= t < 3600)
    assert at[7200] == 2  # then down to ceil(60 / 44.8), one pod every two minutes after the window
    assert direction_changes(replicas) == 1  # up once, down once


def test_waiting_alone_would_oscillate() -> None:
    """The control: the old signal (waiting requests, target 5) on the same step scales down and back up."""
    from .hpa_sim import Hpa, direction_changes, simulate
    bundle = render(variant("prod", {"autoscaling": {"llm": {"max_replicas": 10}}, "workers": None}))
    behavior = objects(bundle, "HorizontalPodAutoscaler")[LLM_SERVER]["spec"]["behavior"]
    batch = 64  # a pod runs max_num_seqs at once; the rest wait
    waiting = lambda d, ready: max(0.0, d - batch * ready) / ready  # noqa: E731
    history = simulate(Hpa(1, 10, 5, behavior), lambda t: 300.0, waiting, 331, 4 * 3600, 1)
    assert direction_changes([r for _, r, _ in history]) >= 2

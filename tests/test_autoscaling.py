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


def test_llm_hpa_on_the_queue_metric() -> None:
    bundle = rendered_bundle("prod")
    hpa = objects(bundle, "HorizontalPodAutoscaler")[LLM_SERVER]
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": LLM_SERVER}
    assert hpa["spec"]["minReplicas"] == 1 and hpa["spec"]["maxReplicas"] == 4
    assert hpa["spec"]["metrics"] == [{"type": "Pods", "pods": {
        "metric": {"name": "vllm_num_requests_waiting"}, "target": {"type": "AverageValue", "averageValue": "5"}}}]
    assert hpa["spec"]["behavior"] == {
        # one GPU pod per load_time (120 s): a new pod drains nothing until it is Ready
        "scaleUp": {"stabilizationWindowSeconds": 0, "selectPolicy": "Max",
                    "policies": [{"type": "Pods", "value": 1, "periodSeconds": 120}]},
        "scaleDown": {"stabilizationWindowSeconds": 600, "selectPolicy": "Max",
                      "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]},
    }
    assert LLM_SERVER not in objects(bundle, "ScaledObject")  # worker pools have their own


def test_prometheus_adapter_serves_the_metric_the_hpa_reads() -> None:
    bundle = rendered_bundle("prod")
    rules = yaml.safe_load(bundle.files["autoscaling/prometheus-adapter-rules.yaml"])
    [rule] = rules["rules"]["custom"]
    assert rule["seriesQuery"] == 'vllm:num_requests_waiting{namespace!="",pod!=""}'
    assert rule["resources"] == {"overrides": {"namespace": {"resource": "namespace"}, "pod": {"resource": "pod"}}}
    assert rule["name"] == {"matches": "^vllm:num_requests_waiting$", "as": "vllm_num_requests_waiting"}
    assert rule["metricsQuery"] == "sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)"
    hpa = objects(bundle, "HorizontalPodAutoscaler")[LLM_SERVER]
    assert hpa["spec"]["metrics"][0]["pods"]["metric"]["name"] == rule["name"]["as"]


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
    assert spec["triggers"] == [{"type": "prometheus", "metricType": "AverageValue", "metadata": {
        "serverAddress": "http://kube-prometheus-stack-prometheus.monitoring.svc:9090",
        "query": 'sum(vllm:num_requests_waiting{namespace="ai-platform",model_name="meta-llama/Llama-3.1-8B-Instruct"})',
        "threshold": "3"}}]
    assert spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"] == autoscaling.llm_behavior(bundle.profile)


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


def test_llm_scale_up_period_tracks_load_time() -> None:
    assert autoscaling.llm_behavior(variant("prod", {"llm": {"load_time": "5s"}}))["scaleUp"]["policies"][0] == \
        {"type": "Pods", "value": 1, "periodSeconds": 15}
    assert autoscaling.llm_behavior(variant("prod", {"llm": {"load_time": "1h", "startup_timeout": "2h"}}))[
        "scaleUp"]["policies"][0]["periodSeconds"] == 1800  # the API server's maximum


def test_explain_autoscaling() -> None:
    settings = rendered_bundle("prod").target_settings("autoscaling")
    assert settings["api.min_replicas"].text == "3"
    assert settings["api.target_memory"].text == "80%"
    assert settings["llm.scale_down_stabilization"].text == "600s"
    assert settings["llm.scale_up"].text == "1 pod per 120s"
    assert settings["llm.scaler"].text == "hpa"

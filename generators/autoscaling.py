"""Autoscaling: autoscaling/v2 HorizontalPodAutoscalers for the API and the LLM server, or a KEDA ScaledObject.

The API scales on CPU (and memory, when `autoscaling.api.target_memory` is given). The LLM server
scales on its queue depth (`autoscaling.llm.metric`, vLLM's `vllm:num_requests_waiting`), either
through prometheus-adapter as a Pods metric (`scaler: hpa`, the adapter rule is rendered to
autoscaling/prometheus-adapter-rules.yaml) or through a KEDA ScaledObject with a Prometheus trigger
(`scaler: keda`). Every `behavior` field is written out: Kubernetes' defaults are not relied on.
Ollama exports no metrics, so an Ollama server is not autoscaled (checks warn when max_replicas > 1).
"""

from __future__ import annotations

import re
from typing import Any

from . import paths, units
from .bundle import Part, Setting
from .k8s import LLM_SERVER, dump_yaml, metadata
from .profile import Profile

TARGET = "autoscaling"
ADAPTER_RULES = paths.ADAPTER_RULES

# API scale-up: Kubernetes' own default, pinned: double, or add 4 pods, every 15 s, whichever is more.
API_SCALE_UP = {"stabilizationWindowSeconds": 0, "selectPolicy": "Max",
                "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15},
                             {"type": "Pods", "value": 4, "periodSeconds": 15}]}
# API scale-down: after the stabilization window, at most 10% or 1 pod a minute, whichever is more;
# pools and caches of the remaining pods warm up gradually instead of at once.
API_SCALE_DOWN_POLICIES = [{"type": "Percent", "value": 10, "periodSeconds": 60},
                           {"type": "Pods", "value": 1, "periodSeconds": 60}]
# LLM scale-down: one GPU pod a minute after the stabilization window.
LLM_SCALE_DOWN_POLICIES = [{"type": "Pods", "value": 1, "periodSeconds": 60}]
HPA_MAX_PERIOD_S = 1800  # the API server's limit on a policy's periodSeconds
KEDA_POLLING_INTERVAL_S = 15


def adapter_metric_name(metric: str) -> str:
    """The custom-metrics API name prometheus-adapter serves a Prometheus metric as (':' is not kept)."""
    return re.sub(r"[^A-Za-z0-9_]", "_", metric)


def llm_autoscaled(profile: Profile) -> bool:
    return profile.llm is not None and profile.llm.server == "vllm" and profile.hardware.gpu is not None


# ---------------------------------------------------------------- API
def api_behavior(profile: Profile) -> dict[str, Any]:
    return {"scaleUp": API_SCALE_UP,
            "scaleDown": {"stabilizationWindowSeconds": units.seconds_up(profile.autoscaling.api.scale_down_stabilization),
                          "selectPolicy": "Max", "policies": API_SCALE_DOWN_POLICIES}}


def api_metrics(profile: Profile) -> list[dict[str, Any]]:
    api = profile.autoscaling.api
    metrics = [{"type": "Resource", "resource": {"name": "cpu",
                                                 "target": {"type": "Utilization", "averageUtilization": api.target_cpu}}}]
    if api.target_memory is not None:
        metrics.append({"type": "Resource", "resource": {
            "name": "memory", "target": {"type": "Utilization", "averageUtilization": api.target_memory}}})
    return metrics


def hpa(profile: Profile, name: str, component: str, min_replicas: int, max_replicas: int,
        metrics: list[dict[str, Any]], behavior: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": metadata(profile, name, component),
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                     "minReplicas": min_replicas, "maxReplicas": max_replicas,
                     "metrics": metrics, "behavior": behavior}}


def api_hpa(profile: Profile) -> dict[str, Any]:
    api = profile.autoscaling.api
    return hpa(profile, profile.app.deployment, profile.app.deployment, api.min_replicas, api.max_replicas,
               api_metrics(profile), api_behavior(profile))


# ---------------------------------------------------------------- LLM
def llm_behavior(profile: Profile) -> dict[str, Any]:
    assert profile.llm is not None
    # Add one GPU pod per load_time: the queue does not drain until the new pod is Ready, so adding
    # more sooner overshoots.
    period = min(HPA_MAX_PERIOD_S, max(15, units.seconds_up(profile.llm.load_time)))
    return {"scaleUp": {"stabilizationWindowSeconds": 0, "selectPolicy": "Max",
                        "policies": [{"type": "Pods", "value": 1, "periodSeconds": period}]},
            "scaleDown": {"stabilizationWindowSeconds": units.seconds_up(profile.autoscaling.llm.scale_down_stabilization),
                          "selectPolicy": "Max", "policies": LLM_SCALE_DOWN_POLICIES}}


def llm_hpa(profile: Profile) -> dict[str, Any]:
    scaling = profile.autoscaling.llm
    metric = {"type": "Pods", "pods": {"metric": {"name": adapter_metric_name(scaling.metric)},
                                       "target": {"type": "AverageValue", "averageValue": str(scaling.target)}}}
    return hpa(profile, LLM_SERVER, LLM_SERVER, scaling.min_replicas, scaling.max_replicas, [metric],
               llm_behavior(profile))


def keda_query(profile: Profile) -> str:
    assert profile.llm is not None
    model = profile.llm.model.name.replace("\\", "\\\\").replace('"', '\\"')
    return f'sum({profile.autoscaling.llm.metric}{{namespace="{profile.namespace}",model_name="{model}"}})'


def llm_scaled_object(profile: Profile) -> dict[str, Any]:
    scaling = profile.autoscaling.llm
    return {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
            "metadata": metadata(profile, LLM_SERVER, LLM_SERVER),
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": LLM_SERVER},
                "minReplicaCount": scaling.min_replicas, "maxReplicaCount": scaling.max_replicas,
                "pollingInterval": KEDA_POLLING_INTERVAL_S,
                # cooldownPeriod only applies to scaling to zero; minReplicaCount >= 1 never does.
                "advanced": {"horizontalPodAutoscalerConfig": {"behavior": llm_behavior(profile)}},
                "triggers": [{"type": "prometheus", "metricType": "AverageValue", "metadata": {
                    "serverAddress": scaling.prometheus_url, "query": keda_query(profile),
                    "threshold": str(scaling.target)}}],
            }}


def adapter_rules(profile: Profile) -> str:
    """prometheus-adapter rules (its Helm chart's `rules.custom`) serving the queue metric per pod."""
    metric = profile.autoscaling.llm.metric
    rules = {"rules": {"custom": [{
        "seriesQuery": f'{metric}{{namespace!="",pod!=""}}',
        "resources": {"overrides": {"namespace": {"resource": "namespace"}, "pod": {"resource": "pod"}}},
        "name": {"matches": f"^{re.escape(metric)}$", "as": adapter_metric_name(metric)},
        "metricsQuery": "sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)",
    }]}}
    header = (f"# prometheus-adapter Helm values for {profile.environment}, rendered by perfstack: serves "
              f"{metric} as the Pods metric {adapter_metric_name(metric)} that HorizontalPodAutoscaler/"
              f"{LLM_SERVER} reads.\n")
    return header + dump_yaml(rules)


# ---------------------------------------------------------------- explain
def settings(profile: Profile) -> list[Setting]:
    api = profile.autoscaling.api
    items = [
        Setting(TARGET, "api.min_replicas", api.min_replicas, str(api.min_replicas), "given by autoscaling.api.min_replicas"),
        Setting(TARGET, "api.max_replicas", api.max_replicas, str(api.max_replicas), "given by autoscaling.api.max_replicas"),
        Setting(TARGET, "api.target_cpu", api.target_cpu, f"{api.target_cpu}%",
                "given by autoscaling.api.target_cpu: a share of the CPU request of each app pod, app.requests.cpu "
                "(the app's own Deployment must request it)",
                {"cpu_request": f"{profile.app.requests.cpu:g}",
                 "scales_above_cores": f"{profile.app.requests.cpu * api.target_cpu / 100:g}"}),
        Setting(TARGET, "api.scale_down_stabilization", api.scale_down_stabilization,
                f"{units.seconds_up(api.scale_down_stabilization)}s",
                "given by autoscaling.api.scale_down_stabilization; then at most 10% or 1 pod a minute",
                {"scale_down_stabilization": units.format_duration(api.scale_down_stabilization)}),
        Setting(TARGET, "api.scale_up", "100% or 4 pods per 15s", "100% or 4 pods per 15s",
                "Kubernetes' default scale-up, pinned: double or add 4 pods every 15 s, whichever is more"),
    ]
    if api.target_memory is not None:
        items.append(Setting(TARGET, "api.target_memory", api.target_memory, f"{api.target_memory}%",
                             "given by autoscaling.api.target_memory: a share of the memory request of each app "
                             "pod, app.requests.memory (the app's own Deployment must request it)",
                             {"memory_request": units.format_size_human(profile.app.requests.memory)}))
    if llm_autoscaled(profile):
        assert profile.llm is not None
        scaling = profile.autoscaling.llm
        behavior = llm_behavior(profile)
        up = behavior["scaleUp"]["policies"][0]["periodSeconds"]
        items += [
            Setting(TARGET, "llm.scaler", scaling.scaler, scaling.scaler,
                    "given by autoscaling.llm.scaler: " + ("HPA on a Pods metric through prometheus-adapter"
                                                           if scaling.scaler == "hpa" else
                                                           "KEDA ScaledObject with a Prometheus trigger")),
            Setting(TARGET, "llm.min_replicas", scaling.min_replicas, str(scaling.min_replicas),
                    "given by autoscaling.llm.min_replicas"),
            Setting(TARGET, "llm.max_replicas", scaling.max_replicas, str(scaling.max_replicas),
                    "given by autoscaling.llm.max_replicas"),
            Setting(TARGET, "llm.target", scaling.target, str(scaling.target),
                    f"given by autoscaling.llm.target: average {scaling.metric} per pod",
                    {"metric": scaling.metric}),
            Setting(TARGET, "llm.scale_up", up, f"1 pod per {up}s",
                    "one GPU pod per llm.load_time (at least 15s): a new pod drains nothing until it is Ready",
                    {"load_time": units.format_duration(profile.llm.load_time)}),
            Setting(TARGET, "llm.scale_down_stabilization", scaling.scale_down_stabilization,
                    f"{units.seconds_up(scaling.scale_down_stabilization)}s",
                    "given by autoscaling.llm.scale_down_stabilization (>= llm.keep_alive); then 1 pod a minute",
                    {"scale_down_stabilization": units.format_duration(scaling.scale_down_stabilization),
                     "keep_alive": units.format_duration(profile.llm.keep_alive)}),
        ]
    return items


def render(profile: Profile) -> Part:
    objects = [api_hpa(profile)]
    files: dict[str, str] = {}
    if llm_autoscaled(profile):
        if profile.autoscaling.llm.scaler == "keda":
            objects.append(llm_scaled_object(profile))
        else:
            objects.append(llm_hpa(profile))
            files[ADAPTER_RULES] = adapter_rules(profile)
    return Part(settings=settings(profile), files=files, objects=objects)

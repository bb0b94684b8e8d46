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
from .k8s import LLM_SERVER, dump_yaml
from .profile import Profile

TARGET = "autoscaling"
ADAPTER_RULES = paths.ADAPTER_RULES

# API scale-up: Kubernetes' own default, pinned: double, or add 4 pods, every 15 s, whichever is more.
API_SCALE_UP: dict[str, Any] = {"stabilizationWindowSeconds": 0, "selectPolicy": "Max",
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


def policy_text(policies: list[dict[str, Any]]) -> str:
    """HPA policies as a reader says them, from the very constants the objects carry: '100% or 4 pods per 15s'."""
    parts = [f"{p['value']}%" if p["type"] == "Percent" else f"{p['value']} pod{'s' if p['value'] != 1 else ''}"
             for p in policies]
    periods = {p["periodSeconds"] for p in policies}
    period = periods.pop() if len(periods) == 1 else None
    return " or ".join(parts) + (f" per {period}s" if period else "")


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
                "given by autoscaling.api.scale_down_stabilization; then at most "
                + policy_text(API_SCALE_DOWN_POLICIES).replace(" per 60s", " a minute"),
                {"scale_down_stabilization": units.format_duration(api.scale_down_stabilization)}),
        Setting(TARGET, "api.scale_up", policy_text(API_SCALE_UP["policies"]), policy_text(API_SCALE_UP["policies"]),
                "Kubernetes' default scale-up, pinned: double or add 4 pods every 15 s, whichever is more"),
    ]
    if api.target_memory is not None:
        items.append(Setting(TARGET, "api.target_memory", api.target_memory, f"{api.target_memory}%",
                             "given by autoscaling.api.target_memory: a share of the memory request of each app "
                             "pod, app.requests.memory (the app's own Deployment must request it)",
                             {"memory_request": units.format_size_human(profile.app.requests.memory)}))
    if profile.llm_autoscaled():
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
    """The HPAs' and ScaledObject's numbers as settings; the objects themselves: objects/autoscaling.py."""
    files: dict[str, str] = {}
    if profile.llm_autoscaled() and profile.autoscaling.llm.scaler == "hpa":
        files[ADAPTER_RULES] = adapter_rules(profile)
    return Part(settings=settings(profile), files=files)
